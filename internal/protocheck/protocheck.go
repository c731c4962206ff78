package protocheck

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Only returns one error per field set in m that is not in allowed, each
// named "<path>.<field>: <reason>". Fields listed in noop are accepted.
func Only(path string, m proto.Message, allowed ...string) []error {
	set := map[string]bool{}
	for _, a := range allowed {
		set[a] = true
	}
	var errs []error
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		name := string(fd.Name())
		if fd.ContainingOneof() != nil && !fd.ContainingOneof().IsSynthetic() && set[string(fd.ContainingOneof().Name())] {
			return true
		}
		if !set[name] {
			errs = append(errs, fmt.Errorf("%s: not implemented by wasmesh", join(path, name)))
		}
		return true
	})
	return errs
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}
