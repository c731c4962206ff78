package route

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
	// Resource names the route configuration, e.g. `route_config "local"`.
	Resource string
	// Path is the field path, e.g. "virtual_hosts[1].routes[0].match.safe_regex.regex".
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

// errs collects the problems of one compilation.
type errs struct {
	resource string
	list     []error
}

func (c *errs) add(path string, err error) {
	c.list = append(c.list, &FieldError{Resource: c.resource, Path: path, Err: err})
}

func (c *errs) errf(path, format string, args ...any) {
	c.add(path, fmt.Errorf(format, args...))
}

func (c *errs) unsupported(path string) {
	c.add(path, fmt.Errorf("field is %w by wasmesh", ErrUnsupported))
}

func (c *errs) err() error { return errors.Join(c.list...) }

// at joins a field path and a field name.
func at(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func idx(path, field string, i int) string { return fmt.Sprintf("%s[%d]", at(path, field), i) }

// only reports every populated field of m that is not listed in allowed as
// unsupported. It protects against fields added to the API after this
// package was written: they are refused, never silently ignored.
func (c *errs) only(path string, m proto.Message, allowed ...string) {
	if m == nil {
		return
	}
	r := m.ProtoReflect()
	if !r.IsValid() {
		return
	}
	var bad []string
	r.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(allowed, string(fd.Name())) {
			bad = append(bad, string(fd.Name()))
		}
		return true
	})
	slices.Sort(bad)
	for _, name := range bad {
		c.unsupported(at(path, name))
	}
}

// pgvError is the shape of protoc-gen-validate's per-field errors.
type pgvError interface {
	Field() string
	Reason() string
	Cause() error
}

// addValidation turns protoc-gen-validate errors into field errors with
// snake_case paths.
func (c *errs) addValidation(path string, err error) {
	if err == nil {
		return
	}
	if m, ok := err.(interface{ AllErrors() []error }); ok {
		for _, e := range m.AllErrors() {
			c.addValidation(path, e)
		}
		return
	}
	var v pgvError
	if !errors.As(err, &v) {
		c.add(path, err)
		return
	}
	p := at(path, snake(v.Field()))
	cause := v.Cause()
	if cause != nil {
		var inner pgvError
		if _, multi := cause.(interface{ AllErrors() []error }); multi || errors.As(cause, &inner) {
			c.addValidation(p, cause)
			return
		}
		c.errf(p, "%s: %v", v.Reason(), cause)
		return
	}
	c.add(p, errors.New(v.Reason()))
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
