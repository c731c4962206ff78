package cluster

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"go.uber.org/zap"
)

// outlierConfig is a compiled OutlierDetection with Envoy's defaults.
type outlierConfig struct {
	interval, baseEjection, maxEjection, maxJitter time.Duration

	consecutive5xx, consecutiveGateway, consecutiveLocal uint32
	enforce5xx, enforceGateway, enforceLocal             uint32
	enforceSR, enforceLocalSR, enforceFP, enforceLocalFP uint32

	maxEjectionPercent uint32
	alwaysEjectOne     bool
	split              bool
	unejectOnHC        bool

	srMinHosts, srVolume, srStdevFactor uint32
	fpThreshold, fpMinHosts, fpVolume   uint32
}

func compileOutlier(e *errs, od *clusterv3.OutlierDetection) *outlierConfig {
	if od == nil {
		return nil
	}
	e.only("outlier_detection", od, "consecutive_5xx", "interval", "base_ejection_time", "max_ejection_percent",
		"enforcing_consecutive_5xx", "enforcing_success_rate", "success_rate_minimum_hosts",
		"success_rate_request_volume", "success_rate_stdev_factor", "consecutive_gateway_failure",
		"enforcing_consecutive_gateway_failure", "split_external_local_origin_errors",
		"consecutive_local_origin_failure", "enforcing_consecutive_local_origin_failure",
		"enforcing_local_origin_success_rate", "failure_percentage_threshold", "enforcing_failure_percentage",
		"enforcing_failure_percentage_local_origin", "failure_percentage_minimum_hosts",
		"failure_percentage_request_volume", "max_ejection_time", "max_ejection_time_jitter",
		"successful_active_health_check_uneject_host", "always_eject_one_host")
	o := &outlierConfig{
		interval:           durationOr(od.GetInterval(), 10*time.Second),
		baseEjection:       durationOr(od.GetBaseEjectionTime(), 30*time.Second),
		maxJitter:          durationOr(od.GetMaxEjectionTimeJitter(), 0),
		consecutive5xx:     u32Or(od.GetConsecutive_5Xx(), 5),
		consecutiveGateway: u32Or(od.GetConsecutiveGatewayFailure(), 5),
		consecutiveLocal:   u32Or(od.GetConsecutiveLocalOriginFailure(), 5),
		enforce5xx:         u32Or(od.GetEnforcingConsecutive_5Xx(), 100),
		enforceGateway:     u32Or(od.GetEnforcingConsecutiveGatewayFailure(), 0),
		enforceLocal:       u32Or(od.GetEnforcingConsecutiveLocalOriginFailure(), 100),
		enforceSR:          u32Or(od.GetEnforcingSuccessRate(), 100),
		enforceLocalSR:     u32Or(od.GetEnforcingLocalOriginSuccessRate(), 100),
		enforceFP:          u32Or(od.GetEnforcingFailurePercentage(), 0),
		enforceLocalFP:     u32Or(od.GetEnforcingFailurePercentageLocalOrigin(), 0),
		maxEjectionPercent: min(u32Or(od.GetMaxEjectionPercent(), 10), 100),
		alwaysEjectOne:     od.GetAlwaysEjectOneHost().GetValue(),
		split:              od.GetSplitExternalLocalOriginErrors(),
		unejectOnHC:        od.GetSuccessfulActiveHealthCheckUnejectHost() == nil || od.GetSuccessfulActiveHealthCheckUnejectHost().GetValue(),
		srMinHosts:         u32Or(od.GetSuccessRateMinimumHosts(), 5),
		srVolume:           u32Or(od.GetSuccessRateRequestVolume(), 100),
		srStdevFactor:      u32Or(od.GetSuccessRateStdevFactor(), 1900),
		fpThreshold:        u32Or(od.GetFailurePercentageThreshold(), 85),
		fpMinHosts:         u32Or(od.GetFailurePercentageMinimumHosts(), 5),
		fpVolume:           u32Or(od.GetFailurePercentageRequestVolume(), 50),
	}
	o.maxEjection = durationOr(od.GetMaxEjectionTime(), max(300*time.Second, o.baseEjection))
	if o.interval <= 0 {
		e.errf("outlier_detection.interval", "must be positive")
	}
	if o.maxEjection < o.baseEjection {
		e.errf("outlier_detection.max_ejection_time", "cannot be smaller than base_ejection_time")
	}
	return o
}

// Ejection types, for stats names.
type ejectionType uint8

