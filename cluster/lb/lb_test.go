package lb

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
)

type testHost struct {
	key    string
	weight uint32
	active atomic.Int64
}

func (h *testHost) Weight() uint32        { return h.weight }
func (h *testHost) HashKey() string       { return h.key }
func (h *testHost) ActiveRequests() int64 { return h.active.Load() }

func hostsWithWeights(ws ...uint32) ([]Host, []*testHost) {
	var out []Host
	var th []*testHost
	for i, w := range ws {
		h := &testHost{key: fmt.Sprintf("10.0.0.%d:80", i+1), weight: w}
		out = append(out, h)
		th = append(th, h)
	}
	return out, th
}

func TestHashKnownValues(t *testing.T) {
	// XXH64 reference vectors, and libstdc++'s std::hash<std::string>
	// (g++ on x86-64) for MurmurHash2 with Envoy's seed.
	xx := []struct {
		in   string
		seed uint64
		want uint64
	}{
		{"", 0, 0xef46db3751d8e999},
		{"abc", 0, 0x44bc2cf5ad770999},
		{"", 1, 0xd5afba1336a3be4b},
	}
	for _, c := range xx {
		if got := XXHash64([]byte(c.in), c.seed); got != c.want {
			t.Errorf("XXHash64(%q, %d) = %#x, want %#x", c.in, c.seed, got, c.want)
		}
	}
	mm := []struct {
		in   string
		want uint64
	}{
		{"", 0x553e93901e462a6e},
		{"a", 0x454ddee488c1ed6b},
		{"abc", 0x32d82bf8ed3dba39},
		{"127.0.0.1:8080_0", 0xde6d9b1548538b53},
		{"hello world, 12345678", 0x30e7ad045e5946c5},
	}
	for _, c := range mm {
		if got := MurmurHash2([]byte(c.in), MurmurSeed); got != c.want {
			t.Errorf("MurmurHash2(%q) = %#x, want %#x", c.in, got, c.want)
		}
	}
}

// share counts picks per host over n picks.
func share(b Balancer, hosts int, n int, hash func(i int) (uint64, bool)) []int {
	out := make([]int, hosts)
	for i := range n {
		var h uint64
		var ok bool
		if hash != nil {
			h, ok = hash(i)
		}
		idx := b.Pick(h, ok, 0)
		out[idx]++
	}
	return out
}

func within(t *testing.T, name string, got []int, weights []uint32, n int, tol float64) {
	t.Helper()
	var sum float64
	for _, w := range weights {
		sum += float64(w)
	}
	for i, g := range got {
		want := float64(n) * float64(weights[i]) / sum
		if math.Abs(float64(g)-want) > tol*float64(n) {
			t.Errorf("%s: host %d got %d picks, want %.0f ± %.0f (all: %v)", name, i, g, want, tol*float64(n), got)
		}
	}
}

func TestDistribution(t *testing.T) {
	const n = 60000
	cases := []struct {
		name    string
		cfg     Config
		weights []uint32
		hashed  bool
		tol     float64
		// exact means every cycle gives exact proportions.
		exact bool
	}{
		{name: "round robin equal", cfg: Config{Policy: RoundRobin}, weights: []uint32{1, 1, 1}, exact: true},
		{name: "round robin weighted", cfg: Config{Policy: RoundRobin}, weights: []uint32{1, 2, 3}, exact: true},
		{name: "round robin large weights", cfg: Config{Policy: RoundRobin}, weights: []uint32{100000, 200001}, tol: 0.001},
		{name: "least request equal", cfg: Config{Policy: LeastRequest}, weights: []uint32{1, 1, 1, 1}, tol: 0.02},
		{name: "least request weighted", cfg: Config{Policy: LeastRequest}, weights: []uint32{1, 3}, tol: 0.02},
		{name: "random", cfg: Config{Policy: Random}, weights: []uint32{1, 1, 1, 1, 1}, tol: 0.02},
		{name: "ring hash", cfg: Config{Policy: RingHash}, weights: []uint32{1, 1, 1, 1}, hashed: true, tol: 0.06},
		{name: "ring hash weighted", cfg: Config{Policy: RingHash, MinRingSize: 4096}, weights: []uint32{1, 3}, hashed: true, tol: 0.05},
		{name: "ring hash murmur", cfg: Config{Policy: RingHash, Hash: Murmur2}, weights: []uint32{1, 1, 1}, hashed: true, tol: 0.06},
		{name: "maglev", cfg: Config{Policy: Maglev}, weights: []uint32{1, 1, 1, 1}, hashed: true, tol: 0.02},
		{name: "maglev weighted", cfg: Config{Policy: Maglev}, weights: []uint32{1, 2, 5}, hashed: true, tol: 0.02},
		{name: "maglev small table", cfg: Config{Policy: Maglev, TableSize: 251}, weights: []uint32{1, 1}, hashed: true, tol: 0.05},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Rand = NewSeeded(42)
			hosts, _ := hostsWithWeights(c.weights...)
			b := New(c.cfg, hosts)
			var hash func(int) (uint64, bool)
			if c.hashed {
				hash = func(i int) (uint64, bool) { return XXHash64(fmt.Appendf(nil, "req-%d", i), 0), true }
			}
			var sum uint32
			for _, w := range c.weights {
				sum += w
			}
			total := n
			if c.exact {
				total = int(sum) * 1000
			}
			got := share(b, len(hosts), total, hash)
			if c.exact {
				for i, g := range got {
					if want := int(c.weights[i]) * 1000; g != want {
						t.Fatalf("host %d: %d picks, want exactly %d (%v)", i, g, want, got)
					}
				}
				return
			}
			within(t, c.name, got, c.weights, total, c.tol)
		})
	}
}

