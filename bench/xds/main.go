// Command xds measures wasmesh's xDS apply path at scale (issue 4, "Scale
// and speed"): go-control-plane's ADS server, in a child process on
// 127.0.0.1, pushes N EDS clusters (2 endpoints each) and a listener
// whose inline route configuration has a route per cluster, then changes
// one cluster at a time. It reports push→ACK, push→traffic flowing, RSS
// per cluster, and time and allocations of single-cluster updates. See
// README.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wasmesh/wasmesh/server"
	"github.com/wasmesh/wasmesh/xds/bootstrap"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
)

func main() {
	role := flag.String("role", "bench", "bench, or controlplane (the child process)")
	n := flag.Int("clusters", 10000, "clusters (each with 2 endpoints and a route)")
	updates := flag.Int("updates", 20, "single-cluster updates of each kind (EDS, CDS)")
	delta := flag.Bool("delta", false, "DELTA_GRPC instead of GRPC (state of the world)")
	logLevel := flag.String("log-level", "info", "the proxy's --log-level (logs go to a temporary file)")
	cpuProfile := flag.String("cpuprofile", "", "write the proxy process's CPU profile here")
	memProfile := flag.String("memprofile", "", "write the proxy process's heap profile (after the full push) here")
	listenPort := flag.Int("listen-port", 0, "child: the listener's port")
	setA := flag.String("set-a", "", "child: upstream ports of endpoint set A (a,b)")
	setB := flag.String("set-b", "", "child: upstream ports of endpoint set B (a,b)")
	flag.Parse()
	var err error
	if *role == "controlplane" {
		p := cpParams{clusters: *n, listenPort: *listenPort, setA: ports(*setA), setB: ports(*setB)}
		err = runControlPlane(p, os.Stdin, os.Stdout)
	} else {
		err = run(benchConfig{clusters: *n, updates: *updates, delta: *delta, logLevel: *logLevel, cpuProfile: *cpuProfile, memProfile: *memProfile})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/xds:", err)
		os.Exit(1)
	}
}

func ports(s string) [2]int {
	var p [2]int
	for i, f := range strings.SplitN(s, ",", 2) {
		p[i], _ = strconv.Atoi(f)
	}
	return p
}

type benchConfig struct {
	clusters, updates      int
	delta                  bool
	logLevel               string
	cpuProfile, memProfile string
}

// child is the control plane process and its event stream.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan []string
}

func (c *child) send(cmd string) time.Time {
	t := time.Now()
	fmt.Fprintln(c.stdin, cmd)
	return t
}

// waitFor returns the first event of the kind (and type, version when
// given), failing on a NACK of them.
func (c *child) waitFor(kind, typ, version string, timeout time.Duration) ([]string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return nil, errors.New("control plane exited")
			}
			if ev[0] == "nack" && (typ == "" || ev[1] == typ) && (version == "" || ev[2] == version) {
				return nil, fmt.Errorf("NACK: %s", strings.Join(ev[1:], " "))
			}
			if (kind == "" || ev[0] == kind) && (typ == "" || ev[1] == typ) && (version == "" || ev[2] == version) {
				return ev, nil
			}
		case <-deadline:
			return nil, fmt.Errorf("no %s %s %s within %s", kind, typ, version, timeout)
		}
	}
}

func eventTime(ev []string) time.Time {
	ns, _ := strconv.ParseInt(ev[3], 10, 64)
	return time.Unix(0, ns)
}

func upstream(body string) (int, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	return ln.Addr().(*net.TCPAddr).Port, func() { srv.Close() }, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rss reads the process's resident set size and its peak in bytes.
func rss() (cur, peak uint64) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			cur = v * 1024
		case "VmHWM:":
			peak = v * 1024
		}
	}
	return cur, peak
}

// memState is the process's memory after a collection: RSS, the Go
// heap's in-use spans, and the runtime's other memory (stacks, span and GC
// metadata, profiling buckets).
type memState struct {
	rss, heap, runtime uint64
	goroutines         int
}

func settle() memState {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r, _ := rss()
	return memState{rss: r, heap: ms.HeapInuse, goroutines: runtime.NumGoroutine(),
		runtime: ms.StackInuse + ms.MSpanInuse + ms.MCacheInuse + ms.GCSys + ms.BuckHashSys + ms.OtherSys}
}

