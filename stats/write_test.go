package stats

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// wasmRegistry stands in for the Proxy-Wasm host's metric registry: metrics
// named by the filter, kept outside the store.
type wasmRegistry struct {
	counters map[string]uint64
	gauges   map[string]uint64
	hists    map[string]*Histogram
}

func (r *wasmRegistry) Collect(emit func(string, Kind, uint64)) {
	for n, v := range r.counters {
		emit(n, KindCounter, v)
	}
	for n, v := range r.gauges {
		emit(n, KindGauge, v)
	}
}

func (r *wasmRegistry) CollectHistograms(emit func(string, *Histogram)) {
	for n, h := range r.hists {
		emit(n, h)
	}
}

// fixture builds a store as a running proxy would have it: server, listener,
// HTTP connection manager and cluster stats, a Wasm filter's metrics and a
// plain source; one flush interval closed, then more traffic.
func fixture() *Store {
	s := New(Options{})
	srv := s.Scope("server")
	srv.Gauge("live", NeverImport).Set(1)
	srv.Gauge("concurrency", NeverImport).Set(4)
	srv.Counter("worker_0.watchdog_miss") // never used

	l := s.Scope("listener.0.0.0.0_10000")
	l.Counter("downstream_cx_total").Add(3)
	l.Gauge("downstream_cx_active", Accumulate).Set(1)
	l.Counter("worker_0.downstream_cx_total").Add(3)
	l.Scope("http.ingress_http").Counter("downstream_rq_2xx").Add(8)
	s.Counter("listener.admin.downstream_cx_total").Add(1)

	hcm := s.Scope("http.ingress_http")
	hcm.Counter("downstream_rq_total").Add(10)
	hcm.Counter("downstream_rq_2xx").Add(8)
	hcm.Counter("downstream_rq_4xx")
	hcm.Counter("downstream_rq_5xx").Add(2)
	rqTime := hcm.Histogram("downstream_rq_time", Milliseconds)
	for _, v := range []uint64{1, 3, 11, 11} {
		rqTime.Record(v)
	}

	cl := s.Scope("cluster.backend")
	codes := NewCodeCounters(cl, "upstream_rq_")
	for range 5 {
		codes.Inc(200)
	}
	codes.Inc(503)
	cl.Counter("upstream_rq_total").Add(6)
	cl.Gauge("membership_healthy", NeverImport).Set(2)
	cl.Gauge("upstream_cx_active", NeverImport).Set(1)
	upTime := cl.Histogram("upstream_rq_time", Milliseconds)
	upTime.Record(2)
	cl.Histogram("upstream_cx_connect_ms", Milliseconds) // never used
	s.Counter("cluster.xds_cluster.upstream_rq_total").Add(1)
	s.Counter("cluster_manager.cds.update_success").Add(1)

	wasm := &wasmRegistry{
		counters: map[string]uint64{"example_requests_total": 10, "example_rq_200": 9},
		gauges:   map[string]uint64{"example.active": 0},
		hists:    map[string]*Histogram{"example.body_bytes": NewHistogram("example.body_bytes", Bytes, nil)},
	}
	wasm.hists["example.body_bytes"].Record(512)
	s.AddCustomSource(wasm)
	s.AddSource(SourceFunc(func(emit func(string, Kind, uint64)) {
		emit("cluster_manager.active_clusters", KindGauge, 2)
		emit("server.live", KindGauge, 99) // the store's own server.live wins
	}))

	s.Flush()
	for _, v := range []uint64{250, 1200} {
		rqTime.Record(v)
	}
	upTime.Record(30)
	upTime.Record(30)
	return s
}

func TestGolden(t *testing.T) {
	s := fixture()
	cases := []struct {
		name  string
		query string
		write func(*Store, *bytes.Buffer, WriteOptions) error
	}{
		{"text", "", text},
		{"text_usedonly", "usedonly", text},
		{"text_filter", "filter=upstream_rq_%5B0-9%5D", text},
		{"text_counters", "type=Counters&filter=%5Ecluster", text},
		{"text_cumulative", "histogram_buckets=cumulative&type=Histograms", text},
		{"text_disjoint", "histogram_buckets=disjoint&type=Histograms&usedonly", text},
		{"json", "", jsonw},
		{"json_cumulative", "histogram_buckets=cumulative&filter=upstream_rq_time", jsonw},
		{"json_no_histograms", "type=Gauges", jsonw},
		{"prometheus", "", prom},
		{"prometheus_usedonly", "usedonly", prom},
		{"prometheus_summary", "histogram_buckets=summary&type=Histograms", prom},
		{"prometheus_filter", "filter=cluster%5C.backend", prom},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			o, err := ParseQuery(q)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := tc.write(s, &b, o); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tc.name, "json") && !json.Valid(b.Bytes()) {
				t.Errorf("invalid JSON:\n%s", b.String())
			}
			if strings.HasPrefix(tc.name, "prometheus") {
				checkExposition(t, b.String())
			}
			golden(t, tc.name, b.Bytes())
		})
	}
}

