package route

import (
	"errors"
	"fmt"
	"regexp"

	"google.golang.org/protobuf/proto"

	"github.com/wasmesh/wasmesh/internal/configerr"
)

// FieldError is one configuration problem: the resource, the field path
// inside it, and what is wrong.
type FieldError = configerr.FieldError

// ErrUnsupported is wrapped by the errors for fields that change behaviour
// but are not implemented.
var ErrUnsupported = configerr.ErrUnsupported

// errs collects the problems of one compilation.
type errs struct {
	resource string
	list     []error
	regexes  regexes
	// authority caches the analysis of :authority regexes (hostindex.go)
	// by compiled regex, itself shared by pattern.
	authority map[*regexp.Regexp]authorityInfo
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
func at(path, field string) string { return configerr.At(path, field) }

func idx(path, field string, i int) string { return configerr.Idx(path, field, i) }

// only reports every populated field of m that is not listed in allowed as
// unsupported. It protects against fields added to the API after this
// package was written: they are refused, never silently ignored.
func (c *errs) only(path string, m proto.Message, allowed ...string) {
	for _, name := range configerr.Unexpected(m, allowed...) {
		c.unsupported(at(path, name))
	}
}

// addValidation turns protoc-gen-validate errors into field errors with
// snake_case paths.
func (c *errs) addValidation(path string, err error) { configerr.Validation(path, err, c.add) }
