// Package configerr is how config compilers (route, cluster) report
// problems: a FieldError names the resource and the field path, fields that
// change behaviour but are not implemented wrap ErrUnsupported, and
// protoc-gen-validate errors become field errors with proto field names.
package configerr

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// FieldError is one configuration problem: the resource, the field path
// inside it, and what is wrong.
type FieldError struct {
	// Resource names the resource, e.g. `cluster "backend"`.
	Resource string
	// Path is the field path, e.g. "virtual_hosts[1].routes[0].match".
	Path string
	Err  error
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Resource + ": " + e.Err.Error()
	}
	return e.Resource + " " + e.Path + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// ErrUnsupported is wrapped by the errors for fields that change behaviour
// but are not implemented.
var ErrUnsupported = errors.New("not supported")

// At joins a field path and a field name.
func At(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// Idx is the path of element i of a repeated field.
func Idx(path, field string, i int) string { return fmt.Sprintf("%s[%d]", At(path, field), i) }

// Unexpected returns, sorted, the names of the fields set in m that are not
// in allowed: fields added to the API later are refused, never silently
// ignored.
func Unexpected(m proto.Message, allowed ...string) []string {
	if m == nil {
		return nil
	}
	r := m.ProtoReflect()
	if !r.IsValid() {
		return nil
	}
	var bad []string
	r.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(allowed, string(fd.Name())) {
			bad = append(bad, string(fd.Name()))
		}
		return true
	})
	slices.Sort(bad)
	return bad
}

// pgvError is the shape of protoc-gen-validate's per-field errors.
type pgvError interface {
	Field() string
	Reason() string
	Cause() error
}

// Validation turns protoc-gen-validate errors found under path into field
// errors with snake_case paths, reported through add.
func Validation(path string, err error, add func(path string, err error)) {
	if err == nil {
		return
	}
	if m, ok := err.(interface{ AllErrors() []error }); ok {
		for _, e := range m.AllErrors() {
			Validation(path, e, add)
		}
		return
	}
	var v pgvError
	if !errors.As(err, &v) {
		add(path, err)
		return
	}
	p := At(path, snake(v.Field()))
	if cause := v.Cause(); cause != nil {
		var inner pgvError
		if _, multi := cause.(interface{ AllErrors() []error }); multi || errors.As(cause, &inner) {
			Validation(p, cause, add)
			return
		}
		add(p, fmt.Errorf("%s: %v", v.Reason(), cause))
		return
	}
	add(p, errors.New(v.Reason()))
}

// snake converts a Go field name as protoc-gen-validate reports it
// ("VirtualHosts[0]") to the proto field name ("virtual_hosts[0]").
func snake(s string) string {
	var b strings.Builder
	inKey := false
	for i, r := range s {
		switch {
		case r == '[':
			inKey = true
		case r == ']':
			inKey = false
		case !inKey && unicode.IsUpper(r):
			if i > 0 && s[i-1] != '.' {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