const (
	ejectConsecutive5xx ejectionType = iota
	ejectGateway
	ejectLocal
	ejectSuccessRate
	ejectLocalSuccessRate
	ejectFailurePercentage
	ejectLocalFailurePercentage
	numEjectionTypes
)

var ejectionNames = [numEjectionTypes]string{
	"consecutive_5xx", "consecutive_gateway_failure", "consecutive_local_origin_failure",
	"success_rate", "local_origin_success_rate", "failure_percentage", "local_origin_failure_percentage",
}

// Local-origin results (Envoy's Outlier::Result).
type localResult uint8

const (
	localConnectFailed localResult = iota
	localTimeout
	localRequestFailed
	localConnectSuccessFinal
)

// detector is a cluster's outlier detector.
type detector struct {
	c   *Cluster
	cfg *outlierConfig

	mu      sync.Mutex
	hosts   map[*Host]*outlierHost
	ejected int

	active                                                      Gauge
	total, overflow, enforcedTotal, deprecated5xx, deprecatedSR Counter
	detected, enforced                                          [numEjectionTypes]Counter
}

// outlierHost is one host's monitor.
type outlierHost struct {
	d *detector
	h *Host

	consec5xx, consecGateway, consecLocal atomic.Uint32

	// Current interval's request counts; swapped into last at each sweep.
	extTotal, extSuccess, localTotal, localSuccess atomic.Uint64
	sr                                             atomic.Uint64 // float64 bits, -1 unknown

	// Under d.mu.
	lastExt, lastLocal [2]uint64 // success, total
	ejectedAt          time.Time
	backoff            uint32
	jitter             time.Duration
	lastUneject        time.Time
	numEjections       uint64
}

func newDetector(c *Cluster, cfg *outlierConfig) *detector {
	d := &detector{c: c, cfg: cfg, hosts: map[*Host]*outlierHost{}}
	p := "outlier_detection."
	d.active = c.stats.gauge(p + "ejections_active")
	d.total = c.stats.counter(p + "ejections_total")
	d.overflow = c.stats.counter(p + "ejections_overflow")
	d.enforcedTotal = c.stats.counter(p + "ejections_enforced_total")
	d.deprecated5xx = c.stats.counter(p + "ejections_consecutive_5xx")
	d.deprecatedSR = c.stats.counter(p + "ejections_success_rate")
	for i, n := range ejectionNames {
		d.detected[i] = c.stats.counter(p + "ejections_detected_" + n)
		d.enforced[i] = c.stats.counter(p + "ejections_enforced_" + n)
	}
	return d
}

func (d *detector) add(h *Host) {
	oh := &outlierHost{d: d, h: h}
	oh.sr.Store(math.Float64bits(-1))
	h.outlier = oh
	d.mu.Lock()
	d.hosts[h] = oh
	d.mu.Unlock()
}

func (d *detector) remove(h *Host) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.hosts[h]; !ok {
		return
	}
	delete(d.hosts, h)
	if h.flags.Load()&flagFailedOutlier != 0 {
		d.ejected--
		d.active.Set(uint64(d.ejected))
	}
}

func (d *detector) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hosts = map[*Host]*outlierHost{}
}

func (oh *outlierHost) successRate() float64 { return math.Float64frombits(oh.sr.Load()) }

// reportCode records an HTTP response status (Envoy's putHttpResponseCode).
func (d *detector) reportCode(h *Host, code int) {
	oh := h.outlier
	if oh == nil {
		return
	}
	oh.extTotal.Add(1)
	if code >= 500 {
		if code == 502 || code == 503 || code == 504 {
			if oh.consecGateway.Add(1) == d.cfg.consecutiveGateway {
				d.consecutive(h, ejectGateway)
			}
		} else {
			oh.consecGateway.Store(0)
		}
		if oh.consec5xx.Add(1) == d.cfg.consecutive5xx {
			d.consecutive(h, ejectConsecutive5xx)
		}
		return
	}
	oh.extSuccess.Add(1)
	oh.consec5xx.Store(0)
	oh.consecGateway.Store(0)
}

// reportConnectOK records that a connection attempt succeeded (Envoy's
// LocalOriginConnectSuccess): it only matters with split local-origin
// errors, where it resets the local-origin streak.
func (d *detector) reportConnectOK(h *Host) {
	oh := h.outlier
	if oh == nil || !d.cfg.split {
		return
	}
	oh.localTotal.Add(1)
	oh.localSuccess.Add(1)
	oh.consecLocal.Store(0)
}

