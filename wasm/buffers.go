package wasm

import "context"

func bufferFuncs() []hostFunc {
	return []hostFunc{
		proxyFunc("proxy_get_buffer_bytes", 5, hostGetBufferBytes),
		proxyFunc("proxy_get_buffer_status", 3, hostGetBufferStatus),
		proxyFunc("proxy_set_buffer_bytes", 5, hostSetBufferBytes),
		// ABI 0.1.0 reads the plugin configuration with its own call.
		proxyFunc("proxy_get_configuration", 2, hostGetConfiguration, ABI010),
	}
}

// bufferFor returns the buffer of type t visible from the effective
// context: its bytes, a setter (nil if read-only), and a status when the
// type is unknown (BAD_ARGUMENT) or not available now (NOT_FOUND).
func (i *instance) bufferFor(t BufferType) ([]byte, func([]byte), Status) {
	c := i.effective
	var b *body
	switch t {
	case BufferHTTPRequestBody, BufferHTTPResponseBody:
		if v := i.callout; v != nil && t == BufferHTTPResponseBody && v.headers != nil && c != nil && c.http == nil {
			// Some SDKs read a callout body as HTTP_RESPONSE_BODY (the spec's
			// text for proxy_on_http_call_response says so).
			return v.body, nil, StatusOK
		}
		if c == nil || c.http == nil {
			return nil, nil, StatusNotFound
		}
		if t == BufferHTTPRequestBody {
			b = &c.http.reqBody
		} else {
			b = &c.http.respBody
		}
	case BufferDownstreamData, BufferUpstreamData:
		if c == nil || c.tcp == nil {
			return nil, nil, StatusNotFound
		}
		if t == BufferDownstreamData {
			b = &c.tcp.downstream
		} else {
			b = &c.tcp.upstream
		}
	case BufferHTTPCallResponseBody, BufferGRPCReceive:
		if i.callout == nil {
			return nil, nil, StatusNotFound
		}
		return i.callout.body, nil, StatusOK
	case BufferVMConfiguration:
		return i.vm.cfg.Configuration, nil, StatusOK
	case BufferPluginConfiguration:
		if c == nil || c.plugin == nil {
			return nil, nil, StatusNotFound
		}
		return c.plugin.cfg.Configuration, nil, StatusOK
	case BufferForeignFunctionArguments:
		if i.callout == nil || i.callout.ffArgs == nil {
			return nil, nil, StatusNotFound
		}
		return i.callout.ffArgs, nil, StatusOK
	default:
		return nil, nil, StatusBadArgument
	}
	if !b.set {
		return nil, nil, StatusNotFound
	}
	return b.b, func(nb []byte) { b.b = nb }, StatusOK
}

// proxy_get_buffer_bytes(type, start, max_size, return_data, return_size)
func hostGetBufferBytes(_ context.Context, i *instance, st []uint64) Status {
	data, _, s := i.bufferFor(BufferType(u32(st, 0)))
	if s != StatusOK {
		return s
	}
	start, max := uint64(u32(st, 1)), uint64(u32(st, 2))
	if start > uint64(len(data)) {
		return StatusBadArgument
	}
	end := start + max
	if end > uint64(len(data)) {
		end = uint64(len(data))
	}
	// Copy first: the allocation in copyOut may run guest code.
	out := append([]byte(nil), data[start:end]...)
	return i.copyOut(out, u32(st, 3), u32(st, 4))
}

// proxy_get_buffer_status(type, return_size, return_flags)
func hostGetBufferStatus(_ context.Context, i *instance, st []uint64) Status {
	data, set, s := i.bufferFor(BufferType(u32(st, 0)))
	if s != StatusOK {
		return s
	}
	flags := uint32(0)
	if set == nil {
		flags = 1 // read-only
	}
	if !i.writeU32(u32(st, 1), uint32(len(data))) || !i.writeU32(u32(st, 2), flags) {
		return StatusInvalidMemoryAccess
	}
	return StatusOK
}

// proxy_set_buffer_bytes(type, start, size, data, data_size): replaces size
// bytes at start with data; start=0,size=0 prepends; start >= length appends.
func hostSetBufferBytes(_ context.Context, i *instance, st []uint64) Status {
	data, set, s := i.bufferFor(BufferType(u32(st, 0)))
	if s != StatusOK {
		return s
	}
	if set == nil {
		return StatusBadArgument
	}
	val, ok := i.read(u32(st, 3), u32(st, 4))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	start, size := uint64(u32(st, 1)), uint64(u32(st, 2))
	n := uint64(len(data))
	if start > n {
		start = n
	}
	end := start + size
	if end > n {
		end = n
	}
	out := make([]byte, 0, n-(end-start)+uint64(len(val)))
	out = append(out, data[:start]...)
	out = append(out, val...)
	out = append(out, data[end:]...)
	set(out)
	return StatusOK
}

// proxy_get_configuration(return_data, return_size), ABI 0.1.0.
func hostGetConfiguration(_ context.Context, i *instance, st []uint64) Status {
	c := i.effective
	if c == nil || c.plugin == nil {
		return StatusNotFound
	}
	return i.copyOut(c.plugin.cfg.Configuration, u32(st, 0), u32(st, 1))
}