func text(s *Store, b *bytes.Buffer, o WriteOptions) error  { return s.WriteText(b, o) }
func jsonw(s *Store, b *bytes.Buffer, o WriteOptions) error { return s.WriteJSON(b, o) }
func prom(s *Store, b *bytes.Buffer, o WriteOptions) error  { return s.WritePrometheus(b, o) }

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (go test -update rewrites it)\ngot:\n%s", name, path, got)
	}
}

// checkExposition applies the text exposition format's rules: valid names,
// one TYPE line per family before its samples, a family's lines together.
func checkExposition(t *testing.T, out string) {
	t.Helper()
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\} (\S+)$`)
	typed := map[string]bool{}
	closed := map[string]bool{}
	current := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			f := strings.Fields(rest)
			if len(f) != 2 {
				t.Errorf("bad TYPE line %q", line)
				continue
			}
			if typed[f[0]] {
				t.Errorf("family %s typed twice", f[0])
			}
			if current != "" {
				closed[current] = true
			}
			typed[f[0]], current = true, f[0]
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("bad sample line %q", line)
			continue
		}
		fam := m[1]
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(fam, suf); ok && typed[base] && !typed[fam] {
				fam = base
			}
		}
		if fam != current || closed[fam] {
			t.Errorf("sample %q outside its family block (current %s)", line, current)
		}
	}
}

func TestParseQuery(t *testing.T) {
	bad := []string{"filter=%5B", "type=Nope", "histogram_buckets=detailed"}
	for _, q := range bad {
		v, _ := url.ParseQuery(q)
		if _, err := ParseQuery(v); err == nil {
			t.Errorf("ParseQuery(%s): no error", q)
		}
	}
	v, _ := url.ParseQuery("usedonly=&filter=abc&type=Gauges&histogram_buckets=summary&format=json")
	o, err := ParseQuery(v)
	if err != nil || !o.UsedOnly || o.Filter.String() != "abc" || o.Type != TypeGauges || o.Histograms != HistogramsSummary {
		t.Errorf("ParseQuery = %+v, %v", o, err)
	}
}

func TestPrometheusRejectsDisjoint(t *testing.T) {
	if err := New(Options{}).WritePrometheus(&bytes.Buffer{}, WriteOptions{Histograms: HistogramsDisjoint}); err == nil {
		t.Error("no error for disjoint buckets")
	}
}

func TestSourceRemoval(t *testing.T) {
	s := New(Options{})
	remove := s.AddSource(SourceFunc(func(emit func(string, Kind, uint64)) { emit("x.y", KindCounter, 1) }))
	var b bytes.Buffer
	s.WriteText(&b, WriteOptions{})
	if b.String() != "x.y: 1\n" {
		t.Fatalf("got %q", b.String())
	}
	remove()
	b.Reset()
	s.WriteText(&b, WriteOptions{})
	if b.String() != "" {
		t.Errorf("after remove: %q", b.String())
	}
}

func TestEmptyStore(t *testing.T) {
	s := New(Options{})
	var b bytes.Buffer
	s.WriteJSON(&b, WriteOptions{})
	if b.String() != "{\"stats\":[]}\n" {
		t.Errorf("JSON %q", b.String())
	}
	b.Reset()
	s.WritePrometheus(&b, WriteOptions{})
	s.WriteText(&b, WriteOptions{})
	if b.Len() != 0 {
		t.Errorf("text/prometheus %q", b.String())
	}
}

func TestHistogramBucketSettings(t *testing.T) {
	s := New(Options{Buckets: func(name string) []float64 {
		if strings.HasSuffix(name, "_bytes") {
			return []float64{1024, 65536}
		}
		return nil
	}})
	s.Histogram("http.x.rq_bytes", Bytes).Record(2000)
	s.Histogram("http.x.rq_time", Milliseconds).Record(2000)
	var b bytes.Buffer
	s.WritePrometheus(&b, WriteOptions{})
	out := b.String()
	if !strings.Contains(out, `envoy_http_rq_bytes_bucket{envoy_http_conn_manager_prefix="x",le="65536"} 1`) ||
		!strings.Contains(out, `envoy_http_rq_time_bucket{envoy_http_conn_manager_prefix="x",le="2500"} 1`) {
		t.Errorf("bucket settings not applied:\n%s", out)
	}
}

// FuzzParseQuery: any query string parses or fails cleanly, and the options
// it gives can be written with.
func FuzzParseQuery(f *testing.F) {
	for _, q := range []string{"", "usedonly", "filter=upstream_rq_%5B0-9%5D", "type=Counters", "histogram_buckets=summary",
		"filter=%5B", "type=x&histogram_buckets=y"} {
		f.Add(q)
	}
	s := fixture()
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		o, err := ParseQuery(q)
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := s.WriteText(&b, o); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteJSON(&b, o); err != nil {
			t.Fatal(err)
		}
		if o.Histograms != HistogramsDisjoint {
			if err := s.WritePrometheus(&b, o); err != nil {
				t.Fatal(err)
			}
		}
	})
}
