package health

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Target is one host to check.
type Target struct {
	// Key identifies the target across updates.
	Key string
	// Network and Address are where checks connect ("tcp", "ip:port").
	Network, Address string
	// Host overrides the HTTP host header (health_check_config.hostname).
	Host string
}

// State is a target's combined health.
type State struct {
	// Healthy: every config's checks pass.
	Healthy bool
	// Checked: every config has completed its first check.
	Checked bool
}

// Counter and Gauge are the stat handles the checker updates.
type (
	Counter interface{ Inc() }
	Gauge   interface{ Set(uint64) }
)

// Stats are the cluster's health_check.* stats.
type Stats struct {
	Attempt, Success, Failure, NetworkFailure Counter
	// Healthy is the number of healthy targets.
	Healthy Gauge
}

// Options configure a Checker.
type Options struct {
	// Cluster is the cluster name, the default HTTP host header.
	Cluster string
	// Dial connects to a target, with the cluster's transport socket (TLS
	// when the cluster has one; h2 asks for ALPN "h2").
	Dial   func(ctx context.Context, network, address string, h2 bool) (net.Conn, error)
	Logger *zap.Logger
	Stats  Stats
	// HasTraffic reports whether the cluster has carried traffic yet
	// (no_traffic_interval applies until it has); nil means it has.
	HasTraffic func() bool
	// OnChange is called, from a checker goroutine and without locks held,
	// whenever a target's State changes.
	OnChange func(key string, s State)
	// OnHealthyCheck, if set, is called after every check that leaves the
	// target healthy (Envoy's check-complete callback, which lets an
	// outlier-ejected host come back on a passing health check).
	OnHealthyCheck func(key string)
	// Rand is the jitter source; nil uses math/rand/v2.
	Rand func() uint64
}

type nopCounter struct{}

func (nopCounter) Inc()       {}
func (nopCounter) Set(uint64) {}

// Checker runs the checks of one cluster.
type Checker struct {
	cfgs []*Config
	opts Options
	log  *zap.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	targets map[string]*target
	healthy atomic.Int64
}

type target struct {
	c      *Checker
	cur    atomic.Pointer[Target]
	cancel context.CancelFunc

	mu       sync.Mutex
	sessions []*session
	state    State
	gone     bool
}

// NewChecker starts a checker for the configs; it checks nothing until
// Update gives it targets. Cancelling ctx stops it like Close.
func NewChecker(ctx context.Context, cfgs []*Config, opts Options) *Checker {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Rand == nil {
		opts.Rand = rand.Uint64
	}
	for _, c := range []*Counter{&opts.Stats.Attempt, &opts.Stats.Success, &opts.Stats.Failure, &opts.Stats.NetworkFailure} {
		if *c == nil {
			*c = nopCounter{}
		}
	}
	if opts.Stats.Healthy == nil {
		opts.Stats.Healthy = nopCounter{}
	}
	ck := &Checker{cfgs: cfgs, opts: opts, log: opts.Logger, targets: map[string]*target{}}
	ck.ctx, ck.cancel = context.WithCancel(ctx)
	return ck
}

// Update makes targets the set checked: new ones start (unhealthy, pending
// their first check), missing ones stop, and a changed address is used
// from the next check on.
func (c *Checker) Update(targets []Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return
	}
	keep := make(map[string]bool, len(targets))
	for _, t := range targets {
		keep[t.Key] = true
		if old, ok := c.targets[t.Key]; ok {
			tt := t
			old.cur.Store(&tt)
			continue
		}
		tg := &target{c: c}
		tt := t
		tg.cur.Store(&tt)
		var tctx context.Context
		tctx, tg.cancel = context.WithCancel(c.ctx)
		for i, cfg := range c.cfgs {
			s := &session{cfg: cfg, tg: tg, idx: i, first: true}
			tg.sessions = append(tg.sessions, s)
		}
		c.targets[t.Key] = tg
		for _, s := range tg.sessions {
			c.wg.Add(1)
			go s.run(tctx)
		}
	}
	for k, tg := range c.targets {
		if keep[k] {
			continue
		}
		tg.cancel()
		tg.mu.Lock()
		tg.gone = true
		if tg.state.Healthy {
			c.opts.Stats.Healthy.Set(uint64(c.healthy.Add(-1)))
		}
		tg.mu.Unlock()
		delete(c.targets, k)
	}
}

// Close stops every check and waits for the goroutines to end.
func (c *Checker) Close() {
	c.cancel()
	c.mu.Lock()
	c.targets = map[string]*target{}
	c.mu.Unlock()
	c.wg.Wait()
}