func run(cfg benchConfig) error {
	if cfg.memProfile != "" {
		// One sample per 4 KB instead of 512 KB: per-cluster objects of a
		// few hundred bytes show up with their real share.
		runtime.MemProfileRate = 4096
	}
	var ups [4]int
	for i, body := range []string{"A", "A", "B", "B"} {
		p, stop, err := upstream(body)
		if err != nil {
			return err
		}
		defer stop()
		ups[i] = p
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-role", "controlplane", "-clusters", strconv.Itoa(cfg.clusters), "-listen-port", strconv.Itoa(port),
		"-set-a", fmt.Sprintf("%d,%d", ups[0], ups[1]), "-set-b", fmt.Sprintf("%d,%d", ups[2], ups[3]))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	cp := &child{cmd: cmd, stdin: stdin, events: make(chan []string, 1024)}
	defer func() { stdin.Close(); cmd.Wait() }()
	go func() {
		defer close(cp.events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			cp.events <- strings.Fields(sc.Text())
		}
	}()
	ev, err := cp.waitFor("addr", "", "", 60*time.Second)
	if err != nil {
		return err
	}
	cpAddr := ev[1]

	apiType := "GRPC"
	if cfg.delta {
		apiType = "DELTA_GRPC"
	}
	logFile := filepath.Join(os.TempDir(), fmt.Sprintf("bench-xds-%d.log", os.Getpid()))
	defer os.Remove(logFile)
	s, err := startProxy(cpAddr, apiType, cfg.logLevel, logFile)
	if err != nil {
		return err
	}
	defer s.Close(context.Background())
	started := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		started <- s.Start(ctx)
	}()
	if _, err := cp.waitFor("stream", "", "", 30*time.Second); err != nil {
		return err
	}
	m0 := settle()
	rss0, heap0 := m0.rss, m0.heap
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	fmt.Printf("wasmesh xDS scale benchmark: %d EDS clusters (2 endpoints each), %d routes in one listener, ADS %s, GOMAXPROCS=%d\n\n",
		cfg.clusters, cfg.clusters, apiType, runtime.GOMAXPROCS(0))

	// Full push.
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	t0 := cp.send("full")
	// Per type: push → response handed to gRPC, push → ACK.
	resps, acks := map[string]time.Duration{}, map[string]time.Duration{}
	for len(acks) < 3 {
		ev, err := cp.waitFor("", "", "", 120*time.Second)
		if err != nil {
			return err
		}
		switch ev[0] {
		case "resp":
			if _, ok := resps[ev[1]]; !ok {
				resps[ev[1]] = eventTime(ev).Sub(t0)
			}
		case "ack":
			acks[ev[1]] = eventTime(ev).Sub(t0)
		}
	}
	runtime.ReadMemStats(&ms1)
	cpu1 := cpuTime()
	client := &http.Client{Timeout: 5 * time.Second}
	last := "/" + clusterName(cfg.clusters-1) + "/x"
	if err := waitBody(client, port, last, "A", 60*time.Second); err != nil {
		return err
	}
	traffic := time.Since(t0)
	for _, i := range []int{0, cfg.clusters / 2} {
		if err := waitBody(client, port, "/"+clusterName(i)+"/x", "A", 5*time.Second); err != nil {
			return err
		}
	}
	if err := <-started; err != nil {
		return fmt.Errorf("proxy start: %w", err)
	}
	rssNow, _ := rss()
	m1 := settle()
	rss1, heap1 := m1.rss, m1.heap
	_, peak := rss()
	fmt.Println("full push (all types at once)")
	for _, typ := range []string{"cds", "eds", "lds"} {
		fmt.Printf("  push → %s ACK            %8.1f ms   (response sent at %.1f ms)\n", strings.ToUpper(typ), ms(acks[typ]), ms(resps[typ]))
	}
	fmt.Printf("  push → traffic flowing    %8.1f ms   (first 200 from the last route's cluster)\n", ms(traffic))
	fmt.Printf("  proxy CPU until LDS ACK   %8.1f ms   (user+system time of the proxy process: steadier than the clock on a shared machine)\n", ms(cpu1-cpu0))
	fmt.Printf("  allocations until LDS ACK %8.1f MB in %d objects (proxy process, gRPC receive included)\n",
		float64(ms1.TotalAlloc-ms0.TotalAlloc)/1e6, ms1.Mallocs-ms0.Mallocs)
	fmt.Printf("  RSS per cluster           %8.1f KB   (after GC; %.1f MB → %.1f MB; %.1f MB before GC, peak %.1f MB)\n",
		float64(rss1-rss0)/float64(cfg.clusters)/1024, mb(rss0), mb(rss1), mb(rssNow), mb(peak))
	fmt.Printf("  Go heap per cluster       %8.1f KB   (in use, after GC)\n", float64(heap1-heap0)/float64(cfg.clusters)/1024)
	fmt.Printf("  Go runtime per cluster    %8.1f KB   (stacks, span and GC metadata; %d → %d goroutines)\n\n",
		(float64(m1.runtime)-float64(m0.runtime))/float64(cfg.clusters)/1024, m0.goroutines, m1.goroutines)
	if cfg.memProfile != "" {
		f, err := os.Create(cfg.memProfile)
		if err != nil {
			return err
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}

	// Single-cluster updates.
	type sample struct {
		ack, proxy, traffic time.Duration
		allocs, bytes       uint64
	}
	var edsS, cdsS []sample
	version := map[string]int{"cds": 1, "eds": 1}
	set := make([]string, cfg.clusters)
	for i := range set {
		set[i] = "A"
	}
	for u := 0; u < cfg.updates; u++ {
		for _, kind := range []string{"eds", "cds"} {
			k := (u*7919 + 13) % cfg.clusters
			cmdline := "cds " + strconv.Itoa(k)
			if kind == "eds" {
				set[k] = map[string]string{"A": "B", "B": "A"}[set[k]]
				cmdline = fmt.Sprintf("eds %d %s", k, set[k])
			}
			version[kind]++
			v := fmt.Sprintf("%c%d", kind[0], version[kind])
			runtime.ReadMemStats(&ms0)
			t := cp.send(cmdline)
			resp, err := cp.waitFor("resp", kind, v, 30*time.Second)
			if err != nil {
				return err
			}
			ack, err := cp.waitFor("ack", kind, v, 30*time.Second)
			if err != nil {
				return err
			}
			runtime.ReadMemStats(&ms1)
			smp := sample{ack: eventTime(ack).Sub(t), proxy: eventTime(ack).Sub(eventTime(resp)),
				allocs: ms1.Mallocs - ms0.Mallocs, bytes: ms1.TotalAlloc - ms0.TotalAlloc}
			// The new endpoints serve by the ACK: the first request after
			// it must reach them.
			path := "/" + clusterName(k) + "/x"
			if err := waitBody(client, port, path, set[k], 10*time.Second); err != nil {
				return err
			}
			smp.traffic = time.Since(t)
			if kind == "eds" {
				edsS = append(edsS, smp)
			} else {
				cdsS = append(cdsS, smp)
			}
		}
	}
	for _, g := range []struct {
		name string
		s    []sample
	}{{"EDS (one cluster's endpoints move to other upstreams)", edsS}, {"CDS (one cluster's connect_timeout changes; it re-warms from its endpoints)", cdsS}} {
		var ack, proxy, traffic []float64
		var allocs, bytes []float64
		for _, s := range g.s {
			ack, proxy, traffic = append(ack, ms(s.ack)), append(proxy, ms(s.proxy)), append(traffic, ms(s.traffic))
			allocs, bytes = append(allocs, float64(s.allocs)), append(bytes, float64(s.bytes)/1024)
		}
		fmt.Printf("single-cluster %s, %d updates: median / max\n", g.name, len(g.s))
		fmt.Printf("  push → ACK                %8.2f / %8.2f ms\n", median(ack), slices.Max(ack))
		fmt.Printf("  response sent → ACK       %8.2f / %8.2f ms   (the proxy's share: receive, decode, apply, ACK)\n", median(proxy), slices.Max(proxy))
		fmt.Printf("  push → traffic on it      %8.2f / %8.2f ms   (first request after the ACK)\n", median(traffic), slices.Max(traffic))
		fmt.Printf("  allocations push → ACK    %8.0f objects, %.0f KB (median; proxy process)\n\n", median(allocs), median(bytes))
	}
	return nil
}

