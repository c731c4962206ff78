package cluster

import (
	"context"
	"fmt"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
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

	active activeSet // written with mu held

	mu          sync.Mutex
	warming     map[string]*Cluster
	assignments map[string]*endpointv3.ClusterLoadAssignment
	closed      bool

	noInfo hostInfo // the info of every host without any; never modified

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
	m.active.seed = maphash.MakeSeed()
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
	var cfg config
	return compileInto(c, &opts, &cfg)
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
	return m.Apply(ctx, []*clusterv3.Cluster{c}, nil)[0]
}

// Apply is Add for every cluster of adds and Remove for every name of
// removes, as one change (an xDS response): the removals happen at once,
// the clusters of adds compile and warm concurrently, and those that
// finished warming together are swapped in with one copy of the cluster
// map, so that applying n clusters costs O(n), not O(n²). Each cluster
// still serves as soon as it warmed, independently of the others. The
// result has the error of each cluster of adds (nil when it serves or is
// unchanged, as Add's); a name should not appear twice in adds.
func (m *Manager) Apply(ctx context.Context, adds []*clusterv3.Cluster, removes []string) []error {
	errs := make([]error, len(adds))
	if len(removes) > 0 {
		m.removeAll(removes)
	}
	if len(adds) == 0 {
		return errs
	}
	// Compile and start them on a few workers (compiling is CPU work, and
	// the stats store is one lock); those ready at once (an EDS cluster
	// whose endpoints are known, a static one) are swapped in together,
	// the others each as soon as they warmed.
	results := make(chan warmed, len(adds))
	var ready []warmed
	var readyMu sync.Mutex
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range min(runtime.GOMAXPROCS(0), len(adds)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(adds) {
					return
				}
				w := m.prepare(i, adds[i])
				if w.cl != nil && !w.done {
					if !w.cl.isReady.Load() {
						go func() { results <- m.await(ctx, w) }()
						continue
					}
					w.done = true
				}
				readyMu.Lock()
				ready = append(ready, w)
				readyMu.Unlock()
			}
		}()
	}
	wg.Wait()
	m.publish(ready, errs)
	for got := len(ready); got < len(adds); {
		batch := []warmed{<-results}
		for more := true; more; {
			select {
			case r := <-results:
				batch = append(batch, r)
			default:
				more = false
			}
		}
		got += len(batch)
		m.publish(batch, errs)
	}
	return errs
}

// warmed is the outcome of warming one cluster of Apply: cl serves once
// published (when done), or err is adds[i]'s result.
type warmed struct {
	i    int
	cl   *Cluster
	done bool
	err  error
}

// prepare compiles and starts one cluster; the result is done unless cl
// is warming.
func (m *Manager) prepare(i int, c *clusterv3.Cluster) warmed {
	name := c.GetName()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return warmed{i: i, done: true, err: ErrClosed}
	}
	old := m.active.get(name)
	if old != nil && proto.Equal(old.cfg.proto, c) {
		if w := m.warming[name]; w != nil {
			delete(m.warming, name)
			m.cmWarming.Set(uint64(len(m.warming)))
			m.mu.Unlock()
			w.Close()
			return warmed{i: i, done: true}
		}
		m.mu.Unlock()
		return warmed{i: i, done: true}
	}
	cla := m.assignments[name]
	m.mu.Unlock()

	cfg, err := compile(c, &m.opts)
	if err != nil {
		m.cmRejected.Inc()
		return warmed{i: i, done: true, err: err}
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
		return warmed{i: i, done: true, err: err}
	}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		cl.Close()
		return warmed{i: i, done: true, err: ErrClosed}
	}
	prev := m.warming[name]
	m.warming[name] = cl
	m.cmWarming.Set(uint64(len(m.warming)))
	m.mu.Unlock()
	if prev != nil {
		prev.Close()
	}
	cl.start(eds)
	return warmed{i: i, cl: cl}
}

