package wasm

import "github.com/tetratelabs/wazero/api"

// TCPStream is one downstream connection (and its upstream) through a
// network-filter plugin, pinned to one instance.
type TCPStream struct {
	streamBase

	downstream, upstream body
}

// NewTCPStream creates the connection's context.
func (p *Plugin) NewTCPStream(opts StreamOptions) *TCPStream {
	s := &TCPStream{}
	s.init(p, opts)
	s.attach(func(c *contextState) { c.tcp = s })
	return s
}

func (s *TCPStream) fn() *callbacks {
	if s.inst == nil {
		return &callbacks{}
	}
	return &s.inst.fns
}

func (s *TCPStream) run(fn api.Function, args ...uint64) Action {
	a := s.invoke(fn, args...)
	if s.failed && s.local == nil {
		// Fail closed for a connection: close both sides.
		s.local = &LocalResponse{Details: "wasm_fail_stream"}
		s.cb.CloseStream(StreamDownstream)
		s.cb.CloseStream(StreamUpstream)
	}
	return a
}

// OnNewConnection runs proxy_on_new_connection.
func (s *TCPStream) OnNewConnection() Action {
	return s.run(s.fn().onNewConnection, uint64(s.ContextID()))
}

// OnDownstreamData runs proxy_on_downstream_data with the data buffered so
// far and returns the (possibly changed) data.
func (s *TCPStream) OnDownstreamData(data []byte, endOfStream bool) ([]byte, Action) {
	s.downstream = body{b: data, set: true}
	a := s.run(s.fn().onDownstreamData, uint64(s.ContextID()), uint64(len(data)), b2u(endOfStream))
	return s.downstream.b, a
}

// OnUpstreamData runs proxy_on_upstream_data.
func (s *TCPStream) OnUpstreamData(data []byte, endOfStream bool) ([]byte, Action) {
	s.upstream = body{b: data, set: true}
	a := s.run(s.fn().onUpstreamData, uint64(s.ContextID()), uint64(len(data)), b2u(endOfStream))
	return s.upstream.b, a
}

// OnDownstreamClose runs proxy_on_downstream_connection_close.
func (s *TCPStream) OnDownstreamClose(peer PeerType) {
	s.run(s.fn().onDownstreamClose, uint64(s.ContextID()), uint64(peer))
}

// OnUpstreamClose runs proxy_on_upstream_connection_close.
func (s *TCPStream) OnUpstreamClose(peer PeerType) {
	s.run(s.fn().onUpstreamClose, uint64(s.ContextID()), uint64(peer))
}

// Close ends the connection's context.
func (s *TCPStream) Close() { s.finish() }

func (s *TCPStream) afterAsync(err error) {
	if err != nil && !s.failed && !s.skipped {
		s.applyFailure(err)
		if s.failed {
			s.cb.CloseStream(StreamDownstream)
			s.cb.CloseStream(StreamUpstream)
		}
		return
	}
	s.flush()
}
