package wasm

import (
	"bytes"
	"compress/zlib"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// helloZlib is zlib.compress(b"hello") from C zlib (Python), so the test
// reads a stream Envoy's compress would produce.
const helloZlib = "\x78\x9c\xcb\x48\xcd\xc9\xc9\x07\x00\x06\x2c\x02\x15"

// declareArgs encodes DeclarePropertyArguments.
func declareArgs(name string, readOnly bool, typ, span uint64, schema string) string {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, name)
	if readOnly {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	if typ != 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, typ)
	}
	if schema != "" {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendString(b, schema)
	}
	if span != 0 {
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, span)
	}
	return string(b)
}

// filterStateArgs encodes SetEnvoyFilterStateArguments.
func filterStateArgs(p, value string, span uint64) string {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, p)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, value)
	if span != 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, span)
	}
	return string(b)
}

func zlibOf(t testing.TB, data []byte) string {
	t.Helper()
	var b bytes.Buffer
	w, err := zlib.NewWriterLevel(&b, zlib.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return b.String()
}

// recordingCallbacks counts the stream events the data plane receives.
type recordingCallbacks struct {
	mu     sync.Mutex
	clears int
}

func (r *recordingCallbacks) ContinueStream(StreamType)        {}
func (r *recordingCallbacks) CloseStream(StreamType)           {}
func (r *recordingCallbacks) SendLocalResponse(*LocalResponse) {}
func (r *recordingCallbacks) ClearRouteCache() {
	r.mu.Lock()
	r.clears++
	r.mu.Unlock()
}

func ff(name, args string, kv ...string) []string {
	return append([]string{"x-ff", name, "x-ff-args", args}, kv...)
}

func TestForeignCompression(t *testing.T) {
	e := mustPropsPlugin(t, PluginConfig{})
	text := strings.Repeat("hello proxy-wasm ", 100)
	cases := []struct {
		name   string
		kv     []string
		status Status
		check  func(t *testing.T, v string)
	}{
		{name: "compress", kv: ff("compress", text), check: func(t *testing.T, v string) {
			r, err := zlib.NewReader(strings.NewReader(v))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || string(got) != text {
				t.Fatalf("inflated %q, %v", got, err)
			}
			if len(v) >= len(text) {
				t.Fatalf("compressed %d bytes into %d", len(text), len(v))
			}
		}},
		{name: "compress empty", kv: ff("compress", ""), check: func(t *testing.T, v string) {
			if got, err := inflateCapped([]byte(v), 10); err != nil || len(got) != 0 {
				t.Fatalf("inflated %q, %v", got, err)
			}
		}},
		{name: "uncompress C zlib", kv: ff("uncompress", helloZlib), check: func(t *testing.T, v string) {
			if v != "hello" {
				t.Fatalf("got %q", v)
			}
		}},
		{name: "uncompress round trip", kv: ff("uncompress", zlibOf(t, []byte(text))), check: func(t *testing.T, v string) {
			if v != text {
				t.Fatalf("got %q", v)
			}
		}},
		{name: "uncompress garbage", kv: ff("uncompress", "not zlib"), status: StatusSerializationFailure},
		{name: "uncompress truncated", kv: ff("uncompress", helloZlib[:8]), status: StatusSerializationFailure},
		{name: "uncompress bad checksum", kv: ff("uncompress", helloZlib[:len(helloZlib)-1]+"\x00"), status: StatusSerializationFailure},
		{name: "uncompress empty", kv: ff("uncompress", ""), status: StatusSerializationFailure},
		{name: "uncompress bomb", kv: ff("uncompress", zlibOf(t, make([]byte, maxForeignBytes+1))), status: StatusSerializationFailure},
		{name: "no return pointers", kv: ff("compress", text, "x-ff-noret", "1"), check: func(t *testing.T, v string) {
			if v != "" {
				t.Fatalf("got %q", v)
			}
		}},
		{name: "unknown function", kv: ff("verify_signature", ""), status: StatusNotFound},
		{name: "empty name", kv: ff("", ""), status: StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := e.p.NewHTTPStream(StreamOptions{})
			defer s.Close()
			r := run(t, s, c.kv...)
			if r.status != c.status {
				t.Fatalf("status %d, want %d", r.status, c.status)
			}
			if c.check != nil {
				c.check(t, r.value)
			}
		})
	}
}

