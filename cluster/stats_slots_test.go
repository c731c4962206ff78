package cluster_test

import (
	"context"
	"testing"

	"github.com/wasmesh/wasmesh/cluster"
)

// slotStats is memStats behind the block interfaces, handing out stats by
// position (cluster.StatsSlots) as the server's stats store does.
type slotStats struct{ *memStats }

func (s slotStats) StatsBlock(prefix string, counters, gauges []string) cluster.StatsBlock {
	return slotBlock{s.memStats, prefix, counters, gauges}
}

type slotBlock struct {
	s                *memStats
	prefix           string
	counters, gauges []string
}

func (b slotBlock) Counter(n string) cluster.Counter { return b.s.get(b.prefix + n) }
func (b slotBlock) Gauge(n string) cluster.Gauge     { return b.s.get(b.prefix + n) }
func (b slotBlock) CounterAt(i int) cluster.Counter  { return b.s.get(b.prefix + b.counters[i]) }
func (b slotBlock) GaugeAt(i int) cluster.Gauge      { return b.s.get(b.prefix + b.gauges[i]) }

// A cluster counts the same values under the same names whether its store
// hands out stats by name or by position.
func TestStatsSlotsMatchNames(t *testing.T) {
	a := startUpstream(t, "a")
	run := func(st cluster.Stats, mem *memStats) map[string]int64 {
		m := cluster.NewManager(context.Background(), cluster.Options{Stats: st})
		defer m.Close()
		c := parseCluster(t, staticCluster(t, "backend", `
circuit_breakers:
  thresholds:
  - {priority: HIGH, max_retries: 1, track_remaining: true}
`, a.addr, "127.0.0.1:1"))
		if err := m.Add(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		cl := m.Get("backend")
		for range 6 {
			get(t, cl, "/", cluster.LoadBalancerContext{})
		}
		high := cluster.LoadBalancerContext{HighPriority: true}
		if !cl.TryRetry(high) || cl.TryRetry(high) {
			t.Error("HIGH max_retries 1 not applied")
		}
		cl.RetryDone(high)
		if !cl.TryRetry(cluster.LoadBalancerContext{}) {
			t.Error("DEFAULT retry refused")
		}
		out := map[string]int64{}
		for _, n := range mem.names("cluster.backend.") {
			out[n] = mem.value(n)
		}
		return out
	}
	plain := newMemStats()
	want := run(plain, plain)
	slotted := newMemStats()
	got := run(slotStats{slotted}, slotted)
	// By position a stat shows once touched (a real block lists them
	// all from the start); by name each is made up front.
	for n, v := range got {
		if w, ok := want[n]; !ok || w != v {
			t.Errorf("%s = %d by position; by name %d (made: %v)", n, v, w, ok)
		}
	}
	for n, v := range want {
		if _, ok := got[n]; !ok && v != 0 {
			t.Errorf("%s = %d by name, not counted by position", n, v)
		}
	}
	for _, n := range []string{"cluster.backend.upstream_rq_total", "cluster.backend.circuit_breakers.high.remaining_retries", "cluster.backend.upstream_cx_connect_fail", "cluster.backend.upstream_rq_retry_overflow"} {
		if want[n] == 0 {
			t.Errorf("%s not counted", n)
		}
	}
}
