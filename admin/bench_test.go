package admin

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
)

// Many clients at once, flipping the health check flag while others read
// /ready, /server_info, /clusters and /config_dump (run with -race).
func TestConcurrentRequests(t *testing.T) {
	fx := newConfigFixture(t)
	ta := startAdmin(t, Options{Clusters: testClusters(), ConfigDumpers: fx.dumpers(), Stats: testStore()})
	paths := []string{"/ready", "/server_info", "/clusters", "/config_dump?include_eds", "/stats", "/clusters?format=json"}
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if g%4 == 0 {
					p := "/healthcheck/fail"
					if i%2 == 1 {
						p = "/healthcheck/ok"
					}
					if code, _ := ta.post(t, p); code != 200 {
						t.Errorf("POST %s = %d", p, code)
					}
					continue
				}
				p := paths[(g+i)%len(paths)]
				code, _ := ta.get(t, p)
				if code != 200 && !(p == "/ready" && code == 503) {
					t.Errorf("GET %s = %d", p, code)
				}
			}
		}()
	}
	wg.Wait()
}

func benchmarkEndpoint(b *testing.B, a *Admin, path string) {
	h := a.Handler()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%s = %d", path, rec.Code)
		}
	}
}

func BenchmarkClustersText(b *testing.B) {
	a, err := New(Options{Server: &fakeServer{state: adminv3.ServerInfo_LIVE}, Clusters: testClusters()})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkEndpoint(b, a, "/clusters")
}

func BenchmarkConfigDump(b *testing.B) {
	fx := newConfigFixture(&testing.T{})
	a, err := New(Options{Server: &fakeServer{state: adminv3.ServerInfo_LIVE}, ConfigDumpers: fx.dumpers()})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkEndpoint(b, a, "/config_dump?include_eds")
}

func BenchmarkReady(b *testing.B) {
	a, err := New(Options{Server: &fakeServer{state: adminv3.ServerInfo_LIVE}})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkEndpoint(b, a, "/ready")
}