// await waits until a started cluster is ready.
func (m *Manager) await(ctx context.Context, w warmed) warmed {
	cl, name := w.cl, w.cl.name
	select {
	case <-cl.Ready():
		return warmed{i: w.i, cl: cl, done: true}
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
			return warmed{i: w.i, done: true, err: ErrClosed}
		}
		return warmed{i: w.i, done: true}
	case <-ctx.Done():
		m.mu.Lock()
		if m.warming[name] == cl {
			delete(m.warming, name)
			m.cmWarming.Set(uint64(len(m.warming)))
		}
		m.mu.Unlock()
		cl.Close()
		return warmed{i: w.i, done: true, err: fmt.Errorf("%s: warming: %w", resourceName(name), ctx.Err())}
	}
}

// publish swaps the warmed clusters of batch in with one copy of the
// cluster map and records each one's result in errs.
func (m *Manager) publish(batch []warmed, errs []error) {
	var replaced, stale []*Cluster
	var added, modified []string
	m.mu.Lock()
	next := m.active.begin()
	for _, w := range batch {
		errs[w.i] = w.err
		if w.cl == nil {
			continue
		}
		if m.warming[w.cl.name] != w.cl {
			// Replaced or removed while warming; the newer call decides.
			stale = append(stale, w.cl)
			continue
		}
		delete(m.warming, w.cl.name)
		if r := next.get(w.cl.name); r != nil {
			replaced = append(replaced, r)
			modified = append(modified, w.cl.name)
		} else {
			added = append(added, w.cl.name)
		}
		next.set(w.cl.name, w.cl)
	}
	if next.commit() {
		m.cmActive.Set(uint64(m.active.n))
	}
	m.cmWarming.Set(uint64(len(m.warming)))
	m.cmAdded.Add(uint64(len(added)))
	m.cmModified.Add(uint64(len(modified)))
	m.mu.Unlock()
	for _, c := range stale {
		c.Close()
	}
	for _, c := range replaced {
		c.Close()
	}
	m.logChange("cluster added", added)
	m.logChange("cluster modified", modified)
}

// logChange logs the names of a change: each one when they are few, the
// count (and each name at debug level) when there are many.
func (m *Manager) logChange(msg string, names []string) {
	switch {
	case len(names) == 0:
	case len(names) <= 10:
		for _, n := range names {
			m.log.Info(msg, zap.String("cluster", n))
		}
	default:
		m.log.Info(msg, zap.Int("clusters", len(names)))
		if ce := m.log.Check(zap.DebugLevel, msg); ce != nil {
			for _, n := range names {
				m.log.Debug(msg, zap.String("cluster", n))
			}
		}
	}
}

// Remove stops the named cluster; requests in flight on it finish. It
// reports whether a cluster (active or warming) had the name.
func (m *Manager) Remove(name string) bool { return m.removeAll([]string{name}) > 0 }

// removeAll removes the named clusters with one copy of the cluster map;
// it returns how many names had a cluster (active or warming).
func (m *Manager) removeAll(names []string) int {
	var olds, ws []*Cluster
	m.mu.Lock()
	next := m.active.begin()
	n := 0
	for _, name := range names {
		old := next.get(name)
		w := m.warming[name]
		delete(m.warming, name)
		delete(m.assignments, name)
		if w != nil {
			ws = append(ws, w)
		}
		if old != nil {
			next.del(name)
			olds = append(olds, old)
		}
		if old != nil || w != nil {
			n++
		}
	}
	if next.commit() {
		m.cmActive.Set(uint64(m.active.n))
		m.cmRemoved.Add(uint64(len(olds)))
	}
	m.cmWarming.Set(uint64(len(m.warming)))
	m.mu.Unlock()
	for _, w := range ws {
		w.Close()
	}
	removed := make([]string, 0, len(olds))
	for _, old := range olds {
		old.Close()
		if r, ok := m.opts.Stats.(StatsRemover); ok {
			r.Remove("cluster." + old.cfg.statName + ".")
		}
		removed = append(removed, old.name)
	}
	m.logChange("cluster removed", removed)
	return n
}