func TestRoundRobinIsSmooth(t *testing.T) {
	hosts, _ := hostsWithWeights(5, 1, 1)
	b := New(Config{Rand: NewSeeded(1)}, hosts)
	// nginx's smooth WRR cycle is a a b a c a a: in any window of 7 picks
	// the heavy host appears 5 times, and never 5 times in a row (a plain
	// weighted cycle would give a a a a a b c).
	var picks []int
	for range 70 {
		picks = append(picks, b.Pick(0, false, 0))
	}
	run, maxRun := 0, 0
	for i, p := range picks {
		if p == 0 {
			run++
			maxRun = max(maxRun, run)
		} else {
			run = 0
		}
		if i+7 <= len(picks) {
			n := 0
			for _, q := range picks[i : i+7] {
				if q == 0 {
					n++
				}
			}
			if n != 5 {
				t.Fatalf("window at %d has %d heavy picks, want 5: %v", i, n, picks)
			}
		}
	}
	if maxRun > 4 {
		t.Fatalf("heavy host picked %d times in a row; schedule is not smooth", maxRun)
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	hosts, th := hostsWithWeights(1, 1, 1, 1)
	th[0].active.Store(100)
	th[1].active.Store(100)
	th[2].active.Store(100)
	b := New(Config{Policy: LeastRequest, Rand: NewSeeded(7)}, hosts)
	got := share(b, 4, 10000, nil)
	// The idle host wins every pick where it is one of the two choices:
	// 1 - (3/4)^2 = 43.75%.
	if f := float64(got[3]) / 10000; f < 0.40 || f > 0.48 {
		t.Fatalf("idle host got %.3f of picks, want about 0.4375 (%v)", f, got)
	}
	// With more choices it wins more often: 1 - (3/4)^5 = 76%.
	b = New(Config{Policy: LeastRequest, ChoiceCount: 5, Rand: NewSeeded(7)}, hosts)
	got = share(b, 4, 10000, nil)
	if f := float64(got[3]) / 10000; f < 0.72 || f > 0.80 {
		t.Fatalf("choice_count 5: idle host got %.3f of picks, want about 0.76 (%v)", f, got)
	}
}

func TestLeastRequestWeightedLoad(t *testing.T) {
	hosts, th := hostsWithWeights(1, 4)
	// Host 1 carries 4x the weight and 2x the load of host 0: per unit of
	// weight it is the less loaded one, so it should win every comparison.
	th[0].active.Store(10)
	th[1].active.Store(20)
	b := New(Config{Policy: LeastRequest, Rand: NewSeeded(3)}, hosts)
	got := share(b, 2, 10000, nil)
	// Host 0 wins only when both draws are host 0: (1/5)^2 = 4%.
	if f := float64(got[0]) / 10000; f > 0.06 {
		t.Fatalf("loaded light host got %.3f of picks, want about 0.04 (%v)", f, got)
	}
	// Bias 0 ignores load: pure weighted random.
	b = New(Config{Policy: LeastRequest, HasActiveRequestBias: true, ActiveRequestBias: 0, Rand: NewSeeded(3)}, hosts)
	got = share(b, 2, 20000, nil)
	within(t, "bias 0", got, []uint32{1, 4}, 20000, 0.02)
}

func TestRingHashConsistency(t *testing.T) {
	hosts, _ := hostsWithWeights(1, 1, 1, 1, 1)
	b := New(Config{Policy: RingHash, Rand: NewSeeded(1)}, hosts)
	if got := RingSize(b); got != 1025 && got != 1024 {
		// 5 hosts, min ring 1024: ceil(0.2*1024)/0.2 = 1025 points.
		t.Fatalf("ring size %d, want 1025", got)
	}
	// Removing one host moves only the keys that were on it, when the
	// survivors keep their points (820 gives 205 points each, as 1025/5).
	b4 := New(Config{Policy: RingHash, MinRingSize: 820, Rand: NewSeeded(1)}, hosts[:4])
	moved := 0
	for i := range 5000 {
		h := XXHash64(fmt.Appendf(nil, "k%d", i), 0)
		before, after := b.Pick(h, true, 0), b4.Pick(h, true, 0)
		if before != 4 && before != after {
			moved++
		}
	}
	if moved != 0 {
		t.Fatalf("%d keys moved between surviving hosts", moved)
	}
	// Same hash, same host; attempt moves off it.
	h := XXHash64([]byte("sticky"), 0)
	first := b.Pick(h, true, 0)
	for range 10 {
		if b.Pick(h, true, 0) != first {
			t.Fatal("ring hash is not deterministic")
		}
	}
}

func TestMaglevConsistency(t *testing.T) {
	hosts, _ := hostsWithWeights(1, 1, 1, 1, 1)
	b := New(Config{Policy: Maglev}, hosts)
	// Input order does not matter.
	rev := []Host{hosts[4], hosts[3], hosts[2], hosts[1], hosts[0]}
	br := New(Config{Policy: Maglev}, rev)
	for i := range 2000 {
		h := XXHash64(fmt.Appendf(nil, "k%d", i), 0)
		if hosts[b.Pick(h, true, 0)] != rev[br.Pick(h, true, 0)] {
			t.Fatal("maglev table depends on host order")
		}
	}
	// Removing a host moves few other keys (Maglev's minimal disruption).
	b4 := New(Config{Policy: Maglev}, hosts[:4])
	moved := 0
	const n = 20000
	for i := range n {
		h := XXHash64(fmt.Appendf(nil, "k%d", i), 0)
		before, after := b.Pick(h, true, 0), b4.Pick(h, true, 0)
		if before != 4 && before != after {
			moved++
		}
	}
	if f := float64(moved) / n; f > 0.05 {
		t.Fatalf("%.3f of keys moved between surviving hosts", f)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{Policy: Maglev, TableSize: 65537}, true},
		{Config{Policy: Maglev, TableSize: 65536}, false},
		{Config{Policy: RingHash, MinRingSize: 10, MaxRingSize: 5}, false},
		{Config{Policy: RingHash, MinRingSize: 5000}, true},
		{Config{Policy: LeastRequest, ChoiceCount: 1}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: err = %v, want ok=%v", c.cfg, err, c.ok)
		}
	}
}

