package cluster

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/wasmesh/wasmesh/cluster/dns"
)

// Resolver resolves host names for STRICT_DNS and LOGICAL_DNS clusters.
// *dns.Resolver implements it.
type Resolver interface {
	Resolve(ctx context.Context, name string, family dns.Family) ([]dns.Answer, error)
}

// SecretLookup finds secrets by name (tls_certificate_sds_secret_configs,
// validation_context_sds_secret_config): the bootstrap's static secrets
// today, SDS later.
type SecretLookup interface {
	Secret(name string) (*tlsv3.Secret, bool)
}

// Options configure a Manager. Zero fields get defaults.
type Options struct {
	// Logger is the "upstream" component logger; nil discards.
	Logger *zap.Logger
	// Stats receives the cluster stats; nil counts nothing.
	Stats Stats
	// Resolver is the default resolver of DNS clusters without their own
	// dns_resolvers; nil reads /etc/resolv.conf and /etc/hosts on first use.
	Resolver Resolver
	// Secrets resolves secret names; nil means none exist.
	Secrets SecretLookup
	// Now is the clock for ejection times and certificate checks.
	Now func() time.Time
	// Rand is the random source of the load balancers and jitters; it
	// must be safe for concurrent use.
	Rand func() uint64
	// ReadFile reads files named by the configuration (certificates).
	ReadFile func(string) ([]byte, error)
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Options) readFile(name string) ([]byte, error) {
	if o.ReadFile != nil {
		return o.ReadFile(name)
	}
	return os.ReadFile(name)
}

// Manager holds the running clusters by name. Clusters are added, replaced
// and removed one at a time; the others are untouched. Get is lock-free.
type Manager struct {
	ctx  context.Context
	opts Options
	log  *zap.Logger

	active atomic.Pointer[map[string]*Cluster]

	mu          sync.Mutex
	warming     map[string]*Cluster
	assignments map[string]*endpointv3.ClusterLoadAssignment
	closed      bool

	resolverOnce sync.Once
	resolver     Resolver
	resolverErr  error

	cmActive, cmWarming                                   Gauge
	cmAdded, cmModified, cmRemoved, cmUpdated, cmRejected Counter
}

// NewManager returns an empty manager. Cancelling ctx stops the clusters'
// background work (DNS refresh, health checks, outlier sweeps) as Close
// does.
func NewManager(ctx context.Context, opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Stats == nil {
		opts.Stats = nopStats{}
	}
	if opts.Rand == nil {
		opts.Rand = rand.Uint64
	}
	m := &Manager{ctx: ctx, opts: opts, log: opts.Logger, warming: map[string]*Cluster{}, assignments: map[string]*endpointv3.ClusterLoadAssignment{}}
	empty := map[string]*Cluster{}
	m.active.Store(&empty)
	s := opts.Stats
	m.cmActive = s.Gauge("cluster_manager.active_clusters")
	m.cmWarming = s.Gauge("cluster_manager.warming_clusters")
	m.cmAdded = s.Counter("cluster_manager.cluster_added")
	m.cmModified = s.Counter("cluster_manager.cluster_modified")
	m.cmRemoved = s.Counter("cluster_manager.cluster_removed")
	m.cmUpdated = s.Counter("cluster_manager.cluster_updated")
	m.cmRejected = s.Counter("cluster_manager.update_rejected")
	return m
}

func (m *Manager) defaultResolver() (Resolver, error) {
	m.resolverOnce.Do(func() {
		if m.opts.Resolver != nil {
			m.resolver = m.opts.Resolver
			return
		}
		r, err := dns.New(dns.Config{})
		if err != nil {
			m.resolverErr = err
			return
		}
		m.resolver = r
	})
	return m.resolver, m.resolverErr
}

// Validate compiles c without starting it, reporting every problem.
func Validate(c *clusterv3.Cluster, opts Options) error {
	_, err := compile(c, &opts)
	return err
}

