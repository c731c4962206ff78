package wasm

import "context"

func streamFuncs() []hostFunc {
	return []hostFunc{
		proxyFunc("proxy_continue_stream", 1, hostContinueStream, ABI020, ABI021),
		proxyFunc("proxy_close_stream", 1, hostCloseStream, ABI020, ABI021),
		proxyFunc("proxy_continue_request", 0, func(ctx context.Context, i *instance, _ []uint64) Status {
			return i.streamControl(evContinue, StreamHTTPRequest)
		}, ABI010),
		proxyFunc("proxy_continue_response", 0, func(ctx context.Context, i *instance, _ []uint64) Status {
			return i.streamControl(evContinue, StreamHTTPResponse)
		}, ABI010),
		proxyFunc("proxy_clear_route_cache", 0, func(ctx context.Context, i *instance, _ []uint64) Status {
			return i.streamControl(evClearRouteCache, 0)
		}, ABI010),
		proxyFunc("proxy_send_local_response", 8, hostSendLocalResponse),
		proxyFunc("proxy_get_status", 3, hostGetStatus),
	}
}

// streamOf returns the stream of the effective context.
func (i *instance) streamOf() *streamBase {
	c := i.effective
	if c == nil {
		return nil
	}
	if c.http != nil {
		return &c.http.streamBase
	}
	if c.tcp != nil {
		return &c.tcp.streamBase
	}
	return nil
}

func (i *instance) streamControl(kind int, t StreamType) Status {
	s := i.streamOf()
	if s == nil {
		return StatusNotFound
	}
	s.events = append(s.events, streamEvent{kind: kind, stream: t})
	return StatusOK
}

// proxy_continue_stream(stream_type)
func hostContinueStream(_ context.Context, i *instance, st []uint64) Status {
	t := StreamType(u32(st, 0))
	if t > StreamUpstream {
		return StatusBadArgument
	}
	return i.streamControl(evContinue, t)
}

// proxy_close_stream(stream_type)
func hostCloseStream(_ context.Context, i *instance, st []uint64) Status {
	t := StreamType(u32(st, 0))
	if t > StreamUpstream {
		return StatusBadArgument
	}
	return i.streamControl(evClose, t)
}

// proxy_send_local_response(status, details, details_size, body, body_size,
// headers, headers_size, grpc_status). Envoy's rules: only on an HTTP
// stream, once, and the status must be a valid HTTP status.
func hostSendLocalResponse(_ context.Context, i *instance, st []uint64) Status {
	c := i.effective
	if c == nil || c.http == nil {
		return StatusNotFound
	}
	code := u32(st, 0)
	if code < 200 || code > 599 {
		return StatusBadArgument
	}
	details, ok := i.readString(u32(st, 1), u32(st, 2))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	body, ok := i.read(u32(st, 3), u32(st, 4))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	hdrs, ok := i.read(u32(st, 5), u32(st, 6))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	fields, err := ParsePairs(hdrs)
	if err != nil {
		return StatusBadArgument
	}
	for k := range fields {
		fields[k].Key = lowerASCII(fields[k].Key)
	}
	s := c.http
	lr := &LocalResponse{
		StatusCode: code,
		Details:    details,
		Body:       append([]byte(nil), body...),
		Headers:    fields,
		GRPCStatus: int32(u32(st, 7)),
	}
	if lr.GRPCStatus < 0 || lr.GRPCStatus > 16 {
		lr.GRPCStatus = -1
	}
	if !s.setLocal(lr) {
		// Envoy ignores a second local reply; say so.
		return StatusBadArgument
	}
	s.events = append(s.events, streamEvent{kind: evLocalResponse, local: lr})
	return StatusOK
}

// proxy_get_status(return_code, return_message, return_message_size): the
// status of the HTTP call or gRPC call being answered.
func hostGetStatus(_ context.Context, i *instance, st []uint64) Status {
	v := i.callout
	if v == nil || !v.hasStatus {
		return StatusNotFound
	}
	if !i.writeU32(u32(st, 0), v.statusCode) {
		return StatusInvalidMemoryAccess
	}
	return i.copyOutString(v.statusMsg, u32(st, 1), u32(st, 2))
}