// UpdateEndpoints replaces the endpoints of the named EDS cluster (its
// active and warming versions) with cla. Hosts that keep their address
// keep their health and counters. The assignment is remembered, so a
// later replacement of the cluster starts from it.
func (m *Manager) UpdateEndpoints(name string, cla *endpointv3.ClusterLoadAssignment) error {
	m.mu.Lock()
	active := m.active.get(name)
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
func (m *Manager) Get(name string) *Cluster { return m.active.get(name) }

// Names lists the serving clusters, sorted.
func (m *Manager) Names() []string {
	var names []string
	for i := range m.active.shards {
		if p := m.active.shards[i].Load(); p != nil {
			for n := range *p {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return names
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
	var all []*Cluster
	for i := range m.active.shards {
		if p := m.active.shards[i].Swap(nil); p != nil {
			all = slices.AppendSeq(all, maps.Values(*p))
		}
	}
	m.active.n = 0
	for _, w := range m.warming {
		all = append(all, w)
	}
	m.warming = map[string]*Cluster{}
	m.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
	return nil
}

// activeShards is the number of shards of the serving clusters.
const activeShards = 256

// activeSet is the serving clusters by name, split by a hash of the name
// into shards that are each an immutable map swapped atomically: Get is
// lock-free, and a change copies only the shards of the names it touches,
// so that replacing one cluster among n costs O(n/activeShards) rather
// than O(n). A change of several clusters is not one atomic swap: a
// concurrent Get may see some of them changed and others not yet, each
// cluster itself being either the old or the new one.
type activeSet struct {
	seed   maphash.Seed
	shards [activeShards]atomic.Pointer[map[string]*Cluster]
	n      int // clusters; written with the manager's mu held
}

func (a *activeSet) shard(name string) int {
	return int(maphash.String(a.seed, name) % activeShards)
}

func (a *activeSet) get(name string) *Cluster {
	if p := a.shards[a.shard(name)].Load(); p != nil {
		return (*p)[name]
	}
	return nil
}

// begin starts a change; the manager's mu must be held until commit.
func (a *activeSet) begin() *activeChange { return &activeChange{a: a} }

// activeChange is a change of an activeSet: copies of the shards it
// touched.
type activeChange struct {
	a    *activeSet
	next map[int]map[string]*Cluster
}

func (c *activeChange) shard(name string) (int, map[string]*Cluster) {
	i := c.a.shard(name)
	if m, ok := c.next[i]; ok {
		return i, m
	}
	if p := c.a.shards[i].Load(); p != nil {
		return i, *p
	}
	return i, nil
}

func (c *activeChange) get(name string) *Cluster {
	_, m := c.shard(name)
	return m[name]
}

// writable returns the copy of the name's shard, making it on first use.
func (c *activeChange) writable(name string) map[string]*Cluster {
	i := c.a.shard(name)
	if m, ok := c.next[i]; ok {
		return m
	}
	if c.next == nil {
		c.next = map[int]map[string]*Cluster{}
	}
	m := map[string]*Cluster{}
	if p := c.a.shards[i].Load(); p != nil {
		m = make(map[string]*Cluster, len(*p)+1)
		maps.Copy(m, *p)
	}
	c.next[i] = m
	return m
}

func (c *activeChange) set(name string, cl *Cluster) {
	m := c.writable(name)
	if _, ok := m[name]; !ok {
		c.a.n++
	}
	m[name] = cl
}

func (c *activeChange) del(name string) {
	if c.get(name) == nil {
		return
	}
	delete(c.writable(name), name)
	c.a.n--
}

// commit publishes the touched shards; it reports whether there were any.
func (c *activeChange) commit() bool {
	for i, m := range c.next {
		c.a.shards[i].Store(&m)
	}
	return len(c.next) > 0
}