func TestInflateCapped(t *testing.T) {
	five := zlibOf(t, []byte("12345"))
	if got, err := inflateCapped([]byte(five), 5); err != nil || string(got) != "12345" {
		t.Fatalf("at the cap: %q %v", got, err)
	}
	if _, err := inflateCapped([]byte(five), 4); !errors.Is(err, errInflateCap) {
		t.Fatalf("past the cap: %v", err)
	}
}

func TestForeignDeclareProperty(t *testing.T) {
	t.Run("from configuration", func(t *testing.T) {
		e := mustPropsPlugin(t, PluginConfig{Configuration: []byte(declareArgs("ro", true, 1, 1, ""))})
		for n := 0; n < 2; n++ { // read-only applies per stream
			s := e.p.NewHTTPStream(StreamOptions{})
			if r := run(t, s, "x-set-path", "ro", "x-set-value", "first"); r.status != StatusOK {
				t.Fatalf("first write: %d", r.status)
			}
			if r := run(t, s, "x-set-path", "ro", "x-set-value", "second"); r.status != StatusBadArgument {
				t.Fatalf("second write: %d", r.status)
			}
			if r := run(t, s, "x-get", "ro"); r.status != StatusOK || r.value != "first" {
				t.Fatalf("get: %d %q", r.status, r.value)
			}
			// The read-only value cannot be replaced through
			// set_envoy_filter_state either.
			if r := run(t, s, ff("set_envoy_filter_state", filterStateArgs("wasm.ro", "x", 0))...); r.status != StatusBadArgument {
				t.Fatalf("set_envoy_filter_state over a read-only value: %d", r.status)
			}
			s.Close()
		}
	})
	t.Run("bad configuration fails the plugin", func(t *testing.T) {
		e, err := newPropsPlugin(t, PluginConfig{Configuration: []byte("\xff\xff")})
		if err == nil || !strings.Contains(err.Error(), "proxy_on_configure returned false") {
			t.Fatalf("NewPlugin error %v", err)
		}
		if e.logs.FilterMessage("props: declare_property failed").Len() != 1 {
			t.Fatalf("logs: %v", e.logs.All())
		}
	})
	t.Run("from a stream", func(t *testing.T) {
		e := mustPropsPlugin(t, PluginConfig{})
		s := e.p.NewHTTPStream(StreamOptions{})
		defer s.Close()
		cases := []struct {
			name   string
			args   string
			root   bool
			status Status
		}{
			{"declare", declareArgs("dp", true, 0, 0, ""), false, StatusOK},
			{"twice", declareArgs("dp", false, 0, 0, ""), false, StatusBadArgument},
			{"twice from the root", declareArgs("dp", false, 0, 0, ""), true, StatusBadArgument},
			{"other name from the root", declareArgs("dp2", false, 3, 2, "type.googleapis.com/x"), true, StatusOK},
			{"malformed", "\x0a\x05ab", false, StatusBadArgument},
			{"name not UTF-8", declareArgs("\xff", false, 0, 0, ""), false, StatusBadArgument},
		}
		for _, c := range cases {
			kv := ff("declare_property", c.args)
			if c.root {
				kv = append(kv, "x-ctx", "root")
			}
			if r := run(t, s, kv...); r.status != c.status {
				t.Fatalf("%s: status %d, want %d", c.name, r.status, c.status)
			}
		}
		// The declaration reached the root context: another stream's
		// writes are read-only after the first.
		s2 := e.p.NewHTTPStream(StreamOptions{})
		defer s2.Close()
		if r := run(t, s2, "x-set-path", "dp", "x-set-value", "1"); r.status != StatusOK {
			t.Fatalf("first write: %d", r.status)
		}
		if r := run(t, s2, "x-set-path", "dp", "x-set-value", "2"); r.status != StatusBadArgument {
			t.Fatalf("second write: %d", r.status)
		}
		if r := run(t, s2, "x-set-path", "dp2", "x-set-value", "2"); r.status != StatusOK {
			t.Fatalf("write to a writable declared property: %d", r.status)
		}
	})
}

