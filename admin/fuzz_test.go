package admin

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/proto"
)

// FuzzMask parses arbitrary field masks and applies them to a full config
// dump: no panic, the result still marshals, and trimming twice changes
// nothing more.
func FuzzMask(f *testing.F) {
	for _, s := range []string{"", "a", "cluster.name", "static_clusters,version_info", "bootstrap.node.id",
		"a..b", ",,", ".", "static_listeners.listener.filter_chains.transport_socket.typed_config.common_tls_context",
		"dynamic_listeners.active_state.listener.name,dynamic_listeners.name", "x.y,x"} {
		f.Add(s)
	}
	fx := newConfigFixture(&testing.T{})
	sections := []proto.Message{fx.bootstrap, fx.clusters, fx.endpoints, fx.listeners, fx.routes, fx.secrets}
	f.Fuzz(func(t *testing.T, mask string) {
		tree := parseMask(mask)
		for _, sec := range sections {
			m := proto.Clone(sec)
			trimMessage(m.ProtoReflect(), tree)
			once := proto.Clone(m)
			trimMessage(m.ProtoReflect(), tree)
			if !proto.Equal(m, once) {
				t.Fatalf("mask %q: trimming twice differs", mask)
			}
			redact(m.ProtoReflect(), false)
			if _, err := jsonOptions(false).Marshal(m); err != nil {
				t.Fatalf("mask %q: %v", mask, err)
			}
		}
	})
}

// FuzzQuery sends arbitrary queries to every endpoint: no panic, and no
// 5xx from a parameter a client got wrong.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"", "format=json", "filter=(", "usedonly&filter=a", "type=Gauges", "histogram_buckets=disjoint",
		"level=debug", "paths=a:b,c", "http=warning", "resource=static_clusters&mask=cluster.name", "name_regex=[",
		"include_eds", "graceful&skip_exit", "skip_exit", "a=%zz", "format=prometheus&histogram_buckets=summary"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	fx := newConfigFixture(&testing.T{})
	a, err := New(Options{
		Server:        &fakeServer{state: adminv3.ServerInfo_LIVE},
		Stats:         testStore(),
		Logging:       newFakeLogging("admin", "http"),
		ParseLevel:    fakeParseLevel,
		Listeners:     &fakeListeners{},
		Clusters:      testClusters(),
		ConfigDumpers: fx.dumpers(),
		Runtime:       &fakeRuntime{disk: map[string]string{}, admin: map[string]string{}},
		Quit:          func() {},
	})
	if err != nil {
		f.Fatal(err)
	}
	h := a.Handler()
	f.Fuzz(func(t *testing.T, query string, post bool) {
		if _, err := url.ParseRequestURI("/?" + query); err != nil || strings.ContainsAny(query, " #") {
			return // not a request line a client could send
		}
		method := http.MethodGet
		if post {
			method = http.MethodPost
		}
		for _, ep := range a.handlers {
			req := httptest.NewRequest(method, ep.path+"?"+query, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 && !(ep.path == "/runtime_modify" && rec.Code == 503) {
				t.Fatalf("%s %s?%s = %d %s", method, ep.path, query, rec.Code, rec.Body)
			}
		}
	})
}
