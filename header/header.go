package header

import "strings"

// Field is one header, trailer or metadata entry. Keys are lower-case, as in
// Envoy; pseudo-headers (":method", ":path", ":authority", ":scheme",
// ":status") are ordinary fields.
type Field struct {
	Key   string
	Value string
}

// Map is an ordered multimap of fields, the host's view of a header map.
// The zero value is empty and ready to use. It is not safe for concurrent use;
// a stream's maps are only touched under its instance's lock.
type Map struct {
	fields []Field
}

// New builds a map from alternating keys and values.
func New(kv ...string) *Map {
	h := &Map{fields: make([]Field, 0, len(kv)/2)}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// NewCap is New with room for n fields.
func NewCap(n int, kv ...string) *Map {
	h := &Map{fields: make([]Field, 0, max(n, len(kv)/2))}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// Len is the number of fields.
func (h *Map) Len() int {
	if h == nil {
		return 0
	}
	return len(h.fields)
}

// Fields returns the fields in order. The slice is owned by h.
func (h *Map) Fields() []Field {
	if h == nil {
		return nil
	}
	return h.fields
}

// Get returns the first value of key.
func (h *Map) Get(key string) (string, bool) {
	if h == nil {
		return "", false
	}
	key = Lower(key)
	for i := range h.fields {
		if h.fields[i].Key == key {
			return h.fields[i].Value, true
		}
	}
	return "", false
}

// Values returns every value of key, in order.
func (h *Map) Values(key string) []string {
	if h == nil {
		return nil
	}
	key = Lower(key)
	var out []string
	for i := range h.fields {
		if h.fields[i].Key == key {
			out = append(out, h.fields[i].Value)
		}
	}
	return out
}

// Add appends a field.
func (h *Map) Add(key, value string) {
	h.fields = append(h.fields, Field{Key: Lower(key), Value: value})
}

// AddLower appends a field whose name is already lower case.
func (h *Map) AddLower(key, value string) {
	h.fields = append(h.fields, Field{Key: key, Value: value})
}

// Set replaces the first field named key in place and removes the others,
// or appends the field when key is absent (Envoy's setCopy).
func (h *Map) Set(key, value string) {
	key = Lower(key)
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
func (h *Map) Del(key string) {
	key = Lower(key)
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
func (h *Map) Reset(fields []Field) {
	h.fields = append(h.fields[:0], fields...)
	for i := range h.fields {
		h.fields[i].Key = Lower(h.fields[i].Key)
	}
}

// Adopt makes fields the map's fields, without a copy: the caller hands
// them over, keys already lower-case (a codec that parsed them).
func (h *Map) Adopt(fields []Field) { h.fields = fields }

// Clone returns a deep copy.
func (h *Map) Clone() *Map {
	if h == nil {
		return &Map{}
	}
	return &Map{fields: append([]Field(nil), h.fields...)}
}

// String renders the map as "k: v" lines, for logs and test failures.
func (h *Map) String() string {
	var b strings.Builder
	for _, f := range h.Fields() {
		b.WriteString(f.Key)
		b.WriteString(": ")
		b.WriteString(f.Value)
		b.WriteByte('\n')
	}
	return b.String()
}

// Lower lower-cases ASCII letters, without allocating when there are none.
func Lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			if l, ok := nameTables.lower[s]; ok {
				return l
			}
			return strings.ToLower(s)
		}
	}
	return s
}
