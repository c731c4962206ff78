package bootstrap

import (
	"fmt"
	"strings"

	udpav1 "github.com/cncf/xds/go/udpa/type/v1"
	xdsv3 "github.com/cncf/xds/go/xds/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	udpaTypedStruct = "type.googleapis.com/udpa.type.v1.TypedStruct"
	xdsTypedStruct  = "type.googleapis.com/xds.type.v3.TypedStruct"
)

// UnwrapTypedStructs replaces every Any holding a TypedStruct (udpa v1 or
// xds v3) with an Any of the real type, decoded from the struct's JSON, as
// Envoy does when it reads a typed_config.
func UnwrapTypedStructs(m proto.Message) error {
	return walkAnys(m.ProtoReflect(), "", func(path string, a *anypb.Any) error {
		var typeURL string
		var value *structpb.Struct
		switch a.GetTypeUrl() {
		case udpaTypedStruct:
			ts := &udpav1.TypedStruct{}
			if err := a.UnmarshalTo(ts); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			typeURL, value = ts.GetTypeUrl(), ts.GetValue()
		case xdsTypedStruct:
			ts := &xdsv3.TypedStruct{}
			if err := a.UnmarshalTo(ts); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			typeURL, value = ts.GetTypeUrl(), ts.GetValue()
		default:
			return nil
		}
		name := typeURL
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			name = name[i+1:]
		}
		mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
		if err != nil {
			return fmt.Errorf("%s.type_url: unknown type %q", path, typeURL)
		}
		inner := mt.New().Interface()
		if value != nil {
			js, err := protojson.Marshal(value)
			if err != nil {
				return fmt.Errorf("%s.value: %w", path, err)
			}
			if err := protojson.Unmarshal(js, inner); err != nil {
				return fmt.Errorf("%s.value: %s", path, cleanProtojsonError(err))
			}
		}
		if err := UnwrapTypedStructs(inner); err != nil {
			return err
		}
		na, err := anypb.New(inner)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		a.TypeUrl, a.Value = na.TypeUrl, na.Value
		return nil
	})
}

// walkAnys calls fn for every Any in m (recursing into the Any's content
// after fn), with the field path.
func walkAnys(m protoreflect.Message, path string, fn func(string, *anypb.Any) error) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		if err := fn(path, a); err != nil {
			return err
		}
		inner, err := a.UnmarshalNew()
		if err != nil {
			return nil // unknown types are reported by protojson/validation
		}
		if err := walkAnys(inner.ProtoReflect(), path, fn); err != nil {
			return err
		}
		na, err := anypb.New(inner)
		if err == nil {
			a.Value = na.Value
		}
		return nil
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := joinPath(path, string(fd.Name()))
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = walkAnys(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i), fn)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = walkAnys(mv.Message(), fmt.Sprintf("%s[%q]", p, k.String()), fn)
				return err == nil
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			err = walkAnys(v.Message(), p, fn)
		}
		return err == nil
	})
	return err
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}