func TestComputeLoad(t *testing.T) {
	cases := []struct {
		name     string
		levels   []Level
		panicPct uint32
		healthy  []uint32
		degraded []uint32
		panic    []bool
	}{
		{
			name:    "all healthy p0",
			levels:  []Level{{Total: 10, Healthy: 10, Hosts: 10}, {Total: 10, Healthy: 10, Hosts: 10}},
			healthy: []uint32{100, 0}, degraded: []uint32{0, 0}, panic: []bool{false, false},
		},
		{
			name:    "80% healthy still takes everything",
			levels:  []Level{{Total: 10, Healthy: 8, Hosts: 10}, {Total: 10, Healthy: 10, Hosts: 10}},
			healthy: []uint32{100, 0}, degraded: []uint32{0, 0}, panic: []bool{false, false},
		},
		{
			name:    "50% healthy spills 30% (Envoy doc example)",
			levels:  []Level{{Total: 10, Healthy: 5, Hosts: 10}, {Total: 10, Healthy: 10, Hosts: 10}},
			healthy: []uint32{70, 30}, degraded: []uint32{0, 0}, panic: []bool{false, false},
		},
		{
			name:    "normalized when not enough health",
			levels:  []Level{{Total: 10, Healthy: 2, Hosts: 10}, {Total: 10, Healthy: 2, Hosts: 10}},
			healthy: []uint32{50, 50}, degraded: []uint32{0, 0}, panic: []bool{true, true},
		},
		{
			name:     "degraded takes the rest",
			levels:   []Level{{Total: 10, Healthy: 5, Degraded: 5, Hosts: 10}},
			panicPct: 50,
			healthy:  []uint32{70}, degraded: []uint32{30}, panic: []bool{false},
		},
		{
			name:     "total panic follows host counts",
			levels:   []Level{{Total: 4, Healthy: 0, Hosts: 4}, {Total: 12, Healthy: 1, Hosts: 12}},
			panicPct: 50,
			healthy:  []uint32{25, 75}, degraded: []uint32{0, 0}, panic: []bool{true, true},
		},
		{
			name:     "panic disabled and nothing healthy",
			levels:   []Level{{Total: 4, Hosts: 4}},
			panicPct: 0,
			healthy:  []uint32{100}, degraded: []uint32{0}, panic: []bool{false},
		},
		{
			name:     "one level panics, the other carries",
			levels:   []Level{{Total: 10, Healthy: 1, Hosts: 10}, {Total: 10, Healthy: 5, Hosts: 10}},
			panicPct: 50,
			// health 14 and 70, total 84: 14*100/84=16, 70*100/84=83, +1 to p0.
			healthy: []uint32{17, 83}, degraded: []uint32{0, 0}, panic: []bool{true, false},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.panicPct
			if p == 0 && c.name != "panic disabled and nothing healthy" {
				p = DefaultPanicThreshold
			}
			l := ComputeLoad(c.levels, DefaultOverprovisioningFactor, p)
			if fmt.Sprint(l.Healthy) != fmt.Sprint(c.healthy) || fmt.Sprint(l.Degraded) != fmt.Sprint(c.degraded) || fmt.Sprint(l.Panic) != fmt.Sprint(c.panic) {
				t.Fatalf("got healthy %v degraded %v panic %v, want %v %v %v", l.Healthy, l.Degraded, l.Panic, c.healthy, c.degraded, c.panic)
			}
		})
	}
}

