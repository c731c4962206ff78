package admin

import (
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// maskNode is a field mask as a tree. A node without children keeps its
// whole field; a node with children keeps only those sub-fields.
type maskNode struct {
	children map[string]*maskNode
}

// parseMask reads a FieldMask's text form: comma-separated paths of
// dot-separated field names. A shorter path wins over a longer one under
// it ("a,a.b" keeps all of a).
func parseMask(s string) *maskNode {
	root := &maskNode{children: map[string]*maskNode{}}
	for _, path := range strings.Split(s, ",") {
		path = strings.TrimSpace(path)
		if path == "" {
			continue
		}
		frags := strings.Split(path, ".")
		n := root
		for i, f := range frags {
			last := i == len(frags)-1
			child, ok := n.children[f]
			switch {
			case !ok:
				child = &maskNode{}
				if !last {
					child.children = map[string]*maskNode{}
				}
				n.children[f] = child
			case child.children == nil:
				// The whole field is already kept.
			case last:
				child.children = nil
			}
			if child.children == nil {
				break
			}
			n = child
		}
	}
	return root
}

// trimMessage clears the fields of m the mask does not name. A path under
// a repeated or map field applies to every element; a path under an Any
// applies to the message packed in it (which is unpacked, trimmed and
// packed again). Unknown names keep nothing, as in protobuf's TrimMessage.
func trimMessage(m protoreflect.Message, mask *maskNode) {
	if mask == nil || mask.children == nil {
		return
	}
	if m.Descriptor().FullName() == "google.protobuf.Any" {
		trimAny(m, mask)
		return
	}
	var clear []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		child, ok := mask.children[string(fd.Name())]
		if !ok {
			clear = append(clear, fd)
			return true
		}
		if child.children == nil {
			return true
		}
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					trimMessage(mv.Message(), child)
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				list := v.List()
				for i := 0; i < list.Len(); i++ {
					trimMessage(list.Get(i).Message(), child)
				}
			}
		case fd.Message() != nil:
			trimMessage(m.Mutable(fd).Message(), child)
		}
		return true
	})
	for _, fd := range clear {
		m.Clear(fd)
	}
}

// trimAny trims the message packed in an Any; an Any of a type that is
// not linked into the binary is left as it is.
func trimAny(m protoreflect.Message, mask *maskNode) {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		return
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		return
	}
	trimMessage(inner.ProtoReflect(), mask)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inner)
	if err != nil {
		return
	}
	a.Value = b
}
