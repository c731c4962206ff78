// Package network is the contract of Envoy's network (L4) filters and the
// connection session that runs them: a registry of filter factories by
// typed_config type URL (as filterchain's for HTTP filters), the Filter
// callbacks (new connection, downstream data, upstream data, close
// events, each able to pause its direction until Continue), terminal
// filters (tcp_proxy, direct_response) that open the upstream, and Conn,
// which copies bytes both ways with half-close, flow control
// (per_connection_buffer_limit_bytes) and an idle timeout.
//
// Read filters run in configuration order on downstream data; write filters
// run in reverse order on upstream data, as in Envoy. A filter that returns
// StopIteration keeps the data buffered: the next read appends to it and
// the chain runs again from the first filter; Continue resumes after the
// paused filter with what is buffered.
package network
