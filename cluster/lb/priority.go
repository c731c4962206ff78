package lb

// DefaultOverprovisioningFactor is Envoy's default overprovisioning factor,
// in percent (1.4).
const DefaultOverprovisioningFactor = 140

// DefaultPanicThreshold is Envoy's default healthy_panic_threshold, percent.
const DefaultPanicThreshold = 50

// Level describes one priority level for the load computation. Counts are
// host counts, or weights with weighted_priority_health; excluded hosts are
// not counted at all.
type Level struct {
	Total, Healthy, Degraded uint64
	// Hosts is the number of hosts (excluded ones included), for total
	// panic, where load follows host counts.
	Hosts uint64
}

// Load is how requests spread over priority levels, Envoy's "priority load".
type Load struct {
	// Healthy[i] and Degraded[i] are the percentages of requests that go
	// to the healthy and degraded hosts of priority i; they sum to 100.
	Healthy, Degraded []uint32
	// Panic[i] says priority i balances over all its hosts, whatever their
	// health.
	Panic []bool
}

// ComputeLoad distributes load over levels as Envoy's LoadBalancerBase does.
// overprovisioning is in percent (140 for 1.4); panicThreshold in percent
// (0 disables panic mode).
func ComputeLoad(levels []Level, overprovisioning, panicThreshold uint32) Load {
	n := len(levels)
	l := Load{Healthy: make([]uint32, max(n, 1)), Degraded: make([]uint32, max(n, 1)), Panic: make([]bool, max(n, 1))}
	if n == 0 {
		l.Healthy[0] = 100
		return l
	}
	health := make([]uint32, n)
	degraded := make([]uint32, n)
	for i, lv := range levels {
		if lv.Total == 0 {
			continue
		}
		health[i] = uint32(min(100, uint64(overprovisioning)*lv.Healthy/lv.Total))
		degraded[i] = uint32(min(100, uint64(overprovisioning)*lv.Degraded/lv.Total))
	}
	var total uint32
	for i := range n {
		total += health[i] + degraded[i]
	}
	total = min(total, 100)
	panicThreshold = min(panicThreshold, 100)

	if total > 0 {
		firstHealthy, rest := distribute(l.Healthy, health, 100, total)
		firstDegraded, rest := distribute(l.Degraded, degraded, rest, total)
		if rest > 0 {
			if firstHealthy >= 0 {
				l.Healthy[firstHealthy] += rest
			} else {
				l.Degraded[firstDegraded] += rest
			}
		}
	}

	if panicThreshold == 0 && total == 0 {
		l.Healthy[0] = 100
		return l
	}
	allPanic := true
	for i, lv := range levels {
		if total < 100 {
			var pct float64
			if lv.Total > 0 {
				pct = 100 * float64(lv.Healthy+lv.Degraded) / float64(lv.Total)
			}
			l.Panic[i] = pct < float64(panicThreshold)
		}
		allPanic = allPanic && l.Panic[i]
	}
	if allPanic {
		// Total panic: load follows the number of hosts in each level.
		var hosts uint64
		for _, lv := range levels {
			hosts += lv.Hosts
		}
		for i := range n {
			l.Healthy[i], l.Degraded[i] = 0, 0
		}
		if hosts == 0 {
			l.Healthy[0] = 100
			return l
		}
		rest := uint32(100)
		first := -1
		for i, lv := range levels {
			if first < 0 && lv.Hosts > 0 {
				first = i
			}
			p := uint32(100 * lv.Hosts / hosts)
			l.Healthy[i] = p
			rest -= p
		}
		l.Healthy[first] += rest
	}
	return l
}

func distribute(out, avail []uint32, load, total uint32) (first int, rest uint32) {
	first = -1
	for i := range avail {
		if first < 0 && avail[i] > 0 {
			first = i
		}
		out[i] = min(load, avail[i]*100/total)
		load -= out[i]
	}
	return first, load
}

// Choose maps a hash (random or the request hash) to a priority and whether
// its degraded hosts are the target, Envoy's choosePriority.
func (l *Load) Choose(hash uint64) (priority int, degraded bool) {
	h := uint32(hash%100) + 1
	var acc uint32
	for i, p := range l.Healthy {
		acc += p
		if h <= acc {
			return i, false
		}
	}
	for i, p := range l.Degraded {
		acc += p
		if h <= acc {
			return i, true
		}
	}
	return 0, false
}
