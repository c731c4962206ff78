package wasm

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

// OnNewConnection runs proxy_on_new_connection.
func (s *TCPStream) OnNewConnection() Action {
	return s.invoke(StreamDownstream, s.fn().onNewConnection, uint64(s.ContextID()))
}

// OnDownstreamData runs proxy_on_downstream_data with the data buffered so
// far and returns the (possibly changed) data.
func (s *TCPStream) OnDownstreamData(data []byte, endOfStream bool) ([]byte, Action) {
	s.downstream = body{b: data, set: true}
	a := s.invoke(StreamDownstream, s.fn().onDownstreamData, uint64(s.ContextID()), uint64(len(data)), b2u(endOfStream))
	return s.downstream.b, a
}

// OnUpstreamData runs proxy_on_upstream_data.
func (s *TCPStream) OnUpstreamData(data []byte, endOfStream bool) ([]byte, Action) {
	s.upstream = body{b: data, set: true}
	a := s.invoke(StreamUpstream, s.fn().onUpstreamData, uint64(s.ContextID()), uint64(len(data)), b2u(endOfStream))
	return s.upstream.b, a
}

// OnDownstreamClose runs proxy_on_downstream_connection_close.
func (s *TCPStream) OnDownstreamClose(peer PeerType) {
	s.invoke(StreamDownstream, s.fn().onDownstreamClose, uint64(s.ContextID()), uint64(peer))
}

// OnUpstreamClose runs proxy_on_upstream_connection_close.
func (s *TCPStream) OnUpstreamClose(peer PeerType) {
	s.invoke(StreamUpstream, s.fn().onUpstreamClose, uint64(s.ContextID()), uint64(peer))
}

// Close ends the connection's context.
func (s *TCPStream) Close() { s.finish() }
