package wasmtest

import "github.com/wasmesh/wasmesh/wasm"

// Flow is one direction of a connection as the filter left it.
type Flow struct {
	// Data is what the filter let through.
	Data []byte
	// Buffered is what the filter holds after returning PAUSE; the next
	// data callback receives it again with the new bytes appended.
	Buffered []byte
}

// TCPStream drives one connection through the harness's network-filter
// plugin. Use it from one goroutine at a time.
type TCPStream struct {
	s    *wasm.TCPStream
	rec  *Recorder
	err  error
	down flow
	up   flow
	last wasm.Action

	closed bool
}

// TCP creates a connection's context.
func (h *Harness) TCP(opts ...StreamOption) *TCPStream {
	p, err := h.plugin()
	if err != nil {
		return &TCPStream{rec: &Recorder{}, err: err}
	}
	return NewTCPStream(p, opts...)
}

// NewTCPStream drives a connection through any plugin.
func NewTCPStream(p *wasm.Plugin, opts ...StreamOption) *TCPStream {
	c, rec := buildStreamConfig(opts)
	s := p.NewTCPStream(wasm.StreamOptions{Callbacks: rec, Properties: c.props})
	return &TCPStream{s: s, rec: rec}
}

func (s *TCPStream) do(f func() wasm.Action) wasm.Action {
	if s.s == nil {
		s.last = wasm.ActionPause
		return s.last
	}
	s.last = f()
	return s.last
}

// NewConnection runs proxy_on_new_connection.
func (s *TCPStream) NewConnection() wasm.Action {
	return s.do(func() wasm.Action { return s.s.OnNewConnection() })
}

// DownstreamData runs proxy_on_downstream_data with b appended to what the
// filter holds.
func (s *TCPStream) DownstreamData(b []byte, eos bool) wasm.Action {
	return s.do(func() wasm.Action { return s.down.feed(b, eos, s.s.OnDownstreamData) })
}

// UpstreamData runs proxy_on_upstream_data with b appended to what the
// filter holds.
func (s *TCPStream) UpstreamData(b []byte, eos bool) wasm.Action {
	return s.do(func() wasm.Action { return s.up.feed(b, eos, s.s.OnUpstreamData) })
}

// DownstreamClose runs proxy_on_downstream_connection_close.
func (s *TCPStream) DownstreamClose(peer wasm.PeerType) {
	if s.s != nil {
		s.s.OnDownstreamClose(peer)
	}
}

// UpstreamClose runs proxy_on_upstream_connection_close.
func (s *TCPStream) UpstreamClose(peer wasm.PeerType) {
	if s.s != nil {
		s.s.OnUpstreamClose(peer)
	}
}

// Done ends the connection's context.
func (s *TCPStream) Done() {
	if s.s != nil && !s.closed {
		s.closed = true
		s.s.Close()
	}
}

// Downstream is the client-to-upstream direction.
func (s *TCPStream) Downstream() Flow { return Flow{Data: s.down.forwarded, Buffered: s.down.pending} }

// Upstream is the upstream-to-client direction.
func (s *TCPStream) Upstream() Flow { return Flow{Data: s.up.forwarded, Buffered: s.up.pending} }

// Action is what the last callback returned.
func (s *TCPStream) Action() wasm.Action { return s.last }

// Failure is the error that made the filter fail for this connection.
func (s *TCPStream) Failure() error {
	if s.s == nil {
		return s.err
	}
	return s.s.Failure()
}

// Skipped reports whether the filter failed open.
func (s *TCPStream) Skipped() bool { return s.s != nil && s.s.Skipped() }

// Closed reports whether the connection was closed (by the filter or its
// failure policy) in either direction.
func (s *TCPStream) Closed() bool { return s.rec.Count(EventClose) > 0 }

// Recorder holds what the filter asked of the data plane.
func (s *TCPStream) Recorder() *Recorder { return s.rec }

// Events returns the recorded events.
func (s *TCPStream) Events() []Event { return s.rec.Events() }

// Stream is the underlying host stream.
func (s *TCPStream) Stream() *wasm.TCPStream { return s.s }
