package wasm

// Foreign functions: proxy_call_foreign_function(name, name_size, args,
// args_size, return_results, return_results_size) and the built-in set
// Envoy registers.
//
//	name                    arguments                                 result
//	compress                bytes to compress                         zlib stream (RFC 1950, default level)
//	uncompress              zlib stream                               the inflated bytes, at most 16 MiB
//	declare_property        DeclarePropertyArguments (protobuf)       none
//	set_envoy_filter_state  SetEnvoyFilterStateArguments (protobuf)   none
//	clear_route_cache       ignored                                   none
//
// The protobuf arguments are Envoy's
// envoy.source.extensions.common.wasm messages, decoded by hand:
//
//	DeclarePropertyArguments     { string name = 1; bool readonly = 2; WasmType type = 3; bytes schema = 4; LifeSpan span = 5; }
//	SetEnvoyFilterStateArguments { string path = 1; string value = 2; LifeSpan span = 3; }
//
// Unknown fields, and known fields with another wire type, are skipped as a
// protobuf parser does; a malformed message or a string field that is not
// UTF-8 is BAD_ARGUMENT.
//
// declare_property records the declaration on the root context (of the
// effective context); a later proxy_set_property of that name on any of its
// streams is read-only after its first write when readonly is set. A name
// declared twice is BAD_ARGUMENT. set_envoy_filter_state stores value under
// path in the stream's filter state, where filter_state.<path> reads it and
// the data plane finds it (HTTPStream.FilterState, or PropertySetter).
// clear_route_cache records a ClearRouteCache event, delivered to the
// stream's callbacks after the callback returns.
//
// Return pointers: when return_results is 0 no guest memory is allocated and
// only the size is written (if return_results_size is not 0), as in
// proxy-wasm-cpp-host; functions without a result write 0 and 0. Every
// pointer is checked before the function runs, so an out-of-bounds argument
// is INVALID_MEMORY_ACCESS with no side effect. An unknown name is
// NOT_FOUND.
//
// Differences from Envoy:
//   - compress uses Go's compress/zlib: the stream differs byte for byte
//     from C zlib's but any zlib decoder reads it. Input over 16 MiB is
//     BAD_ARGUMENT.
//   - uncompress stops at 16 MiB of output (SERIALIZATION_FAILURE), and a
//     truncated stream is SERIALIZATION_FAILURE (Envoy's retry loop grows
//     its buffer without bound on both).
//   - set_envoy_filter_state accepts any non-empty key: Envoy only accepts
//     keys with a registered filter-state object factory (NOT_FOUND
//     otherwise). A data plane that wants Envoy's check refuses unknown
//     keys in PropertySetter, which turns into NOT_FOUND. It needs a stream
//     context (NOT_FOUND in a root context, as in Envoy).
//   - clear_route_cache outside a stream is NOT_FOUND (Envoy: OK, no-op).
//   - declare_property from a stream context declares on its root context
//     (Envoy stores it on the stream context, where set_property never
//     looks).
//   - Not provided (NOT_FOUND): verify_signature, sign, expr_create,
//     expr_evaluate, expr_delete.

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"
)

// maxForeignBytes caps what compress and uncompress take and produce.
const maxForeignBytes = 16 << 20

func foreignFuncs() []hostFunc {
	return []hostFunc{
		proxyFunc("proxy_call_foreign_function", 6, hostCallForeignFunction),
	}
}

// foreignFunc is a built-in foreign function. It runs with the instance lock
// held, on a private copy of the arguments.
type foreignFunc func(i *instance, args []byte) ([]byte, Status)

// lookupForeignFunc returns the built-in function called name, or nil.
func lookupForeignFunc(name string) foreignFunc {
	switch name {
	case "compress":
		return foreignCompress
	case "uncompress":
		return foreignUncompress
	case "declare_property":
		return foreignDeclareProperty
	case "set_envoy_filter_state":
		return foreignSetEnvoyFilterState
	case "clear_route_cache":
		return foreignClearRouteCache
	}
	return nil
}

// proxy_call_foreign_function(name, name_size, args, args_size,
// return_results, return_results_size)
func hostCallForeignFunction(_ context.Context, i *instance, st []uint64) Status {
	retPtr, retSize := u32(st, 4), u32(st, 5)
	if (retPtr != 0 && !i.inBounds(retPtr, 4)) || (retSize != 0 && !i.inBounds(retSize, 4)) {
		return StatusInvalidMemoryAccess
	}
	name, ok := i.readString(u32(st, 0), u32(st, 1))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	view, ok := i.read(u32(st, 2), u32(st, 3))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	f := lookupForeignFunc(name)
	if f == nil {
		return StatusNotFound
	}
	// Copy: allocating the result may grow guest memory under the view.
	args := append([]byte(nil), view...)
	out, s := f(i, args)
	if s != StatusOK {
		i.log.Debug("foreign function refused", zap.String("function", name), zap.Uint32("status", uint32(s)))
		return s
	}
	var ptr uint32
	if retPtr != 0 && len(out) > 0 {
		p, ok := i.allocate(uint32(len(out)))
		if !ok || !i.mem.Write(p, out) {
			return StatusInvalidMemoryAccess
		}
		ptr = p
	}
	if retPtr != 0 && !i.writeU32(retPtr, ptr) {
		return StatusInvalidMemoryAccess
	}
	if retSize != 0 && !i.writeU32(retSize, uint32(len(out))) {
		return StatusInvalidMemoryAccess
	}
	return StatusOK
}

