package cluster

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"go.uber.org/zap"

	"github.com/wasmesh/wasmesh/cluster/dns"
	"github.com/wasmesh/wasmesh/cluster/health"
	"github.com/wasmesh/wasmesh/cluster/lb"

	"github.com/wasmesh/wasmesh/header"
)

// LoadBalancerContext is what a request tells the load balancer. The zero
// value is a plain request.
type LoadBalancerContext struct {
	// Hash is the request hash (the route's hash_policy) for RING_HASH and
	// MAGLEV; HasHash says it is set. Without it those policies pick
	// randomly.
	Hash    uint64
	HasHash bool
	// OriginalDst is the downstream connection's original destination, for
	// ORIGINAL_DST clusters.
	OriginalDst netip.AddrPort
	// DownstreamHTTP2 tells a cluster with use_downstream_protocol_config
	// that the downstream request is HTTP/2.
	DownstreamHTTP2 bool
	// HighPriority selects the HIGH circuit breaker thresholds (the
	// route's priority).
	HighPriority bool
	// AvoidHosts are hosts a retry should not go back to (Envoy's
	// previous_hosts retry predicate); up to MaxHostSelectionAttempts
	// extra picks are made to avoid them.
	AvoidHosts               []*Host
	MaxHostSelectionAttempts int
	// AutoHostRewrite sets the request's Host to the picked host's
	// hostname (the route's auto_host_rewrite), when it has one.
	AutoHostRewrite bool
	// Fields, when set and req.Header is nil, are the request's headers
	// as the connection manager's filters left them (pseudo-headers, host
	// and framing fields are skipped). The HTTP/1.1 pool writes them as
	// they are, lower-case as Envoy's codec does; an http.Header is built
	// only for the pools that need one.
	Fields *header.Map
	// Response, when set, is where the HTTP/1.1 pool puts the response's
	// head: ":status" first, then the fields in order, lower-case. The
	// response then has a nil Header (a 101 keeps its http.Header, and
	// the other pools always fill Header).
	Response *header.Map
}

func (l *LoadBalancerContext) avoid(h *Host) bool {
	for _, a := range l.AvoidHosts {
		if a == h {
			return true
		}
	}
	return false
}

// Cluster is a running upstream cluster: its hosts, load balancer,
// connection pools, circuit breakers, outlier detector and health checker.
// All methods are safe for concurrent use. A Cluster stays usable after the
// manager replaces or removes it, for the requests that still hold it.
type Cluster struct {
	m     *Manager
	cfg   *config
	name  string
	log   atomic.Pointer[zap.Logger] // logger() makes it on first use
	stats *clusterStats

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	isReady atomic.Bool
	ready   chan struct{} // made by Ready when asked before the cluster is ready; guarded by mu

	set atomic.Pointer[hostSet]

	mu        sync.Mutex
	members   []*Host
	byKey     map[string]*Host // nil up to hostMapMin members: members is searched
	overprov  uint32
	weighted  bool
	initWait  int             // pending initial conditions (DNS rounds, first health checks)
	hcWaiting map[string]bool // hosts whose first health check warming waits for
	initDone  bool

	breaker0 *breaker                // priority DEFAULT
	high     atomic.Pointer[breaker] // priority HIGH, made on first use
	tr       transports
	resolver Resolver
	outlier  *detector
	hc       *health.Checker
	origDst  *origDst

	traffic atomic.Bool
	closed  atomic.Bool
	active  atomic.Int64
	conns   connSet
}

// hostSet is an immutable snapshot of the hosts by priority with their
// load balancers.
type hostSet struct {
	levels  []*level
	load    lb.Load
	multi   bool             // more than one level, degraded hosts, or panic: Choose is needed
	members []*Host          // every member, excluded ones too
	byURL   map[string]*Host // nil up to hostMapMin members: members is searched
}

// hostMapMin is the number of hosts up to which a cluster finds a host by
// key or URL by looking through them rather than in a map: most clusters
// have a few hosts, and a map costs hundreds of bytes each.
const hostMapMin = 8

type level struct {
	all, healthy, degraded       []*Host
	allLB, healthyLB, degradedLB lb.Balancer
}