func waitBody(c *http.Client, port int, path, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(b) == want {
				return nil
			}
			last = fmt.Sprintf("status %d body %q", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Microsecond)
	}
	return fmt.Errorf("%s: never answered %q; last: %s", path, want, last)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func mb(b uint64) float64        { return float64(b) / (1 << 20) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// startProxy creates a wasmesh server whose only static resource is the
// cluster of the control plane.
func startProxy(cpAddr, apiType, logLevel, logFile string) (*server.Server, error) {
	host, port, _ := net.SplitHostPort(cpAddr)
	cfg := fmt.Sprintf(`
node: {id: %s, cluster: bench}
dynamic_resources:
  ads_config:
    api_type: %s
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
  cds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 120s}
  lds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 120s}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %s, port_value: %s}}}}]}]
`, nodeID, apiType, host, port)
	o, err := server.ParseFlags([]string{"--config-yaml", cfg, "-l", logLevel, "--log-path", logFile, "--drain-time-s", "1", "--concurrency", "2"}, io.Discard)
	if err != nil {
		return nil, err
	}
	b := &bootstrapv3.Bootstrap{}
	if err := bootstrap.Parse([]byte(cfg), b, false); err != nil {
		return nil, err
	}
	server.ApplyNodeFlags(b, o)
	return server.New(context.Background(), o, b, nil)
}

// cpuTime is the user and system CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