// reportLocal records a local-origin event. Without
// split_external_local_origin_errors it is mapped to an HTTP status as
// Envoy does (connect failure 503, timeout 504, other failure 500, success
// 200).
func (d *detector) reportLocal(h *Host, r localResult) {
	oh := h.outlier
	if oh == nil {
		return
	}
	if !d.cfg.split {
		switch r {
		case localConnectFailed:
			d.reportCode(h, 503)
		case localTimeout:
			d.reportCode(h, 504)
		case localRequestFailed:
			d.reportCode(h, 500)
		case localConnectSuccessFinal:
			d.reportCode(h, 200)
		}
		return
	}
	switch r {
	case localConnectFailed, localTimeout:
		oh.localTotal.Add(1)
		if oh.consecLocal.Add(1) == d.cfg.consecutiveLocal {
			d.consecutive(h, ejectLocal)
		}
	case localRequestFailed:
		d.reportCode(h, 503)
	case localConnectSuccessFinal:
		d.reportCode(h, 200)
	}
}

// consecutive handles a streak reaching its threshold.
func (d *detector) consecutive(h *Host, t ejectionType) {
	d.mu.Lock()
	oh, ok := d.hosts[h]
	if !ok || h.flags.Load()&flagFailedOutlier != 0 {
		d.mu.Unlock()
		return
	}
	d.detected[t].Inc()
	ejected := d.ejectLocked(oh, t, d.c.m.opts.now())
	switch t {
	case ejectConsecutive5xx:
		d.deprecated5xx.Inc()
		oh.consec5xx.Store(0)
	case ejectGateway:
		oh.consecGateway.Store(0)
	case ejectLocal:
		oh.consecLocal.Store(0)
	}
	d.mu.Unlock()
	if ejected {
		d.c.rebuild()
	}
}

func (d *detector) enforcing(t ejectionType) uint32 {
	switch t {
	case ejectConsecutive5xx:
		return d.cfg.enforce5xx
	case ejectGateway:
		return d.cfg.enforceGateway
	case ejectLocal:
		return d.cfg.enforceLocal
	case ejectSuccessRate:
		return d.cfg.enforceSR
	case ejectLocalSuccessRate:
		return d.cfg.enforceLocalSR
	case ejectFailurePercentage:
		return d.cfg.enforceFP
	}
	return d.cfg.enforceLocalFP
}

// ejectLocked ejects a host if the ejection percentage and the enforcing
// percentage allow it; it reports whether the host was ejected.
func (d *detector) ejectLocked(oh *outlierHost, t ejectionType, now time.Time) bool {
	pct := 100 * float64(d.ejected+1) / float64(len(d.hosts))
	ok := pct <= float64(d.cfg.maxEjectionPercent)
	if d.cfg.alwaysEjectOne && d.ejected == 0 {
		ok = true
	}
	if !ok {
		d.overflow.Inc()
		return false
	}
	if t == ejectConsecutive5xx || t == ejectSuccessRate {
		d.total.Inc()
	}
	if d.c.rand()%100 >= uint64(d.enforcing(t)) {
		return false
	}
	d.ejected++
	d.active.Set(uint64(d.ejected))
	d.enforcedTotal.Inc()
	d.enforced[t].Inc()
	oh.h.setFlag(flagFailedOutlier, true)
	oh.numEjections++
	oh.ejectedAt = now
	if d.cfg.maxJitter > 0 {
		oh.jitter = time.Duration(d.c.rand() % uint64(d.cfg.maxJitter+1))
	}
	if time.Duration(oh.backoff)*d.cfg.baseEjection < d.cfg.maxEjection+d.cfg.baseEjection {
		oh.backoff++
	}
	d.c.logger().Info("host ejected", zap.String("host", oh.h.Address()), zap.String("type", ejectionNames[t]))
	return true
}

func (d *detector) unejectLocked(oh *outlierHost, now time.Time) {
	d.ejected--
	d.active.Set(uint64(d.ejected))
	oh.h.setFlag(flagFailedOutlier, false)
	oh.consec5xx.Store(0)
	oh.consecGateway.Store(0)
	oh.consecLocal.Store(0)
	oh.lastUneject = now
	d.c.logger().Info("host unejected", zap.String("host", oh.h.Address()))
}

