package wasm

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/wasmesh/wasmesh/header"
)

// Field is one header, trailer or metadata entry (see package header).
type Field = header.Field

// Headers is the host's header map (see package header).
type Headers = header.Map

// NewHeaders builds a map from alternating keys and values.
func NewHeaders(kv ...string) *Headers { return header.New(kv...) }

func lowerASCII(s string) string { return header.Lower(s) }

// serializedPairsSize is the size of SerializePairs' output.
func serializedPairsSize(fields []Field) int {
	n := 4 + 8*len(fields)
	for _, f := range fields {
		n += len(f.Key) + len(f.Value) + 2
	}
	return n
}

// SerializePairs encodes fields in the ABI's map format: a little-endian u32
// count, a (key length, value length) u32 pair per field, then each key and
// value followed by a NUL byte.
func SerializePairs(fields []Field) []byte {
	return appendPairs(make([]byte, 0, serializedPairsSize(fields)), fields)
}

func appendPairs(buf []byte, fields []Field) []byte {
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(fields)))
	for _, f := range fields {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(f.Key)))
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(f.Value)))
	}
	for _, f := range fields {
		buf = append(buf, f.Key...)
		buf = append(buf, 0)
		buf = append(buf, f.Value...)
		buf = append(buf, 0)
	}
	return buf
}

// errBadPairs is returned for any malformed serialized map.
var errBadPairs = errors.New("malformed serialized map")

// ParsePairs decodes the ABI's map format. An empty input or a single NUL
// byte is an empty map. It enforces the host's caps (1 MiB, 1024 entries)
// and never reads past data.
func ParsePairs(data []byte) ([]Field, error) {
	if len(data) == 0 || (len(data) == 1 && data[0] == 0) {
		return nil, nil
	}
	if len(data) > maxSerializedPairsBytes {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d byte cap", errBadPairs, len(data), maxSerializedPairsBytes)
	}
	if len(data) < 4 {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the count", errBadPairs, len(data))
	}
	count := binary.LittleEndian.Uint32(data)
	if count > maxSerializedPairs {
		return nil, fmt.Errorf("%w: %d entries exceeds the %d entry cap", errBadPairs, count, maxSerializedPairs)
	}
	sizesEnd := 4 + 8*uint64(count)
	if sizesEnd > uint64(len(data)) {
		return nil, fmt.Errorf("%w: %d entries do not fit in %d bytes", errBadPairs, count, len(data))
	}
	fields := make([]Field, count)
	pos := sizesEnd
	for i := uint64(0); i < uint64(count); i++ {
		kl := uint64(binary.LittleEndian.Uint32(data[4+8*i:]))
		vl := uint64(binary.LittleEndian.Uint32(data[8+8*i:]))
		if pos+kl+1+vl+1 > uint64(len(data)) {
			return nil, fmt.Errorf("%w: entry %d runs past the end", errBadPairs, i)
		}
		fields[i].Key = string(data[pos : pos+kl])
		pos += kl + 1
		fields[i].Value = string(data[pos : pos+vl])
		pos += vl + 1
	}
	return fields, nil
}