func newCluster(m *Manager, cfg *config) (*Cluster, error) {
	c := &Cluster{
		m:     m,
		cfg:   cfg,
		name:  cfg.name,
		stats: newClusterStats(m.opts.Stats, cfg.statName),
	}
	c.cfg.lb.Rand = m.opts.Rand
	c.ctx, c.cancel = context.WithCancel(m.ctx)
	c.breaker0 = newBreaker(cfg.breakers[0], c.stats, false)
	if cfg.breakers[1].trackRemaining {
		c.high.Store(newBreaker(cfg.breakers[1], c.stats, true)) // its remaining_* gauges show from the start
	}
	c.overprov = lb.DefaultOverprovisioningFactor
	if cfg.dns != nil {
		if cfg.dns.resolver != nil {
			r, err := dns.New(*cfg.dns.resolver)
			if err != nil {
				c.cancel()
				e := &errs{resource: resourceName(cfg.name)}
				e.add("typed_dns_resolver_config", err)
				return nil, e.err()
			}
			c.resolver = r
		} else {
			r, err := m.defaultResolver()
			if err != nil {
				c.cancel()
				return nil, err
			}
			c.resolver = r
		}
	}
	c.buildTransports()
	if cfg.outlier != nil {
		c.outlier = newDetector(c, cfg.outlier)
	}
	if cfg.origDst != nil {
		c.origDst = &origDst{c: c, cfg: cfg.origDst, hosts: map[string]*Host{}}
	}
	c.set.Store(&hostSet{load: lb.ComputeLoad(nil, c.overprov, cfg.panicThreshold)})
	return c, nil
}

// rand is the manager's random source.
func (c *Cluster) rand() uint64 { return c.m.opts.Rand() }

// logger is the cluster's logger, made on first use: most clusters never
// log, and a logger with a field costs a few hundred bytes.
func (c *Cluster) logger() *zap.Logger {
	if l := c.log.Load(); l != nil {
		return l
	}
	l := c.m.log.With(zap.String("cluster", c.name))
	if !c.log.CompareAndSwap(nil, l) {
		return c.log.Load()
	}
	return l
}

// start begins the cluster's life: initial hosts, DNS, health checks and
// outlier sweeps. eds, if set, overrides the static load_assignment.
func (c *Cluster) start(eds *assignment) {
	if len(c.cfg.health) > 0 {
		opts := health.Options{
			Cluster:    c.name,
			Dial:       c.dialHealthCheck,
			Logger:     c.logger().With(zap.String("component", "hc")),
			Stats:      c.healthStats(),
			HasTraffic: c.traffic.Load,
			OnChange:   c.onHealthChange,
			Rand:       c.m.opts.Rand,
		}
		if c.outlier != nil && c.cfg.outlier.unejectOnHC {
			opts.OnHealthyCheck = c.onHealthyCheck
		}
		c.hc = health.NewChecker(c.ctx, c.cfg.health, opts)
		c.hcWaiting = map[string]bool{}
	}
	if c.outlier != nil {
		c.wg.Add(1)
		go c.outlier.run(c.ctx)
	}
	c.mu.Lock()
	c.initWait = 1 // released below once the initial hosts are in
	c.mu.Unlock()
	switch c.cfg.kind {
	case discStatic, discEDS:
		a := c.cfg.assignment
		if eds != nil {
			a = eds
		}
		if a != nil {
			c.setAssignment(a)
		}
		// The hosts are made: the compiled assignment is not needed again
		// (the config is this cluster's own, and no one else reads it).
		c.cfg.assignment = nil
	case discStrictDNS, discLogicalDNS:
		c.startDNS()
	case discOriginalDst:
		c.wg.Add(1)
		go c.origDst.cleanupLoop(c.ctx)
	}
	c.mu.Lock()
	c.releaseInitLocked()
	c.mu.Unlock()
}

// releaseInitLocked drops one pending initial condition and marks the
// cluster ready when none is left and no first health check is awaited.
func (c *Cluster) releaseInitLocked() {
	if c.initWait > 0 {
		c.initWait--
	}
	if c.initWait == 0 {
		c.initDone = true
	}
	c.checkReadyLocked()
}

func (c *Cluster) checkReadyLocked() {
	if c.initDone && len(c.hcWaiting) == 0 && !c.isReady.Load() {
		c.isReady.Store(true)
		if c.ready != nil {
			close(c.ready)
		}
	}
}

// Name is the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Config is the configuration the cluster was built from. Do not modify it.
func (c *Cluster) Config() *clusterv3.Cluster { return c.cfg.proto }

// Ready is closed once the cluster has warmed.
// The channel is made on request: most clusters are ready as soon as they
// start, and nothing waits for them.
func (c *Cluster) Ready() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready == nil {
		c.ready = make(chan struct{})
		if c.isReady.Load() {
			close(c.ready)
		}
	}
	return c.ready
}

