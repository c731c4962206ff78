package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/wasmesh/wasmesh/internal/configerr"
)

// Errors a request can end with. The router maps them to Envoy's response
// flags; test them with errors.Is.
var (
	// ErrNoHealthyUpstream: no host to send to (UH).
	ErrNoHealthyUpstream = errors.New("no healthy upstream")
	// ErrOverflow: a circuit breaker is open (UO).
	ErrOverflow = errors.New("upstream overflow")
	// ErrConnectFailure: the connection to the host (TCP or TLS handshake)
	// failed or timed out (UF).
	ErrConnectFailure = errors.New("upstream connect failure")
	// ErrUpstreamReset: the connection broke after it was established,
	// before response headers arrived (UC).
	ErrUpstreamReset = errors.New("upstream connection termination")
	// ErrUnknownCluster: no cluster has the name (NC).
	ErrUnknownCluster = errors.New("unknown cluster")
	// ErrClosed: the manager is closed.
	ErrClosed = errors.New("cluster manager closed")
)

// UpstreamError is a failed request or connection: the cluster, the host it
// went to (nil when none was picked), the kind (one of the Err* values
// above; errors.Is matches it) and the cause. A timeout from the request's
// context is reported as the cause, so errors.Is(err,
// context.DeadlineExceeded) holds for the router's UT.
type UpstreamError struct {
	Cluster string
	Host    *Host
	Kind    error
	Err     error
}

func (e *UpstreamError) Error() string {
	var b strings.Builder
	b.WriteString("cluster ")
	b.WriteString(fmt.Sprintf("%q", e.Cluster))
	if e.Host != nil {
		b.WriteString(" host ")
		b.WriteString(e.Host.Address())
	}
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *UpstreamError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// OverflowError names the circuit breaker that tripped. It matches
// ErrOverflow.
type OverflowError struct {
	// Resource is max_connections, max_pending_requests, max_requests or
	// max_retries.
	Resource string
}

func (e *OverflowError) Error() string        { return "upstream overflow: " + e.Resource }
func (e *OverflowError) Is(target error) bool { return target == ErrOverflow }

// FieldError is one configuration problem: the resource, the field path
// inside it, and what is wrong.
type FieldError = configerr.FieldError

// ErrUnsupported is wrapped by the errors for fields that change behaviour
// but are not implemented.
var ErrUnsupported = configerr.ErrUnsupported

// errs collects the problems of one compilation.
type errs struct {
	resource string // or, when empty, kind and name: built on the first error
	kind     string
	name     string
	list     []error
}

func (c *errs) add(path string, err error) {
	if c.resource == "" {
		c.resource = fmt.Sprintf("%s %q", c.kind, c.name)
	}
	c.list = append(c.list, &FieldError{Resource: c.resource, Path: path, Err: err})
}

func (c *errs) errf(path, format string, args ...any) {
	c.add(path, fmt.Errorf(format, args...))
}

func (c *errs) unsupported(path string) {
	c.add(path, fmt.Errorf("field is %w by wasmesh", ErrUnsupported))
}

func (c *errs) unsupportedValue(path string, v any) {
	c.add(path, fmt.Errorf("value %v is %w by wasmesh", v, ErrUnsupported))
}

func (c *errs) err() error { return errors.Join(c.list...) }

func (c *errs) ok() bool { return len(c.list) == 0 }

// at joins a field path and a field name.
func at(path, field string) string { return configerr.At(path, field) }

func idx(path, field string, i int) string { return configerr.Idx(path, field, i) }

// only reports every populated field of m that is not listed in allowed as
// unsupported, so fields added to the API later are refused rather than
// silently ignored. The messages every cluster and endpoint has go through
// onlyFields with their refused fields worked out once instead.
func (c *errs) only(path string, m proto.Message, allowed ...string) {
	if m == nil {
		return
	}
	c.onlyFields(path, m, refusedFields(m, allowed...))
}

// refused is the fields of one message type that only refuses: those not
// in an allowed list, as descriptors. Immutable.
type refused struct {
	fields  []protoreflect.FieldDescriptor // outside oneofs
	oneofs  []protoreflect.OneofDescriptor // with a member not allowed
	allowed []string                       // for the members of oneofs
}

func refusedFields(m proto.Message, allowed ...string) *refused {
	f := &refused{allowed: allowed}
	d := m.ProtoReflect().Descriptor()
	fds := d.Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		if slices.Contains(allowed, string(fd.Name())) {
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if !slices.Contains(f.oneofs, od) {
				f.oneofs = append(f.oneofs, od)
			}
			continue
		}
		f.fields = append(f.fields, fd)
	}
	return f
}

// onlyFields is only with the refused fields of m's type. Populated fields
// are found with Has and WhichOneof on those fields alone: Range would make
// a reflect value of every populated message field, and most fields are
// allowed.
func (c *errs) onlyFields(path string, m proto.Message, f *refused) {
	r := m.ProtoReflect()
	if !r.IsValid() {
		return
	}
	var bad []string
	for _, fd := range f.fields {
		if r.Has(fd) {
			bad = append(bad, string(fd.Name()))
		}
	}
	for _, od := range f.oneofs {
		if fd := r.WhichOneof(od); fd != nil && !slices.Contains(f.allowed, string(fd.Name())) {
			bad = append(bad, string(fd.Name()))
		}
	}
	slices.Sort(bad)
	for _, name := range bad {
		c.unsupported(at(path, name))
	}
}

// addValidation turns protoc-gen-validate errors into field errors with
// snake_case paths.
func (c *errs) addValidation(path string, err error) { configerr.Validation(path, err, c.add) }
