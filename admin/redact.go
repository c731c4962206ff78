package admin

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
)

// redacted replaces sensitive strings and bytes, as in Envoy.
const redacted = "[redacted]"

// sensitiveExtension is udpa's field annotation for secrets
// (udpa.annotations.sensitive), registered by go-control-plane's TLS types.
const sensitiveExtension = "udpa.annotations.sensitive"

// redact hides sensitive data the way Envoy's MessageUtil::redact does:
// every field annotated sensitive, and every field below one, has its
// strings and bytes replaced by "[redacted]" and its other scalars
// cleared. Any fields are unpacked, redacted and packed again, so a
// secret inside a typed_config is found too.
func redact(m protoreflect.Message, sensitive bool) {
	xt, _ := protoregistry.GlobalTypes.FindExtensionByName(sensitiveExtension)
	redactWith(m, sensitive, xt)
}

func redactWith(m protoreflect.Message, sensitive bool, xt protoreflect.ExtensionType) {
	switch m.Descriptor().FullName() {
	case "google.protobuf.Any":
		redactAny(m, sensitive, xt)
		return
	case "google.protobuf.Value":
		if sensitive {
			redactValue(m, xt)
			return
		}
	}
	var fields []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		fields = append(fields, fd)
		return true
	})
	for _, fd := range fields {
		s := sensitive || isSensitive(fd, xt)
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			if fd.MapValue().Message() != nil {
				mp.Range(func(_ protoreflect.MapKey, v protoreflect.Value) bool {
					redactWith(v.Message(), s, xt)
					return true
				})
			} else if s {
				kind := fd.MapValue().Kind()
				if kind != protoreflect.StringKind && kind != protoreflect.BytesKind {
					m.Clear(fd)
					continue
				}
				var keys []protoreflect.MapKey
				mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
					keys = append(keys, k)
					return true
				})
				for _, k := range keys {
					mp.Set(k, redactedScalar(kind))
				}
			}
		case fd.IsList():
			list := m.Mutable(fd).List()
			switch {
			case fd.Message() != nil:
				for i := 0; i < list.Len(); i++ {
					redactWith(list.Get(i).Message(), s, xt)
				}
			case !s:
			case fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind:
				for i := 0; i < list.Len(); i++ {
					list.Set(i, redactedScalar(fd.Kind()))
				}
			default:
				m.Clear(fd)
			}
		case fd.Message() != nil:
			redactWith(m.Mutable(fd).Message(), s, xt)
		case !s:
		case fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind:
			m.Set(fd, redactedScalar(fd.Kind()))
		default:
			m.Clear(fd)
		}
	}
}

func redactedScalar(k protoreflect.Kind) protoreflect.Value {
	if k == protoreflect.BytesKind {
		return protoreflect.ValueOfBytes([]byte(redacted))
	}
	return protoreflect.ValueOfString(redacted)
}

// redactAny redacts the message packed in an Any. An Any of a type that is
// not linked in cannot be inspected; under a sensitive field it is
// emptied, elsewhere it is left alone.
func redactAny(m protoreflect.Message, sensitive bool, xt protoreflect.ExtensionType) {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		return
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		if sensitive {
			a.Value = nil
		}
		return
	}
	redactWith(inner.ProtoReflect(), sensitive, xt)
	if b, err := (proto.MarshalOptions{Deterministic: true}).Marshal(inner); err == nil {
		a.Value = b
	}
}

// redactValue redacts a sensitive google.protobuf.Value: every leaf
// becomes the string "[redacted]" (a Value must keep a kind to print).
func redactValue(m protoreflect.Message, xt protoreflect.ExtensionType) {
	od := m.Descriptor().Oneofs().ByName("kind")
	if od == nil {
		return
	}
	fd := m.WhichOneof(od)
	if fd != nil && fd.Message() != nil && fd.Message().FullName() != "google.protobuf.NullValue" {
		// struct_value or list_value: redact their leaves.
		redactWith(m.Mutable(fd).Message(), true, xt)
		return
	}
	m.Set(m.Descriptor().Fields().ByName("string_value"), protoreflect.ValueOfString(redacted))
}

func isSensitive(fd protoreflect.FieldDescriptor, xt protoreflect.ExtensionType) bool {
	if xt == nil {
		return false
	}
	opts, ok := fd.Options().(*descriptorpb.FieldOptions)
	if !ok || opts == nil || !proto.HasExtension(opts, xt) {
		return false
	}
	v, _ := proto.GetExtension(opts, xt).(bool)
	return v
}