// Hosts returns the current hosts in endpoint order (for ORIGINAL_DST, the
// hosts created so far).
func (c *Cluster) Hosts() []*Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]*Host(nil), c.members...)
	if c.origDst != nil {
		out = append(out, c.origDst.list()...)
	}
	return out
}

// Close stops the cluster's background work (DNS, health checks, outlier
// sweeps) and waits for it. Requests in flight finish; idle connections
// close now, the others when their last request ends.
func (c *Cluster) Close() {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	c.cancel()
	if c.hc != nil {
		c.hc.Close()
	}
	c.wg.Wait()
	if c.outlier != nil {
		c.outlier.close()
	}
	c.tr.closeIdle()
	if c.active.Load() == 0 {
		c.conns.closeAll(nil)
	}
}

// setAssignment replaces the hosts from an endpoint assignment.
func (c *Cluster) setAssignment(a *assignment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.overprov = a.overprovisioning
	c.weighted = a.weightedHealth
	c.setHostsLocked(a.hosts)
}

// setHostsLocked makes specs the membership, keeping the hosts whose
// address stays.
func (c *Cluster) setHostsLocked(specs []hostSpec) {
	members := make([]*Host, 0, len(specs))
	var byKey map[string]*Host
	if len(specs) > hostMapMin {
		byKey = make(map[string]*Host, len(specs))
	}
	changed := false
	for i := range specs {
		s := &specs[i]
		k := s.key()
		if findHost(members, byKey, k) != nil {
			continue // duplicate
		}
		h := c.hostByKey(k)
		if h == nil {
			h = c.newHost(s, k)
			changed = true
		} else {
			c.updateHost(h, s)
		}
		members = append(members, h)
		if byKey != nil {
			byKey[k] = h
		}
	}
	for _, h := range c.members {
		if findHost(members, byKey, h.key) == h {
			continue
		}
		changed = true
		c.removeHostLocked(h)
	}
	if byKey != nil && len(members) <= hostMapMin {
		byKey = nil
	}
	c.members, c.byKey = members, byKey
	if changed {
		c.stats.membershipChange().Inc()
		c.updateHealthTargetsLocked()
	}
	c.rebuildLocked()
}

// hostByKey returns the member with the key, or nil; c.mu is held.
func (c *Cluster) hostByKey(key string) *Host { return findHost(c.members, c.byKey, key) }

// findHost looks a key up in byKey, or through members when byKey is nil.
func findHost(members []*Host, byKey map[string]*Host, key string) *Host {
	if byKey != nil {
		return byKey[key]
	}
	for _, h := range members {
		if h.key == key {
			return h
		}
	}
	return nil
}

func (c *Cluster) newHost(s *hostSpec, key string) *Host {
	h := &Host{cluster: c, key: key, network: s.network}
	addr := s.address
	h.addr.Store(&addr)
	if s.network == "unix" {
		h.pipeURL = "unix-" + itoa(int(uint32(lb.XXHash64([]byte(addr), 0)))) + ".invalid:1"
	}
	c.updateHost(h, s)
	if c.hc != nil && !s.hcOff {
		f := flagFailedActiveHC | flagPendingActiveHC
		if c.cfg.ignoreNewHostsUntilFirstHC {
			f |= flagExcludedPendingHC
		}
		h.setFlag(f, true)
		if !c.initDone {
			c.hcWaiting[key] = true
		}
	}
	if c.outlier != nil {
		c.outlier.add(h)
	}
	h.touch(c.m.opts.now())
	return h
}

func (c *Cluster) updateHost(h *Host, s *hostSpec) {
	h.weight.Store(max(s.weight, 1))
	h.priority.Store(s.priority)
	eds := edsFlags(s.health)
	h.setFlag(flagFailedEDS|flagDegradedEDS|flagDrainingEDS, false)
	if eds != 0 {
		h.setFlag(eds, true)
	}
	info := hostInfo{hostname: s.hostname, locality: s.locality, metadata: s.metadata, hcHostname: s.hcHost, hcDisabled: s.hcOff}
	switch {
	case s.hashKey != "":
		info.hashKey = s.hashKey
	case c.cfg.useHostnameForHashing && s.hostname != "":
		info.hashKey = s.hostname
	}
	if s.hcPort != 0 && s.network == "tcp" {
		if host, _, err := net.SplitHostPort(s.address); err == nil {
			info.hcAddr = net.JoinHostPort(host, itoa(int(s.hcPort)))
		}
	}
	if info == (hostInfo{}) {
		// A bare endpoint (an address only): the manager's shared empty
		// info, which no one modifies.
		h.info.Store(&c.m.noInfo)
		return
	}
	p := new(hostInfo)
	*p = info
	h.info.Store(p)
}