func TestForeignSetEnvoyFilterState(t *testing.T) {
	e := mustPropsPlugin(t, PluginConfig{})
	t.Run("store and read back", func(t *testing.T) {
		si := &StreamInfo{}
		s := e.p.NewHTTPStream(StreamOptions{Properties: si})
		defer s.Close()
		if r := run(t, s, ff("set_envoy_filter_state", filterStateArgs("envoy.tcp_proxy.cluster", "c1", 1))...); r.status != StatusOK {
			t.Fatalf("status %d", r.status)
		}
		if r := run(t, s, "x-get", path("filter_state", "envoy.tcp_proxy.cluster")); r.status != StatusOK || r.value != "c1" {
			t.Fatalf("get: %d %q", r.status, r.value)
		}
		if v := s.FilterState()["envoy.tcp_proxy.cluster"]; string(v) != "c1" {
			t.Fatalf("FilterState() = %q", s.FilterState())
		}
		if v, ok := si.FilterStateValue("envoy.tcp_proxy.cluster"); !ok || string(v) != "c1" {
			t.Fatalf("data plane filter state = %q %v", v, ok)
		}
		s.inst.mu.Lock()
		span := s.ctx.props.state["envoy.tcp_proxy.cluster"].span
		s.inst.mu.Unlock()
		if span != spanDownstreamRequest {
			t.Fatalf("span %d", span)
		}
	})
	cases := []struct {
		name   string
		kv     []string
		opts   StreamOptions
		status Status
	}{
		{name: "root context", kv: ff("set_envoy_filter_state", filterStateArgs("k", "v", 0), "x-ctx", "root"), status: StatusNotFound},
		{name: "empty key", kv: ff("set_envoy_filter_state", filterStateArgs("", "v", 0)), status: StatusNotFound},
		{name: "value not UTF-8", kv: ff("set_envoy_filter_state", filterStateArgs("k", "\xc3", 0)), status: StatusBadArgument},
		{name: "malformed", kv: ff("set_envoy_filter_state", "\x0a"), status: StatusBadArgument},
		{name: "refused by the data plane", kv: ff("set_envoy_filter_state", filterStateArgs("k", "v", 0)),
			opts: StreamOptions{Properties: refusingProps{}}, status: StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := e.p.NewHTTPStream(c.opts)
			defer s.Close()
			if r := run(t, s, c.kv...); r.status != c.status {
				t.Fatalf("status %d, want %d", r.status, c.status)
			}
			if fs := s.FilterState(); len(fs) != 0 {
				t.Fatalf("FilterState() = %q", fs)
			}
		})
	}
}

func TestForeignClearRouteCache(t *testing.T) {
	e := mustPropsPlugin(t, PluginConfig{})
	cb := &recordingCallbacks{}
	s := e.p.NewHTTPStream(StreamOptions{Callbacks: cb})
	defer s.Close()
	if r := run(t, s, ff("clear_route_cache", "")...); r.status != StatusOK || r.value != "" {
		t.Fatalf("status %d value %q", r.status, r.value)
	}
	if r := run(t, s, ff("clear_route_cache", "", "x-ctx", "root")...); r.status != StatusNotFound {
		t.Fatalf("root context: status %d", r.status)
	}
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if cb.clears != 1 {
		t.Fatalf("ClearRouteCache called %d times", cb.clears)
	}
}

