package wasm

import "context"

func headerFuncs() []hostFunc {
	return []hostFunc{
		proxyFunc("proxy_get_header_map_pairs", 3, hostGetHeaderMapPairs),
		proxyFunc("proxy_set_header_map_pairs", 3, hostSetHeaderMapPairs),
		proxyFunc("proxy_get_header_map_size", 2, hostGetHeaderMapSize),
		proxyFunc("proxy_get_header_map_value", 5, hostGetHeaderMapValue),
		proxyFunc("proxy_add_header_map_value", 5, hostAddHeaderMapValue),
		proxyFunc("proxy_replace_header_map_value", 5, hostReplaceHeaderMapValue),
		proxyFunc("proxy_remove_header_map_value", 3, hostRemoveHeaderMapValue),
	}
}

// headerMap returns the map of type t visible from the effective context:
// the map, whether the guest may change it, and BAD_ARGUMENT for an unknown
// type or NOT_FOUND when the map does not exist now.
func (i *instance) headerMap(t MapType) (*Headers, bool, Status) {
	c := i.effective
	switch t {
	case MapHTTPRequestHeaders, MapHTTPRequestTrailers, MapHTTPResponseHeaders, MapHTTPResponseTrailers:
		if c == nil || c.http == nil {
			return nil, false, StatusNotFound
		}
		s := c.http
		var h **Headers
		switch t {
		case MapHTTPRequestHeaders:
			h = &s.reqHeaders
		case MapHTTPRequestTrailers:
			h = &s.reqTrailers
		case MapHTTPResponseHeaders:
			h = &s.respHeaders
		default:
			h = &s.respTrailers
		}
		if *h == nil {
			if t == MapHTTPRequestTrailers || t == MapHTTPResponseTrailers {
				// Trailers may be added from a body callback: the map is
				// created on demand; the data plane sends non-empty ones.
				*h = &Headers{}
				return *h, true, StatusOK
			}
			return nil, false, StatusNotFound
		}
		return *h, true, StatusOK
	case MapGRPCInitialMetadata, MapGRPCTrailingMetadata, MapHTTPCallResponseHeaders, MapHTTPCallResponseTrailers:
		v := i.callout
		if v == nil {
			return nil, false, StatusNotFound
		}
		h := v.headers
		if t == MapGRPCTrailingMetadata || t == MapHTTPCallResponseTrailers {
			h = v.trailers
		}
		if h == nil {
			return nil, false, StatusNotFound
		}
		return h, false, StatusOK
	}
	return nil, false, StatusBadArgument
}

// proxy_get_header_map_pairs(type, return_data, return_size)
func hostGetHeaderMapPairs(_ context.Context, i *instance, st []uint64) Status {
	h, _, s := i.headerMap(MapType(u32(st, 0)))
	if s == StatusNotFound {
		// An absent map reads as empty, like Envoy.
		h, s = &Headers{}, StatusOK
	}
	if s != StatusOK {
		return s
	}
	return i.copyOut(SerializePairs(h.Fields()), u32(st, 1), u32(st, 2))
}

// proxy_set_header_map_pairs(type, data, size)
func hostSetHeaderMapPairs(_ context.Context, i *instance, st []uint64) Status {
	h, writable, s := i.headerMap(MapType(u32(st, 0)))
	if s != StatusOK {
		return s
	}
	if !writable {
		return StatusBadArgument
	}
	data, ok := i.read(u32(st, 1), u32(st, 2))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	fields, err := ParsePairs(data)
	if err != nil {
		return StatusBadArgument
	}
	h.Reset(fields)
	return StatusOK
}

// proxy_get_header_map_size(type, return_size): the serialized size.
func hostGetHeaderMapSize(_ context.Context, i *instance, st []uint64) Status {
	h, _, s := i.headerMap(MapType(u32(st, 0)))
	if s == StatusNotFound {
		h, s = &Headers{}, StatusOK
	}
	if s != StatusOK {
		return s
	}
	if !i.writeU32(u32(st, 1), uint32(serializedPairsSize(h.Fields()))) {
		return StatusInvalidMemoryAccess
	}
	return StatusOK
}

// proxy_get_header_map_value(type, key, key_size, return_data, return_size)
func hostGetHeaderMapValue(_ context.Context, i *instance, st []uint64) Status {
	h, _, s := i.headerMap(MapType(u32(st, 0)))
	if s != StatusOK {
		return s
	}
	key, ok := i.readString(u32(st, 1), u32(st, 2))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	v, found := h.Get(key)
	if !found {
		return StatusNotFound
	}
	return i.copyOutString(v, u32(st, 3), u32(st, 4))
}

// readKeyValue reads the key and value arguments at st[1..4].
func (i *instance) readKeyValue(st []uint64) (string, string, bool) {
	k, ok := i.readString(u32(st, 1), u32(st, 2))
	if !ok {
		return "", "", false
	}
	v, ok := i.readString(u32(st, 3), u32(st, 4))
	return k, v, ok
}

// proxy_add_header_map_value(type, key, key_size, value, value_size)
func hostAddHeaderMapValue(_ context.Context, i *instance, st []uint64) Status {
	h, writable, s := i.headerMap(MapType(u32(st, 0)))
	if s != StatusOK {
		return s
	}
	if !writable {
		return StatusBadArgument
	}
	k, v, ok := i.readKeyValue(st)
	if !ok {
		return StatusInvalidMemoryAccess
	}
	if h.Len() >= maxSerializedPairs {
		return StatusBadArgument
	}
	h.Add(k, v)
	return StatusOK
}

// proxy_replace_header_map_value(type, key, key_size, value, value_size)
func hostReplaceHeaderMapValue(_ context.Context, i *instance, st []uint64) Status {
	h, writable, s := i.headerMap(MapType(u32(st, 0)))
	if s != StatusOK {
		return s
	}
	if !writable {
		return StatusBadArgument
	}
	k, v, ok := i.readKeyValue(st)
	if !ok {
		return StatusInvalidMemoryAccess
	}
	h.Set(k, v)
	return StatusOK
}

// proxy_remove_header_map_value(type, key, key_size)
func hostRemoveHeaderMapValue(_ context.Context, i *instance, st []uint64) Status {
	h, writable, s := i.headerMap(MapType(u32(st, 0)))
	if s != StatusOK {
		return s
	}
	if !writable {
		return StatusBadArgument
	}
	k, ok := i.readString(u32(st, 1), u32(st, 2))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	h.Del(k)
	return StatusOK
}