// unejectOnHealthy brings an ejected host back when an active health check
// passes (successful_active_health_check_uneject_host).
func (d *detector) unejectOnHealthy(h *Host) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	oh, ok := d.hosts[h]
	if !ok || h.flags.Load()&flagFailedOutlier == 0 {
		return false
	}
	d.unejectLocked(oh, d.c.m.opts.now())
	return true
}

// run sweeps every interval: unejects hosts whose time is up, computes
// success rate and failure percentage ejections, and decays backoff.
func (d *detector) run(ctx context.Context) {
	defer d.c.wg.Done()
	t := time.NewTicker(d.cfg.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if d.sweep(d.c.m.opts.now()) {
			d.c.rebuild()
		}
	}
}

func (d *detector) sweep(now time.Time) (changed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, oh := range d.hosts {
		if oh.h.flags.Load()&flagFailedOutlier != 0 {
			ej := min(d.cfg.baseEjection*time.Duration(oh.backoff), d.cfg.maxEjection) + oh.jitter
			if now.Sub(oh.ejectedAt) >= ej {
				d.unejectLocked(oh, now)
				changed = true
			}
		}
		oh.lastExt = [2]uint64{oh.extSuccess.Swap(0), oh.extTotal.Swap(0)}
		oh.lastLocal = [2]uint64{oh.localSuccess.Swap(0), oh.localTotal.Swap(0)}
		oh.sr.Store(math.Float64bits(-1))
	}
	changed = d.rateEjectionsLocked(false, now) || changed
	if d.cfg.split {
		changed = d.rateEjectionsLocked(true, now) || changed
	}
	for _, oh := range d.hosts {
		if oh.h.flags.Load()&flagFailedOutlier == 0 && !oh.lastUneject.IsZero() && now.Sub(oh.lastUneject) >= d.cfg.interval && oh.backoff > 0 {
			oh.backoff--
		}
	}
	return changed
}

// rateEjectionsLocked runs the success rate and failure percentage
// algorithms over the last interval (Envoy's processSuccessRateEjections).
func (d *detector) rateEjectionsLocked(local bool, now time.Time) bool {
	cfg := d.cfg
	n := uint32(len(d.hosts))
	if n < cfg.srMinHosts && n < cfg.fpMinHosts {
		return false
	}
	type pair struct {
		oh   *outlierHost
		rate float64
	}
	var srHosts, fpHosts []pair
	var sum float64
	for _, oh := range d.hosts {
		if oh.h.flags.Load()&flagFailedOutlier != 0 {
			continue
		}
		b := oh.lastExt
		if local {
			b = oh.lastLocal
		}
		if b[1] == 0 {
			continue
		}
		rate := 100 * float64(b[0]) / float64(b[1])
		if b[1] >= uint64(min(cfg.srVolume, cfg.fpVolume)) && !local {
			oh.sr.Store(math.Float64bits(rate))
		}
		if b[1] >= uint64(cfg.srVolume) {
			srHosts = append(srHosts, pair{oh, rate})
			sum += rate
		}
		if b[1] >= uint64(cfg.fpVolume) {
			fpHosts = append(fpHosts, pair{oh, rate})
		}
	}
	changed := false
	srType, fpType := ejectSuccessRate, ejectFailurePercentage
	if local {
		srType, fpType = ejectLocalSuccessRate, ejectLocalFailurePercentage
	}
	if len(srHosts) > 0 && uint32(len(srHosts)) >= cfg.srMinHosts {
		mean := sum / float64(len(srHosts))
		var variance float64
		for _, p := range srHosts {
			variance += (p.rate - mean) * (p.rate - mean)
		}
		variance /= float64(len(srHosts))
		threshold := mean - float64(cfg.srStdevFactor)/1000*math.Sqrt(variance)
		for _, p := range srHosts {
			if p.rate < threshold && p.oh.h.flags.Load()&flagFailedOutlier == 0 {
				d.deprecatedSR.Inc()
				d.detected[srType].Inc()
				changed = d.ejectLocked(p.oh, srType, now) || changed
			}
		}
	}
	if len(fpHosts) > 0 && uint32(len(fpHosts)) >= cfg.fpMinHosts {
		for _, p := range fpHosts {
			if 100-p.rate >= float64(cfg.fpThreshold) && p.oh.h.flags.Load()&flagFailedOutlier == 0 {
				d.detected[fpType].Inc()
				changed = d.ejectLocked(p.oh, fpType, now) || changed
			}
		}
	}
	return changed
}