// Add compiles c and starts it. A cluster with a new name, or a changed
// configuration for an existing name, warms first (initial DNS resolution,
// first health check round) and is then swapped in atomically; until then
// Get keeps returning the previous cluster of that name, and requests in
// flight on the previous one finish on it. An unchanged configuration is a
// no-op. Add returns once the cluster serves, or with ctx's error if ctx
// ends first (the warming cluster is then dropped). Configuration errors
// are *FieldError values naming the field.
func (m *Manager) Add(ctx context.Context, c *clusterv3.Cluster) error {
	name := c.GetName()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	old := (*m.active.Load())[name]
	if old != nil && proto.Equal(old.cfg.proto, c) {
		if w := m.warming[name]; w != nil {
			delete(m.warming, name)
			m.cmWarming.Set(uint64(len(m.warming)))
			m.mu.Unlock()
			w.Close()
			return nil
		}
		m.mu.Unlock()
		return nil
	}
	cla := m.assignments[name]
	m.mu.Unlock()

	cfg, err := compile(c, &m.opts)
	if err != nil {
		m.cmRejected.Inc()
		return err
	}
	var eds *assignment
	if cfg.kind == discEDS && cla != nil {
		if a, err := compileEndpoints(name, cla, cfg.kind); err == nil {
			eds = a
		}
	}
	cl, err := newCluster(m, cfg)
	if err != nil {
		m.cmRejected.Inc()
		return err
	}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		cl.Close()
		return ErrClosed
	}
	prev := m.warming[name]
	m.warming[name] = cl
	m.cmWarming.Set(uint64(len(m.warming)))
	m.mu.Unlock()
	if prev != nil {
		prev.Close()
	}

	cl.start(eds)
	select {
	case <-cl.ready:
	case <-cl.ctx.Done():
		// Closed while warming: by a newer Add or a Remove of the name
		// (which decide), or by Close or the manager's context.
		cl.Close()
		m.mu.Lock()
		closed := m.closed
		if m.warming[name] == cl {
			delete(m.warming, name)
			m.cmWarming.Set(uint64(len(m.warming)))
		}
		m.mu.Unlock()
		if closed || m.ctx.Err() != nil {
			return ErrClosed
		}
		return nil
	case <-ctx.Done():
		m.mu.Lock()
		if m.warming[name] == cl {
			delete(m.warming, name)
			m.cmWarming.Set(uint64(len(m.warming)))
		}
		m.mu.Unlock()
		cl.Close()
		return fmt.Errorf("%s: warming: %w", resourceName(name), ctx.Err())
	}

	m.mu.Lock()
	if m.warming[name] != cl {
		// Replaced or removed while warming; the newer call decides.
		m.mu.Unlock()
		cl.Close()
		return nil
	}
	delete(m.warming, name)
	cur := *m.active.Load()
	next := maps.Clone(cur)
	replaced := next[name]
	next[name] = cl
	m.active.Store(&next)
	m.cmWarming.Set(uint64(len(m.warming)))
	m.cmActive.Set(uint64(len(next)))
	if replaced != nil {
		m.cmModified.Inc()
	} else {
		m.cmAdded.Inc()
	}
	m.mu.Unlock()
	m.log.Info("cluster added", zap.String("cluster", name), zap.String("type", cfg.kind.String()), zap.Bool("replaced", replaced != nil))
	if replaced != nil {
		replaced.Close()
	}
	return nil
}

// Remove stops the named cluster; requests in flight on it finish. It
// reports whether a cluster (active or warming) had the name.
func (m *Manager) Remove(name string) bool {
	m.mu.Lock()
	cur := *m.active.Load()
	old := cur[name]
	w := m.warming[name]
	delete(m.warming, name)
	delete(m.assignments, name)
	if old != nil {
		next := maps.Clone(cur)
		delete(next, name)
		m.active.Store(&next)
		m.cmActive.Set(uint64(len(next)))
		m.cmRemoved.Inc()
	}
	m.cmWarming.Set(uint64(len(m.warming)))
	m.mu.Unlock()
	if w != nil {
		w.Close()
	}
	if old != nil {
		old.Close()
		if r, ok := m.opts.Stats.(StatsRemover); ok {
			r.Remove("cluster." + old.cfg.statName + ".")
		}
		m.log.Info("cluster removed", zap.String("cluster", name))
	}
	return old != nil || w != nil
}

// UpdateEndpoints replaces the endpoints of the named EDS cluster (its
// active and warming versions) with cla. Hosts that keep their address
// keep their health and counters. The assignment is remembered, so a
// later replacement of the cluster starts from it.
func (m *Manager) UpdateEndpoints(name string, cla *endpointv3.ClusterLoadAssignment) error {
	m.mu.Lock()
	active := (*m.active.Load())[name]
	w := m.warming[name]
	m.mu.Unlock()
	target := active
	if target == nil {
		target = w
	}
	if target == nil {
		return fmt.Errorf("%s: %w", resourceName(name), ErrUnknownCluster)
	}
	if target.cfg.kind != discEDS {
		return fmt.Errorf("%s: endpoints can only be updated on an EDS cluster, not %s", resourceName(name), target.cfg.kind)
	}
	a, err := compileEndpoints(name, cla, discEDS)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.assignments[name] = cla
	m.mu.Unlock()
	for _, c := range []*Cluster{active, w} {
		if c != nil {
			c.setAssignment(a)
		}
	}
	m.cmUpdated.Inc()
	return nil
}

// Get returns the serving cluster with the name, or nil.
func (m *Manager) Get(name string) *Cluster { return (*m.active.Load())[name] }

// Names lists the serving clusters, sorted.
func (m *Manager) Names() []string {
	return slices.Sorted(maps.Keys(*m.active.Load()))
}

// Close stops every cluster and waits for their background goroutines.
// Requests still in flight finish; their connections close when they do.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	all := slices.Collect(maps.Values(*m.active.Load()))
	for _, w := range m.warming {
		all = append(all, w)
	}
	m.warming = map[string]*Cluster{}
	empty := map[string]*Cluster{}
	m.active.Store(&empty)
	m.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
	return nil
}