// report records a session's new health and calls OnChange when the
// target's combined state changed.
func (tg *target) report() {
	tg.mu.Lock()
	if tg.gone {
		tg.mu.Unlock()
		return
	}
	st := State{Healthy: true, Checked: true}
	for _, s := range tg.sessions {
		h, first := s.status()
		st.Healthy = st.Healthy && h
		st.Checked = st.Checked && !first
	}
	changed := st != tg.state
	if st.Healthy != tg.state.Healthy {
		d := int64(1)
		if !st.Healthy {
			d = -1
		}
		tg.c.opts.Stats.Healthy.Set(uint64(tg.c.healthy.Add(d)))
	}
	tg.state = st
	key := tg.cur.Load().Key
	tg.mu.Unlock()
	if changed && tg.c.opts.OnChange != nil {
		tg.c.opts.OnChange(key, st)
	}
}

type result uint8

const (
	resultSuccess   result = iota
	resultNetwork          // connect failure, timeout, reset: counts toward the threshold
	resultRetriable        // retriable status: counts toward the threshold
	resultActive           // the host answered wrongly: unhealthy at once
)

type transition uint8

const (
	unchanged transition = iota
	changed
)

type session struct {
	cfg *Config
	tg  *target
	idx int

	mu                       sync.Mutex
	healthy, first           bool
	numHealthy, numUnhealthy uint32

	httpState
}

func (s *session) status() (healthy, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.healthy, s.first
}

func (s *session) run(ctx context.Context) {
	c := s.tg.c
	defer c.wg.Done()
	defer s.closeHTTP()
	timer := time.NewTimer(s.jitter(s.cfg.initialJitter))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		t := s.tg.cur.Load()
		c.opts.Stats.Attempt.Inc()
		var r result
		if s.cfg.kind == kindHTTP {
			r = s.checkHTTP(ctx, t)
		} else {
			r = s.checkTCP(ctx, t)
		}
		if ctx.Err() != nil {
			return
		}
		switch r {
		case resultSuccess:
			c.opts.Stats.Success.Inc()
		case resultNetwork:
			c.opts.Stats.NetworkFailure.Inc()
			c.opts.Stats.Failure.Inc()
		default:
			c.opts.Stats.Failure.Inc()
		}
		tr, wasFirst := s.apply(r)
		if tr == changed || wasFirst {
			s.tg.report()
		}
		if r == resultSuccess && c.opts.OnHealthyCheck != nil {
			s.tg.mu.Lock()
			ok, gone := s.tg.state.Healthy, s.tg.gone
			s.tg.mu.Unlock()
			if ok && !gone {
				c.opts.OnHealthyCheck(t.Key)
			}
		}
		timer.Reset(s.next(tr))
	}
}

// apply runs Envoy's state machine for one result.
func (s *session) apply(r result) (transition, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.first
	s.first = false
	tr := unchanged
	if r == resultSuccess {
		s.numUnhealthy = 0
		if !s.healthy {
			s.numHealthy++
			if first || s.numHealthy >= s.cfg.healthyThreshold {
				s.healthy, s.numHealthy = true, 0
				tr = changed
			}
		}
		return tr, first
	}
	s.numHealthy = 0
	if s.healthy {
		s.numUnhealthy++
		if r == resultActive || s.numUnhealthy >= s.cfg.unhealthyThreshold {
			s.healthy, s.numUnhealthy = false, 0
			tr = changed
		}
	}
	return tr, first
}

func (s *session) next(tr transition) time.Duration {
	s.mu.Lock()
	healthy := s.healthy
	s.mu.Unlock()
	cfg := s.cfg
	var base time.Duration
	switch {
	case s.tg.c.opts.HasTraffic != nil && !s.tg.c.opts.HasTraffic():
		base = cfg.noTraffic
		if healthy {
			base = cfg.noTrafficHealthy
		}
	case tr == changed && healthy:
		base = cfg.healthyEdge
	case tr == changed:
		base = cfg.unhealthyEdge
	case healthy:
		base = cfg.interval
	default:
		base = cfg.unhealthyInterval
	}
	d := base + s.jitter(cfg.intervalJitter)
	if cfg.jitterPercent > 0 {
		d += s.jitter(base * time.Duration(cfg.jitterPercent) / 100)
	}
	return d
}

func (s *session) jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(s.tg.c.opts.Rand() % uint64(max))
}