func (c *Cluster) removeHostLocked(h *Host) {
	h.removed.Store(true)
	if c.outlier != nil {
		c.outlier.remove(h)
	}
	delete(c.hcWaiting, h.key)
	if h.rqActive.Load() == 0 {
		c.conns.closeAll(h)
	}
}

// rebuildLocked recomputes the host set snapshot: priorities, health,
// priority load and load balancers.
func (c *Cluster) rebuildLocked() {
	var maxP uint32
	for _, h := range c.members {
		maxP = max(maxP, h.Priority())
	}
	var levels []*level
	var lv []lb.Level
	if len(c.members) > 0 {
		levels = make([]*level, maxP+1)
		lv = make([]lb.Level, maxP+1)
		for i := range levels {
			levels[i] = &level{}
		}
	}
	var byURL map[string]*Host
	if len(c.members) > hostMapMin {
		byURL = make(map[string]*Host, len(c.members))
	}
	// Size each level's lists first: they are kept, and growing them by
	// append leaves garbage between the kept objects.
	for _, h := range c.members {
		lv[h.Priority()].Hosts++
	}
	for i, l := range levels {
		l.all = make([]*Host, 0, lv[i].Hosts)
		lv[i].Hosts = 0
	}
	var healthy, degraded, excluded, maxW uint64
	for _, h := range c.members {
		if byURL != nil {
			byURL[h.urlHost()] = h
		}
		p := h.Priority()
		l, st := levels[p], &lv[p]
		st.Hosts++
		maxW = max(maxW, uint64(h.Weight()))
		if h.Excluded() {
			excluded++
			continue
		}
		w := uint64(1)
		if c.weighted {
			w = uint64(h.Weight())
		}
		st.Total += w
		l.all = append(l.all, h)
		if !h.Healthy() {
			continue
		}
		if h.Degraded() {
			st.Degraded += w
			degraded++
			l.degraded = append(l.degraded, h)
		} else {
			st.Healthy += w
			healthy++
			if l.healthy == nil {
				l.healthy = make([]*Host, 0, cap(l.all))
			}
			l.healthy = append(l.healthy, h)
		}
	}
	load := lb.ComputeLoad(lv, c.overprov, c.cfg.panicThreshold)
	s := &hostSet{levels: levels, load: load, members: c.members, byURL: byURL, multi: len(levels) > 1}
	for i, l := range levels {
		l.healthyLB = lb.New(c.cfg.lb, asLB(l.healthy))
		if len(l.degraded) > 0 {
			l.degradedLB = lb.New(c.cfg.lb, asLB(l.degraded))
			s.multi = true
		}
		if load.Panic[i] {
			l.allLB = lb.New(c.cfg.lb, asLB(l.all))
			s.multi = true
		}
	}
	c.set.Store(s)
	c.stats.membershipTotal().Set(uint64(len(c.members)))
	c.stats.membershipHealthy().Set(healthy)
	c.stats.membershipDegraded().Set(degraded)
	c.stats.membershipExcluded().Set(excluded)
	c.stats.maxHostWeight().Set(maxW)
}

// rebuild takes the lock and rebuilds; for health changes.
func (c *Cluster) rebuild() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rebuildLocked()
}

