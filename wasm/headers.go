package wasm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Field is one header, trailer or metadata entry. Keys are lower-case, as in
// Envoy; pseudo-headers (":method", ":path", ":authority", ":scheme",
// ":status") are ordinary fields.
type Field struct {
	Key   string
	Value string
}

// Headers is an ordered multimap of fields, the host's view of a header map.
// The zero value is empty and ready to use. It is not safe for concurrent use;
// a stream's maps are only touched under its instance's lock.
type Headers struct {
	fields []Field
}

// NewHeaders builds a map from alternating keys and values.
func NewHeaders(kv ...string) *Headers {
	h := &Headers{fields: make([]Field, 0, len(kv)/2)}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// Len is the number of fields.
func (h *Headers) Len() int {
	if h == nil {
		return 0
	}
	return len(h.fields)
}

// Fields returns the fields in order. The slice is owned by h.
func (h *Headers) Fields() []Field {
	if h == nil {
		return nil
	}
	return h.fields
}

// Get returns the first value of key.
func (h *Headers) Get(key string) (string, bool) {
	if h == nil {
		return "", false
	}
	key = lowerASCII(key)
	for i := range h.fields {
		if h.fields[i].Key == key {
			return h.fields[i].Value, true
		}
	}
	return "", false
}

// Values returns every value of key, in order.
func (h *Headers) Values(key string) []string {
	if h == nil {
		return nil
	}
	key = lowerASCII(key)
	var out []string
	for i := range h.fields {
		if h.fields[i].Key == key {
			out = append(out, h.fields[i].Value)
		}
	}
	return out
}

// Add appends a field.
func (h *Headers) Add(key, value string) {
	h.fields = append(h.fields, Field{Key: lowerASCII(key), Value: value})
}

// Set replaces the first field named key in place and removes the others,
// or appends the field when key is absent (Envoy's setCopy).
func (h *Headers) Set(key, value string) {
	key = lowerASCII(key)
	found := false
	out := h.fields[:0]
	for _, f := range h.fields {
		if f.Key == key {
			if found {
				continue
			}
			found = true
			f.Value = value
		}
		out = append(out, f)
	}
	h.fields = out
	if !found {
		h.fields = append(h.fields, Field{Key: key, Value: value})
	}
}

// Del removes every field named key.
func (h *Headers) Del(key string) {
	key = lowerASCII(key)
	out := h.fields[:0]
	for _, f := range h.fields {
		if f.Key != key {
			out = append(out, f)
		}
	}
	clear(h.fields[len(out):])
	h.fields = out
}

// Reset replaces all fields.
func (h *Headers) Reset(fields []Field) {
	h.fields = append(h.fields[:0], fields...)
	for i := range h.fields {
		h.fields[i].Key = lowerASCII(h.fields[i].Key)
	}
}

// Clone returns a deep copy.
func (h *Headers) Clone() *Headers {
	if h == nil {
		return &Headers{}
	}
	return &Headers{fields: append([]Field(nil), h.fields...)}
}

// String renders the map as "k: v" lines, for logs and test failures.
func (h *Headers) String() string {
	var b strings.Builder
	for _, f := range h.Fields() {
		b.WriteString(f.Key)
		b.WriteString(": ")
		b.WriteString(f.Value)
		b.WriteByte('\n')
	}
	return b.String()
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

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