func TestDecodeForeignArgs(t *testing.T) {
	// Unknown fields (varint, fixed64, bytes, group) and a known field with
	// another wire type are skipped.
	var noisy []byte
	noisy = protowire.AppendTag(noisy, 9, protowire.VarintType)
	noisy = protowire.AppendVarint(noisy, 7)
	noisy = protowire.AppendTag(noisy, 10, protowire.Fixed64Type)
	noisy = protowire.AppendFixed64(noisy, 1)
	noisy = protowire.AppendTag(noisy, 11, protowire.StartGroupType)
	noisy = protowire.AppendTag(noisy, 1, protowire.BytesType)
	noisy = protowire.AppendString(noisy, "inside")
	noisy = protowire.AppendTag(noisy, 11, protowire.EndGroupType)
	noisy = protowire.AppendTag(noisy, 2, protowire.Fixed32Type) // readonly, wrong wire type
	noisy = protowire.AppendFixed32(noisy, 1)
	cases := []struct {
		name string
		in   string
		want declarePropertyArgs
		err  bool
	}{
		{name: "empty", in: "", want: declarePropertyArgs{}},
		{name: "all fields", in: declareArgs("p", true, 3, 2, "s"), want: declarePropertyArgs{name: "p", readOnly: true, typ: propertyProtobuf, schema: "s", span: spanDownstreamConnection}},
		{name: "unknown enums", in: declareArgs("p", false, 9, 9, ""), want: declarePropertyArgs{name: "p"}},
		{name: "noise skipped", in: declareArgs("n", false, 0, 0, "") + string(noisy), want: declarePropertyArgs{name: "n"}},
		{name: "last value wins", in: declareArgs("a", false, 0, 0, "") + declareArgs("b", false, 0, 0, ""), want: declarePropertyArgs{name: "b"}},
		{name: "truncated length", in: "\x0a\x05ab", err: true},
		{name: "truncated varint", in: "\x10\xff", err: true},
		{name: "field zero", in: "\x00\x01", err: true},
		{name: "stray end group", in: "\x0c", err: true},
		// Found by FuzzDecodeDeclarePropertyArgs: protowire.ConsumeTag
		// accepts field numbers past 2^29-1, protobuf parsers do not.
		{name: "field number out of range", in: "\x80\x80\x80\x800\x80\x800", err: true},
		{name: "bad UTF-8", in: declareArgs("\xff", false, 0, 0, ""), err: true},
		{name: "schema is bytes", in: declareArgs("p", false, 0, 0, "\xff"), want: declarePropertyArgs{name: "p", schema: "\xff"}},
	}
	for _, c := range cases {
		got, err := decodeDeclarePropertyArgs([]byte(c.in))
		if (err != nil) != c.err {
			t.Errorf("%s: err %v", c.name, err)
			continue
		}
		if !c.err && got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
	fs, err := decodeSetFilterStateArgs([]byte(filterStateArgs("k", "v", 2) + string(noisy)))
	if err != nil || fs != (setFilterStateArgs{path: "k", value: "v", span: spanDownstreamConnection}) {
		t.Errorf("set_envoy_filter_state args: %+v %v", fs, err)
	}
}

// foreignDescriptors builds Envoy's argument messages at run time, for a
// differential fuzz against the protobuf library's own parser.
func foreignDescriptors(t testing.TB) (declare, filterState protoreflect.MessageDescriptor) {
	t.Helper()
	field := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, enum string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{
			Name:   proto.String(name),
			Number: proto.Int32(num),
			Label:  descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			Type:   typ.Enum(),
		}
		if enum != "" {
			f.TypeName = proto.String(".envoy.source.extensions.common.wasm." + enum)
		}
		return f
	}
	enum := func(name string, values ...string) *descriptorpb.EnumDescriptorProto {
		e := &descriptorpb.EnumDescriptorProto{Name: proto.String(name)}
		for n, v := range values {
			e.Value = append(e.Value, &descriptorpb.EnumValueDescriptorProto{Name: proto.String(v), Number: proto.Int32(int32(n))})
		}
		return e
	}
	T := descriptorpb.FieldDescriptorProto_TYPE_STRING
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("wasmesh_foreign_test.proto"),
		Package: proto.String("envoy.source.extensions.common.wasm"),
		Syntax:  proto.String("proto3"),
		EnumType: []*descriptorpb.EnumDescriptorProto{
			enum("WasmType", "Bytes", "String", "FlatBuffers", "Protobuf"),
			enum("LifeSpan", "FilterChain", "DownstreamRequest", "DownstreamConnection"),
		},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("DeclarePropertyArguments"), Field: []*descriptorpb.FieldDescriptorProto{
				field("name", 1, T, ""),
				field("readonly", 2, descriptorpb.FieldDescriptorProto_TYPE_BOOL, ""),
				field("type", 3, descriptorpb.FieldDescriptorProto_TYPE_ENUM, "WasmType"),
				field("schema", 4, descriptorpb.FieldDescriptorProto_TYPE_BYTES, ""),
				field("span", 5, descriptorpb.FieldDescriptorProto_TYPE_ENUM, "LifeSpan"),
			}},
			{Name: proto.String("SetEnvoyFilterStateArguments"), Field: []*descriptorpb.FieldDescriptorProto{
				field("path", 1, T, ""),
				field("value", 2, T, ""),
				field("span", 3, descriptorpb.FieldDescriptorProto_TYPE_ENUM, "LifeSpan"),
			}},
		},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().ByName("DeclarePropertyArguments"), fd.Messages().ByName("SetEnvoyFilterStateArguments")
}