// foreignCompress deflates args into a zlib stream.
func foreignCompress(_ *instance, args []byte) ([]byte, Status) {
	if len(args) > maxForeignBytes {
		return nil, StatusBadArgument
	}
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	if _, err := w.Write(args); err != nil {
		return nil, StatusSerializationFailure
	}
	if err := w.Close(); err != nil {
		return nil, StatusSerializationFailure
	}
	return b.Bytes(), StatusOK
}

// foreignUncompress inflates a zlib stream, refusing more than
// maxForeignBytes of output.
func foreignUncompress(_ *instance, args []byte) ([]byte, Status) {
	out, err := inflateCapped(args, maxForeignBytes)
	if err != nil {
		return nil, StatusSerializationFailure
	}
	return out, StatusOK
}

// errInflateCap is returned when a stream inflates past the cap.
var errInflateCap = errors.New("zlib stream inflates past the cap")

// inflateCapped inflates a complete zlib stream of at most limit bytes.
func inflateCapped(data []byte, limit int) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(out) > limit {
		return nil, errInflateCap
	}
	return out, nil
}

// declarePropertyArgs is DeclarePropertyArguments.
type declarePropertyArgs struct {
	name     string
	readOnly bool
	typ      propertyType
	schema   string
	span     lifeSpan
}

// setFilterStateArgs is SetEnvoyFilterStateArguments.
type setFilterStateArgs struct {
	path  string
	value string
	span  lifeSpan
}

// foreignDeclareProperty records a property declaration on the root
// context.
func foreignDeclareProperty(i *instance, args []byte) ([]byte, Status) {
	a, err := decodeDeclarePropertyArgs(args)
	if err != nil {
		return nil, StatusBadArgument
	}
	c := i.effective
	if c == nil {
		return nil, StatusNotFound
	}
	ps := rootOf(c).propState()
	if _, dup := ps.declared[a.name]; dup {
		return nil, StatusBadArgument
	}
	if !ps.charge(len(a.name)+len(a.schema), 1) {
		return nil, StatusBadArgument
	}
	if ps.declared == nil {
		ps.declared = map[string]*propertyDecl{}
	}
	ps.declared[a.name] = &propertyDecl{readOnly: a.readOnly, typ: a.typ, schema: a.schema, span: a.span}
	return nil, StatusOK
}

// foreignSetEnvoyFilterState stores a value in the stream's filter state.
func foreignSetEnvoyFilterState(i *instance, args []byte) ([]byte, Status) {
	a, err := decodeSetFilterStateArgs(args)
	if err != nil {
		return nil, StatusBadArgument
	}
	c := i.effective
	if streamOfContext(c) == nil || a.path == "" {
		return nil, StatusNotFound
	}
	if s := i.setFilterState(c, a.path, a.value, "", false); s != StatusOK {
		return nil, s
	}
	c.props.state[a.path].span = a.span
	return nil, StatusOK
}

// foreignClearRouteCache asks the data plane to pick the route again.
func foreignClearRouteCache(i *instance, _ []byte) ([]byte, Status) {
	return nil, i.streamControl(evClearRouteCache, 0)
}

// errNotUTF8 is returned for a proto3 string field that is not UTF-8.
var errNotUTF8 = errors.New("string field is not valid UTF-8")

// decodeDeclarePropertyArgs decodes DeclarePropertyArguments.
func decodeDeclarePropertyArgs(b []byte) (declarePropertyArgs, error) {
	var a declarePropertyArgs
	err := walkProto(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			if !utf8.Valid(v) {
				return errNotUTF8
			}
			a.name = string(v)
		case num == 2 && typ == protowire.VarintType:
			a.readOnly = x != 0
		case num == 3 && typ == protowire.VarintType:
			a.typ = propertyType(int32(x))
		case num == 4 && typ == protowire.BytesType:
			a.schema = string(v)
		case num == 5 && typ == protowire.VarintType:
			a.span = lifeSpan(int32(x))
		}
		return nil
	})
	if a.typ < propertyBytes || a.typ > propertyProtobuf {
		a.typ = propertyBytes // Envoy's default for an unknown type
	}
	a.span = normalSpan(a.span)
	return a, err
}

// decodeSetFilterStateArgs decodes SetEnvoyFilterStateArguments.
func decodeSetFilterStateArgs(b []byte) (setFilterStateArgs, error) {
	var a setFilterStateArgs
	err := walkProto(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case (num == 1 || num == 2) && typ == protowire.BytesType:
			if !utf8.Valid(v) {
				return errNotUTF8
			}
			if num == 1 {
				a.path = string(v)
			} else {
				a.value = string(v)
			}
		case num == 3 && typ == protowire.VarintType:
			a.span = lifeSpan(int32(x))
		}
		return nil
	})
	a.span = normalSpan(a.span)
	return a, err
}

// normalSpan maps unknown life spans to FilterChain, as Envoy does.
func normalSpan(s lifeSpan) lifeSpan {
	if s < spanFilterChain || s > spanDownstreamConnection {
		return spanFilterChain
	}
	return s
}

// walkProto calls f for every field of a protobuf message: v is the payload
// of a length-delimited field, x the value of a varint; other wire types
// are skipped.
func walkProto(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("protobuf tag: %w", protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber {
			// ConsumeTag only checks the lower bound.
			return fmt.Errorf("protobuf field number %d out of range", num)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("protobuf field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.VarintType || typ == protowire.BytesType {
			if err := f(num, typ, v, x); err != nil {
				return err
			}
		}
	}
	return nil
}
