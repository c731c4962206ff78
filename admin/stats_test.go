package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/wasmesh/wasmesh/stats"
)

func testStore() *stats.Store {
	s := stats.New(stats.Options{})
	cl := s.Scope("cluster.backend.")
	cl.Counter("upstream_rq_total").Add(3)
	cl.Counter("upstream_rq_retry")
	cl.Gauge("upstream_cx_active", stats.NeverImport).Set(2)
	cl.Histogram("upstream_rq_time", stats.Milliseconds).Record(5)
	s.Gauge("server.live", stats.NeverImport).Set(1)
	return s
}

func TestStats(t *testing.T) {
	store := testStore()
	ta := startAdmin(t, Options{Stats: store})
	storeText := func(o stats.WriteOptions) string {
		var b bytes.Buffer
		if err := store.WriteText(&b, o); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	storeJSON := func(o stats.WriteOptions) string {
		var b bytes.Buffer
		if err := store.WriteJSON(&b, o); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	storeProm := func(o stats.WriteOptions) string {
		var b bytes.Buffer
		if err := store.WritePrometheus(&b, o); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	clusterOnly := regexp.MustCompile(`^cluster\.`)
	for _, tc := range []struct {
		name, path  string
		code        int
		contentType string
		want        string
		contains    string
	}{
		{"text filtered", "/stats?filter=^cluster%5C.", 200, contentTypeText, storeText(stats.WriteOptions{Filter: clusterOnly}), ""},
		{"text format=text", "/stats?format=text&filter=^cluster%5C.", 200, contentTypeText, storeText(stats.WriteOptions{Filter: clusterOnly}), ""},
		{"usedonly drops the unwritten counter", "/stats?usedonly&filter=^cluster%5C.", 200, contentTypeText,
			storeText(stats.WriteOptions{Filter: clusterOnly, UsedOnly: true}), ""},
		{"type", "/stats?type=Gauges&filter=^cluster%5C.", 200, contentTypeText,
			storeText(stats.WriteOptions{Filter: clusterOnly, Type: stats.TypeGauges}), ""},
		{"json", "/stats?format=json&filter=^cluster%5C.", 200, contentTypeJSON, storeJSON(stats.WriteOptions{Filter: clusterOnly}), ""},
		{"prometheus via format", "/stats?format=prometheus&filter=^cluster%5C.", 200, contentTypeText,
			storeProm(stats.WriteOptions{Filter: clusterOnly}), ""},
		{"prometheus endpoint", "/stats/prometheus?filter=^cluster%5C.", 200, contentTypeText,
			storeProm(stats.WriteOptions{Filter: clusterOnly}), ""},
		{"everything lists server.live", "/stats", 200, contentTypeText, "", "server.live: 1\n"},
		{"bad regex", "/stats?filter=(", 400, contentTypeText, "", "invalid re2 regex"},
		{"bad type", "/stats?type=Bogus", 400, contentTypeText, "", "invalid type"},
		{"bad format", "/stats?format=html", 400, contentTypeText, "", "usage: /stats?format="},
		{"prometheus bad regex", "/stats/prometheus?filter=(", 400, contentTypeText, "", "invalid re2 regex"},
		{"prometheus disjoint", "/stats/prometheus?histogram_buckets=disjoint", 400, contentTypeText, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, h := ta.do(t, http.MethodGet, tc.path)
			if code != tc.code {
				t.Fatalf("%s = %d %q, want %d", tc.path, code, body, tc.code)
			}
			if ct := h.Get("Content-Type"); ct != tc.contentType {
				t.Errorf("content-type %q, want %q", ct, tc.contentType)
			}
			if tc.want != "" && body != tc.want {
				t.Errorf("%s:\n%s\nwant\n%s", tc.path, body, tc.want)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("%s lacks %q:\n%s", tc.path, tc.contains, body)
			}
			if tc.contentType == contentTypeJSON && !json.Valid([]byte(body)) {
				t.Errorf("invalid JSON: %s", body)
			}
		})
	}
}

func TestStatsWithoutStore(t *testing.T) {
	ta := startAdmin(t, Options{})
	for path, want := range map[string]string{
		"/stats":             "",
		"/stats?format=json": `{"stats":[]}`,
		"/stats/prometheus":  "",
	} {
		if code, body := ta.get(t, path); code != 200 || body != want {
			t.Errorf("%s = %d %q, want %q", path, code, body, want)
		}
	}
	if code, body := ta.post(t, "/reset_counters"); code != 200 || body != "OK\n" {
		t.Errorf("/reset_counters = %d %q", code, body)
	}
}

func TestResetCounters(t *testing.T) {
	store := testStore()
	ta := startAdmin(t, Options{Stats: store})
	if code, body := ta.post(t, "/reset_counters"); code != 200 || body != "OK\n" {
		t.Fatalf("/reset_counters = %d %q", code, body)
	}
	if v := store.Counter("cluster.backend.upstream_rq_total").Value(); v != 0 {
		t.Errorf("counter after reset = %d", v)
	}
	if v := store.Gauge("cluster.backend.upstream_cx_active", stats.NeverImport).Value(); v != 2 {
		t.Errorf("gauge changed by reset: %d", v)
	}
}

// The admin counts its own requests under http.admin.*, as Envoy does.
func TestAdminStats(t *testing.T) {
	store := stats.New(stats.Options{})
	ta := startAdmin(t, Options{Stats: store})
	ta.get(t, "/ready")
	ta.get(t, "/ready")
	ta.get(t, "/nope")
	ta.get(t, "/healthcheck/fail")
	if v := store.Counter("http.admin.downstream_rq_total").Value(); v != 4 {
		t.Errorf("downstream_rq_total = %d, want 4", v)
	}
	for name, want := range map[string]uint64{"2xx": 2, "4xx": 2} {
		if v := store.Counter("http.admin.downstream_rq_" + name).Value(); v != want {
			t.Errorf("downstream_rq_%s = %d, want %d", name, v, want)
		}
	}
	if v := store.Counter("http.admin.downstream_cx_total").Value(); v < 1 {
		t.Errorf("downstream_cx_total = %d", v)
	}
	if v := store.Gauge("http.admin.downstream_cx_active", stats.Accumulate).Value(); v < 1 {
		t.Errorf("downstream_cx_active = %d with a kept-alive connection", v)
	}
}