func asLB(hs []*Host) []lb.Host {
	out := make([]lb.Host, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out
}

// pick chooses a host for a request (req may be nil for connections).
func (c *Cluster) pick(lbc *LoadBalancerContext, req *http.Request) *Host {
	if c.origDst != nil {
		return c.origDst.pick(lbc, req)
	}
	s := c.set.Load()
	if len(s.levels) == 0 {
		return nil
	}
	l := s.levels[0]
	hosts, bal := l.healthy, l.healthyLB
	if s.multi {
		ph := lbc.Hash
		if !lbc.HasHash {
			ph = c.rand()
		}
		p, deg := s.load.Choose(ph)
		l = s.levels[p]
		switch {
		case s.load.Panic[p]:
			c.stats.lbHealthyPanic().Inc()
			hosts, bal = l.all, l.allLB
		case deg:
			hosts, bal = l.degraded, l.degradedLB
		default:
			hosts, bal = l.healthy, l.healthyLB
		}
	}
	if len(hosts) == 0 {
		return nil
	}
	for attempt := 0; ; attempt++ {
		i := bal.Pick(lbc.Hash, lbc.HasHash, uint32(attempt))
		if i < 0 {
			return nil
		}
		h := hosts[i]
		if attempt >= lbc.MaxHostSelectionAttempts || !lbc.avoid(h) {
			return h
		}
	}
}

// hostForURL maps the host part of an upstream URL back to its Host.
func (c *Cluster) hostForURL(u string) *Host {
	s := c.set.Load()
	if s.byURL != nil {
		if h := s.byURL[u]; h != nil {
			return h
		}
	} else {
		for _, h := range s.members {
			if h.urlHost() == u {
				return h
			}
		}
	}
	if c.origDst != nil {
		return c.origDst.get(u)
	}
	return nil
}

// urlHost is the authority the transports pool connections by: the
// address, or a stand-in name for pipes.
func (h *Host) urlHost() string {
	if h.network == "unix" {
		return h.pipeURL
	}
	return h.Address()
}

// TryRetry reserves one of the cluster's max_retries; the router calls it
// before each retry and RetryDone when that attempt ends. It returns false
// (and counts upstream_rq_retry_overflow) when the budget is used up.
func (c *Cluster) TryRetry(lbc LoadBalancerContext) bool {
	return c.breaker(&lbc).tryRetry()
}

// RetryDone releases a retry reserved by TryRetry.
func (c *Cluster) RetryDone(lbc LoadBalancerContext) { c.breaker(&lbc).retryDone() }

func (c *Cluster) breaker(lbc *LoadBalancerContext) *breaker {
	if lbc.HighPriority {
		return c.highBreaker()
	}
	return c.breaker0
}

// highBreaker returns the HIGH priority's breaker, made on first use: few
// routes set a priority, and its stats are in the block either way.
func (c *Cluster) highBreaker() *breaker {
	if b := c.high.Load(); b != nil {
		return b
	}
	b := newBreaker(c.cfg.breakers[1], c.stats, true)
	if !c.high.CompareAndSwap(nil, b) {
		return c.high.Load()
	}
	return b
}

// onHealthChange applies a health checker verdict to a host.
func (c *Cluster) onHealthChange(key string, st health.State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.hostByKey(key)
	if h == nil {
		return
	}
	changed := h.setFlag(flagFailedActiveHC, !st.Healthy)
	if st.Checked {
		changed = h.setFlag(flagPendingActiveHC|flagExcludedPendingHC, false) || changed
		if c.hcWaiting[key] {
			delete(c.hcWaiting, key)
			c.checkReadyLocked()
		}
	}
	if st.Healthy && c.outlier != nil && c.cfg.outlier.unejectOnHC {
		changed = c.outlier.unejectOnHealthy(h) || changed
	}
	if !st.Healthy && c.cfg.closeOnHealthFailure {
		c.conns.closeAll(h)
	}
	if changed {
		c.logger().Debug("host health changed", zap.String("host", h.Address()), zap.String("flags", h.HealthFlags()))
		c.rebuildLocked()
	}
}

// onHealthyCheck brings an outlier-ejected host back when an active health
// check passes (successful_active_health_check_uneject_host).
func (c *Cluster) onHealthyCheck(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.hostByKey(key)
	if h == nil || h.flags.Load()&flagFailedOutlier == 0 {
		return
	}
	if c.outlier.unejectOnHealthy(h) {
		c.rebuildLocked()
	}
}

// updateHealthTargetsLocked gives the health checker the current hosts.
func (c *Cluster) updateHealthTargetsLocked() {
	if c.hc == nil {
		return
	}
	targets := make([]health.Target, 0, len(c.members))
	for _, h := range c.members {
		info := h.info.Load()
		if info.hcDisabled {
			continue
		}
		addr := h.Address()
		if info.hcAddr != "" {
			addr = info.hcAddr
		}
		targets = append(targets, health.Target{Key: h.key, Network: h.network, Address: addr, Host: info.hcHostname})
	}
	c.hc.Update(targets)
}

func (c *Cluster) healthStats() health.Stats {
	return health.Stats{
		Attempt:        c.stats.counter("health_check.attempt"),
		Success:        c.stats.counter("health_check.success"),
		Failure:        c.stats.counter("health_check.failure"),
		NetworkFailure: c.stats.counter("health_check.network_failure"),
		Healthy:        c.stats.gauge("health_check.healthy"),
	}
}