func TestChoose(t *testing.T) {
	l := Load{Healthy: []uint32{70, 20}, Degraded: []uint32{10, 0}}
	counts := map[[2]int]int{}
	for h := range uint64(100) {
		p, d := l.Choose(h)
		k := [2]int{p, 0}
		if d {
			k[1] = 1
		}
		counts[k]++
	}
	if counts[[2]int{0, 0}] != 70 || counts[[2]int{1, 0}] != 20 || counts[[2]int{0, 1}] != 10 {
		t.Fatalf("choose: %v", counts)
	}
}

func TestConcurrentPicks(t *testing.T) {
	hosts, _ := hostsWithWeights(1, 2, 3)
	for _, p := range []Policy{RoundRobin, LeastRequest, Random, RingHash, Maglev} {
		b := New(Config{Policy: p}, hosts)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 1000 {
					if idx := b.Pick(uint64(g*1000+i), true, 0); idx < 0 || idx >= len(hosts) {
						t.Errorf("%v: index %d", p, idx)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}

func TestPickAllocs(t *testing.T) {
	hosts, _ := hostsWithWeights(1, 2, 3, 4)
	equal, _ := hostsWithWeights(1, 1, 1, 1)
	for _, c := range []struct {
		name  string
		p     Policy
		hosts []Host
	}{
		{"round robin", RoundRobin, equal},
		{"round robin weighted", RoundRobin, hosts},
		{"least request", LeastRequest, equal},
		{"least request weighted", LeastRequest, hosts},
		{"random", Random, equal},
		{"ring hash", RingHash, hosts},
		{"maglev", Maglev, hosts},
	} {
		b := New(Config{Policy: c.p}, c.hosts)
		if n := testing.AllocsPerRun(1000, func() { b.Pick(12345, true, 0) }); n != 0 {
			t.Errorf("%s: %v allocs per pick", c.name, n)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	hosts, _ := hostsWithWeights(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	weighted, _ := hostsWithWeights(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	for _, c := range []struct {
		name  string
		p     Policy
		hosts []Host
	}{
		{"round_robin", RoundRobin, hosts},
		{"round_robin_weighted", RoundRobin, weighted},
		{"least_request", LeastRequest, hosts},
		{"least_request_weighted", LeastRequest, weighted},
		{"random", Random, hosts},
		{"ring_hash", RingHash, hosts},
		{"maglev", Maglev, hosts},
	} {
		bal := New(Config{Policy: c.p}, c.hosts)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var h uint64
				for pb.Next() {
					h += 0x9e3779b97f4a7c15
					bal.Pick(h, true, 0)
				}
			})
		})
	}
}