func normalType(n protoreflect.EnumNumber) propertyType {
	if n < 0 || n > 3 {
		return propertyBytes
	}
	return propertyType(n)
}

// FuzzDecodeDeclarePropertyArgs compares the hand decoder with the protobuf
// library on the same descriptor.
func FuzzDecodeDeclarePropertyArgs(f *testing.F) {
	for _, s := range []string{"", declareArgs("p", true, 3, 2, "s"), "\x0a\x05ab", "\x00", "\x0c", declareArgs("\xff", false, 0, 0, ""),
		declareArgs("a", false, 0, 0, "") + "\x5b\x0a\x01x\x5c", "\x10\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"} {
		f.Add([]byte(s))
	}
	md, _ := foreignDescriptors(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeDeclarePropertyArgs(b)
		m := dynamicpb.NewMessage(md)
		ref := proto.Unmarshal(b, m)
		if (err != nil) != (ref != nil) {
			t.Fatalf("%q: hand decoder error %v, protobuf error %v", b, err, ref)
		}
		if err != nil {
			return
		}
		get := func(name string) protoreflect.Value { return m.Get(md.Fields().ByName(protoreflect.Name(name))) }
		want := declarePropertyArgs{
			name:     get("name").String(),
			readOnly: get("readonly").Bool(),
			typ:      normalType(get("type").Enum()),
			schema:   string(get("schema").Bytes()),
			span:     normalSpan(lifeSpan(get("span").Enum())),
		}
		if got != want {
			t.Fatalf("%q: got %+v, want %+v", b, got, want)
		}
	})
}

// FuzzDecodeSetEnvoyFilterStateArgs compares the hand decoder with the
// protobuf library on the same descriptor.
func FuzzDecodeSetEnvoyFilterStateArgs(f *testing.F) {
	for _, s := range []string{"", filterStateArgs("k", "v", 1), "\x12\x01\xc3", "\x18\x07", "\x0a"} {
		f.Add([]byte(s))
	}
	_, md := foreignDescriptors(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeSetFilterStateArgs(b)
		m := dynamicpb.NewMessage(md)
		ref := proto.Unmarshal(b, m)
		if (err != nil) != (ref != nil) {
			t.Fatalf("%q: hand decoder error %v, protobuf error %v", b, err, ref)
		}
		if err != nil {
			return
		}
		get := func(name string) protoreflect.Value { return m.Get(md.Fields().ByName(protoreflect.Name(name))) }
		want := setFilterStateArgs{path: get("path").String(), value: get("value").String(), span: normalSpan(lifeSpan(get("span").Enum()))}
		if got != want {
			t.Fatalf("%q: got %+v, want %+v", b, got, want)
		}
	})
}
