package pluginconfig

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wasmesh/wasmesh/wasm"
)

const myFilter = "../../examples/filters/my-filter/my-filter.wasm"

func TestAnyToBytes(t *testing.T) {
	st, _ := structpb.NewStruct(map[string]any{"my_greeting": "hi"})
	tests := []struct {
		name string
		in   func() *anypb.Any
		want string
	}{
		{"nil is empty", func() *anypb.Any { return nil }, ""},
		{"StringValue is its string", func() *anypb.Any { a, _ := anypb.New(wrapperspb.String("abc")); return a }, "abc"},
		{"BytesValue is its bytes", func() *anypb.Any { a, _ := anypb.New(wrapperspb.Bytes([]byte{1, 2})); return a }, "\x01\x02"},
		{"Struct is JSON", func() *anypb.Any { a, _ := anypb.New(st); return a }, `{"my_greeting":"hi"}`},
		{"other types are serialized", func() *anypb.Any { a, _ := anypb.New(wrapperspb.UInt32(7)); return a }, "\x08\x07"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AnyToBytes(tc.in())
			if err != nil {
				t.Fatal(err)
			}
			if strings.ReplaceAll(string(got), " ", "") != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFailurePolicy(t *testing.T) {
	tests := []struct {
		pc   *wasmv3.PluginConfig
		want wasm.FailurePolicy
	}{
		{&wasmv3.PluginConfig{}, wasm.FailClosed},
		{&wasmv3.PluginConfig{FailOpen: true}, wasm.FailOpen},
		{&wasmv3.PluginConfig{FailOpen: true, FailurePolicy: wasmv3.FailurePolicy_FAIL_CLOSED}, wasm.FailClosed},
		{&wasmv3.PluginConfig{FailurePolicy: wasmv3.FailurePolicy_FAIL_RELOAD}, wasm.FailReload},
		{&wasmv3.PluginConfig{FailurePolicy: wasmv3.FailurePolicy_FAIL_OPEN}, wasm.FailOpen},
	}
	for _, tc := range tests {
		if got := FailurePolicy(tc.pc); got != tc.want {
			t.Errorf("%v: got %v, want %v", tc.pc, got, tc.want)
		}
	}
}

func pluginConfig(code *corev3.AsyncDataSource, conf string) *wasmv3.PluginConfig {
	a, _ := anypb.New(wrapperspb.String(conf))
	return &wasmv3.PluginConfig{
		Name:          "greeting",
		Configuration: a,
		Vm: &wasmv3.PluginConfig_VmConfig{VmConfig: &wasmv3.VmConfig{
			VmId: "g", Runtime: "envoy.wasm.runtime.v8", Code: code,
			EnvironmentVariables: &wasmv3.EnvironmentVariables{KeyValues: map[string]string{"A": "1"}, HostEnvKeys: []string{"WASMESH_TEST_ENV"}},
		}},
	}
}

func localFile(name string) *corev3.AsyncDataSource {
	return &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: name}}}}
}

func newRuntime(t *testing.T) *wasm.Runtime {
	rt, err := wasm.NewRuntime(context.Background(), wasm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

func TestLoadRunsThePlugin(t *testing.T) {
	rt := newRuntime(t)
	t.Setenv("WASMESH_TEST_ENV", "x")
	l, err := Load(context.Background(), rt, pluginConfig(localFile(myFilter), `{"my_greeting":"loaded"}`), Options{Instances: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := l.Plugin.NewHTTPStream(wasm.StreamOptions{})
	s.OnRequestHeaders(wasm.NewHeaders(":path", "/"), true)
	rh := wasm.NewHeaders(":status", "200")
	s.OnResponseHeaders(rh, true)
	s.Close()
	if v, _ := rh.Get("x-greeting"); v != "loaded" {
		t.Fatalf("x-greeting = %q", v)
	}
}

func TestLoadErrorsNameTheField(t *testing.T) {
	code, _ := os.ReadFile(myFilter)
	inline := &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: code}}}}
	tests := []struct {
		name string
		pc   func() *wasmv3.PluginConfig
		want string
	}{
		{"missing file", func() *wasmv3.PluginConfig { return pluginConfig(localFile("/nonexistent.wasm"), "{}") }, "vm_config.code.local.filename"},
		{"null runtime", func() *wasmv3.PluginConfig {
			pc := pluginConfig(inline, "{}")
			pc.GetVmConfig().Runtime = "envoy.wasm.runtime.null"
			return pc
		}, "vm_config.runtime"},
		{"unknown runtime", func() *wasmv3.PluginConfig {
			pc := pluginConfig(inline, "{}")
			pc.GetVmConfig().Runtime = "envoy.wasm.runtime.nope"
			return pc
		}, `unknown runtime "envoy.wasm.runtime.nope"`},
		{"configure returns false", func() *wasmv3.PluginConfig { return pluginConfig(inline, "not json") }, "proxy_on_configure returned false"},
		{"not wasm", func() *wasmv3.PluginConfig {
			return pluginConfig(&corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "garbage"}}}}, "{}")
		}, "vm_config"},
		{"remote without fetcher", func() *wasmv3.PluginConfig {
			return pluginConfig(&corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Remote{Remote: &corev3.RemoteDataSource{
				HttpUri: &corev3.HttpUri{Uri: "http://x/f.wasm", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "c"}, Timeout: durationpb.New(time.Second)}, Sha256: "00"}}}, "{}")
		}, "vm_config.code.remote"},
		{"duplicate env key", func() *wasmv3.PluginConfig {
			pc := pluginConfig(inline, "{}")
			pc.GetVmConfig().EnvironmentVariables.KeyValues["WASMESH_TEST_ENV"] = "dup"
			return pc
		}, "vm_config.environment_variables"},
	}
	rt := newRuntime(t)
	t.Setenv("WASMESH_TEST_ENV", "x")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Load(context.Background(), rt, tc.pc(), Options{Instances: 1})
			if err == nil {
				l.Close()
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// httpFetcher is a small real RemoteFetcher: it fetches the URI over HTTP.
type httpFetcher struct{}

func (f httpFetcher) Fetch(ctx context.Context, cluster, uri string, timeoutMillis int64, retries uint32) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", uri, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

func TestRemoteCodeIsCheckedAgainstItsSHA256(t *testing.T) {
	code, _ := os.ReadFile(myFilter)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(code) }))
	defer srv.Close()
	sum := sha256.Sum256(code)
	remote := func(sha string) *corev3.AsyncDataSource {
		return &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Remote{Remote: &corev3.RemoteDataSource{
			HttpUri: &corev3.HttpUri{Uri: srv.URL + "/f.wasm", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "code"}, Timeout: durationpb.New(time.Second)}, Sha256: sha}}}
	}
	rt := newRuntime(t)
	l, err := Load(context.Background(), rt, pluginConfig(remote(hex.EncodeToString(sum[:])), `{}`), Options{Instances: 1, Remote: httpFetcher{}})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	_, err = Load(context.Background(), rt, pluginConfig(remote(strings.Repeat("ab", 32)), `{}`), Options{Instances: 1, Remote: httpFetcher{}})
	if err == nil || !strings.Contains(err.Error(), "vm_config.code.remote.sha256: mismatch") {
		t.Fatalf("want a sha256 mismatch, got %v", err)
	}
}
