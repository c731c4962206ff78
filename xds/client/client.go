package client

import (
	"context"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Type URLs of the resources the client subscribes to.
const (
	TypeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	TypeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	TypeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
)

// Client is one data plane's ADS client. Create it with New and run it
// with Run; everything else is safe for concurrent use.
type Client struct {
	cfg  Config
	dp   DataPlane
	log  *zap.Logger
	rand *rand.Rand

	connected Gauge
	ready     chan struct{}
	readyOnce sync.Once

	mu       sync.Mutex // guards versions and nacks for the accessors
	versions map[string]string
	nacks    map[string]string

	// Owned by Run's goroutine.
	subs         map[string]*subscription
	clusters     map[string]*clusterv3.Cluster // accepted, handed to the data plane
	pending      map[string]*clusterv3.Cluster // EDS clusters waiting for endpoints
	pendingSince map[string]time.Time
	// The clusters (active, warming) fed by each EDS name, and the sorted
	// EDS names, nil when they changed since they were last listed.
	edsActive, edsWarming map[string][]string
	edsList               []string
	clas                  map[string]*endpointv3.ClusterLoadAssignment // by EDS service name
	listeners             map[string]*listenerv3.Listener
	start                 time.Time
	cdsAnswered           bool
	cdsInit               bool
	ldsInit               bool
	ldsSince              time.Time // when LDS became due; zero before
	decodeCaches          map[string]*decodeCache
	// held are LDS responses waiting for new clusters to warm: a listener
	// routing to a cluster that is not there yet would fail validation.
	held []func() error
	// RDS: accepted route configurations by name; the names whose first
	// fetch ended (arrived, rejected or timed out); the names the serving
	// listeners need and those listener responses not yet applied need
	// (with their initial_fetch_timeout); when a name started waiting.
	routes      map[string]*routev3.RouteConfiguration
	rdsAnswered map[string]bool
	rdsActive   map[string]time.Duration
	rdsHeld     map[string]time.Duration
	rdsSince    map[string]time.Time
	ldsAnswered bool // an LDS response arrived (it may be held)
	ecds        *ecdsState
	// Transports: the ADS channel (nil without ads_config), the channel
	// of each separately sourced type, every channel, the gRPC
	// connections by target, the events of their goroutines.
	ads    *channel
	chanOf map[string]*channel
	chans  []*channel
	conns  map[string]*grpc.ClientConn
	events chan event
	rctx   context.Context
	wg     sync.WaitGroup
	files  map[string][]byte // path_config_source: last content by path
	// edsKey identifies the config source of the EDS clusters ("ads" or
	// the source's key), "" before the first.
	edsKey string
	// RTDS: the sorted layer names; whether the initial fetch ended.
	rtdsList []string
	rtdsInit bool
}

// subscription is the protocol state of one resource type, kept across
// streams.
type subscription struct {
	typeURL  string
	wildcard bool
	names    []string          // EDS: the resource names wanted
	version  string            // SotW: last accepted version_info
	nonce    string            // last response nonce
	versions map[string]string // delta: accepted resource versions

	attempt, success, rejected, failure, initTimeout Counter
	updateTime                                       Gauge
}

// New returns a client applying what it accepts to dp.
func New(cfg Config, dp DataPlane) *Client {
	cfg.defaults()
	cfg.Node = nodeWithUserAgent(cfg.Node)
	c := &Client{
		cfg: cfg, dp: dp, log: cfg.Logger,
		rand:      rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x9e3779b97f4a7c15)),
		connected: cfg.Stats.Gauge("control_plane.connected_state"),
		ready:     make(chan struct{}),
		versions:  map[string]string{}, nacks: map[string]string{},
		subs:         map[string]*subscription{},
		clusters:     map[string]*clusterv3.Cluster{},
		pending:      map[string]*clusterv3.Cluster{},
		pendingSince: map[string]time.Time{},
		edsActive:    map[string][]string{},
		edsWarming:   map[string][]string{},
		clas:         map[string]*endpointv3.ClusterLoadAssignment{},
		listeners:    map[string]*listenerv3.Listener{},
		routes:       map[string]*routev3.RouteConfiguration{},
		rdsAnswered:  map[string]bool{},
		rdsSince:     map[string]time.Time{},
		chanOf:       map[string]*channel{},
		conns:        map[string]*grpc.ClientConn{},
	}
	c.connected.Set(0)
	c.rtdsInit = len(c.rtdsNames()) == 0
	if cfg.Resolve != nil {
		sec := cfg.Secrets
		sec.mu.Lock()
		sec.resolve, sec.hasADS = cfg.Resolve, cfg.HasADS
		sec.mu.Unlock()
	}
	c.noteListenerSources(cfg.StaticListeners)
	c.listenersApplied()
	for _, s := range []struct{ url, prefix string }{
		{TypeCluster, "cluster_manager.cds."},
		{TypeEndpoint, ""},
		{TypeListener, "listener_manager.lds."},
		{TypeRoute, ""},
		{TypeExtensionConfig, ""},
		{TypeSecret, ""},
		{TypeRuntime, ""},
	} {
		sub := &subscription{typeURL: s.url, wildcard: s.url == TypeCluster || s.url == TypeListener, versions: map[string]string{}}
		if s.prefix != "" {
			sub.attempt = cfg.Stats.Counter(s.prefix + "update_attempt")
			sub.success = cfg.Stats.Counter(s.prefix + "update_success")
			sub.rejected = cfg.Stats.Counter(s.prefix + "update_rejected")
			sub.failure = cfg.Stats.Counter(s.prefix + "update_failure")
			sub.initTimeout = cfg.Stats.Counter(s.prefix + "init_fetch_timeout")
			sub.updateTime = cfg.Stats.Gauge(s.prefix + "update_time")
		} else {
			sub.attempt, sub.success, sub.rejected, sub.failure, sub.initTimeout, sub.updateTime = nopStat{}, nopStat{}, nopStat{}, nopStat{}, nopStat{}, nopStat{}
		}
		c.subs[s.url] = sub
	}
	return c
}

// Ready is closed once the initial clusters (with their endpoints) and
// listeners were applied, or their initial_fetch_timeout ran out.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Version returns the last accepted version_info (SotW) or
// system_version_info (delta) of a resource type.
func (c *Client) Version(typeURL string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[typeURL]
}

// LastNACK returns the error_detail message of the last rejected update of
// a resource type, "" once an update is accepted again.
func (c *Client) LastNACK(typeURL string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nacks[typeURL]
}

// Run connects to the control plane (the ADS stream, and a stream or REST
// poller per separately sourced type) and keeps each up, reconnecting with
// jittered exponential backoff, until ctx ends. What was applied stays
// applied when a control plane is gone.
func (c *Client) Run(ctx context.Context) error {
	c.start = time.Now()
	rctx, cancel := context.WithCancel(ctx)
	c.rctx = rctx
	c.events = make(chan event)
	defer func() {
		cancel()
		for _, ch := range c.chans {
			if ch.timer != nil {
				ch.timer.Stop()
			}
		}
		c.wg.Wait()
		for _, conn := range c.conns {
			conn.Close()
		}
	}()
	if c.cfg.Target != "" {
		c.ads = c.addChannel("", Source{Target: c.cfg.Target, Dial: c.cfg.Dial, Authority: c.cfg.Authority,
			Delta: c.cfg.Delta, SetNodeOnFirstMessageOnly: c.cfg.SetNodeOnFirstMessageOnly})
	}
	if c.cfg.CDSSource != nil {
		c.addChannel(TypeCluster, *c.cfg.CDSSource)
	}
	if c.cfg.LDSSource != nil {
		c.addChannel(TypeListener, *c.cfg.LDSSource)
	}
	if c.cfg.RTDSSource != nil && !c.rtdsInit {
		c.addChannel(TypeRuntime, *c.cfg.RTDSSource)
	}
	if c.cfg.CDSPath != "" {
		c.files = map[string][]byte{}
		c.checkFiles(ctx)
		t := time.NewTicker(c.cfg.FileInterval)
		defer t.Stop()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				select {
				case <-rctx.Done():
					return
				case <-t.C:
					c.post(rctx.Done(), event{kind: evFiles})
				}
			}
		}()
	}
	for {
		dl := c.deadlineTimer()
		select {
		case <-ctx.Done():
			stopTimer(dl)
			return nil
		case ev := <-c.events:
			c.onEvent(ctx, ev)
		case <-timerC(dl):
			c.onDeadline(ctx)
		}
		stopTimer(dl)
		if err := c.flushHeld(); err != nil {
			if ch := c.carrier(TypeListener); ch != nil {
				c.closeChannel(ch, err)
			}
		}
		for _, ch := range c.chans {
			if ch.live || ch.src.REST { // a REST request is kept for the next poll
				if err := c.syncChannel(ch); err != nil {
					c.closeChannel(ch, err)
				}
			}
		}
		for _, ch := range c.chans {
			// A REST type that became due (LDS after CDS) polls at once.
			if ch.src.REST && ch.restReq != nil && !ch.restStarted && !ch.polling {
				c.poll(ch)
			}
		}
	}
}

// backoff is Envoy's jittered exponential backoff: between half and all of
// min(base·2^n, max).
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.BackoffBase
	for i := 0; i < n && d < c.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.BackoffMax)
	return d/2 + time.Duration(c.rand.Int64N(int64(d/2)+1))
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// deadlineTimer fires at the next initial-fetch or warming timeout, or is
// nil when none is due.
func (c *Client) deadlineTimer() *time.Timer {
	var next time.Time
	consider := func(since time.Time, d time.Duration) {
		if d < 0 || since.IsZero() {
			return
		}
		at := since.Add(d)
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if !c.cdsInit && !c.cdsAnswered {
		consider(c.start, c.cfg.CDSInitialFetchTimeout)
	}
	for _, since := range c.pendingSince {
		consider(since, c.cfg.CDSInitialFetchTimeout)
	}
	if !c.ldsInit && !c.ldsAnswered {
		consider(c.ldsSince, c.cfg.LDSInitialFetchTimeout)
	}
	if !c.rtdsInit {
		consider(c.start, c.rtdsTimeout())
	}
	c.rdsDeadlines(consider)
	c.sdsDeadlines(consider)
	if next.IsZero() {
		return nil
	}
	return time.NewTimer(max(time.Until(next), 0))
}

// onDeadline applies the timeouts that ran out: warming EDS clusters start
// without endpoints, initialisation stops waiting.
func (c *Client) onDeadline(ctx context.Context) {
	now := time.Now()
	d := c.cfg.CDSInitialFetchTimeout
	var late []*clusterv3.Cluster
	for name, since := range c.pendingSince {
		if d >= 0 && !now.Before(since.Add(d)) {
			late = append(late, c.pending[name])
		}
	}
	if len(late) > 0 {
		sort.Slice(late, func(i, j int) bool { return late[i].GetName() < late[j].GetName() })
		for _, cl := range late {
			c.log.Warn("cluster initial endpoints fetch timed out; starting without hosts", zap.String("cluster", cl.GetName()))
		}
		if err := c.addClusters(ctx, late, late); err != nil {
			c.log.Warn("adding warming clusters", zap.Error(err))
		}
	}
	if !c.cdsInit && !c.cdsAnswered && d >= 0 && !now.Before(c.start.Add(d)) {
		c.log.Warn("CDS initial fetch timed out")
		c.subs[TypeCluster].initTimeout.Inc()
		c.cdsInit = true
	}
	c.rdsTimeouts(now)
	c.sdsTimeouts(ctx, now)
	if d := c.rtdsTimeout(); !c.rtdsInit && d >= 0 && !now.Before(c.start.Add(d)) {
		c.log.Warn("RTDS initial fetch timed out")
		c.rtdsInit = true
	}
	if !c.ldsInit && !c.ldsAnswered && !c.ldsSince.IsZero() && c.cfg.LDSInitialFetchTimeout >= 0 && !now.Before(c.ldsSince.Add(c.cfg.LDSInitialFetchTimeout)) {
		c.log.Warn("LDS initial fetch timed out")
		c.subs[TypeListener].initTimeout.Inc()
		c.ldsInit = true
	}
	c.updateInit()
}

// updateInit advances initialisation: CDS is initialised once answered
// and its EDS clusters warmed; LDS becomes due then; Ready closes when
// both are initialised.
func (c *Client) updateInit() {
	if !c.cdsInit && c.cdsAnswered && len(c.pendingSince) == 0 && !c.secretClustersWaiting() {
		c.cdsInit = true
	}
	if c.cdsInit && c.ldsSince.IsZero() {
		c.ldsSince = time.Now()
	}
	if c.cdsInit && c.ldsInit && c.rtdsInit {
		c.readyOnce.Do(func() { close(c.ready) })
	}
}

func (c *Client) setVersion(typeURL, version, nack string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if nack == "" {
		c.versions[typeURL] = version
	}
	c.nacks[typeURL] = nack
}

// edsNames lists the EDS resource names the current clusters need,
// sorted; the list is kept until the set of names changes, and must not be
// modified.
func (c *Client) edsNames() []string {
	if c.edsList != nil {
		return c.edsList
	}
	names := make([]string, 0, len(c.edsActive)+len(c.edsWarming))
	for n := range c.edsActive {
		names = append(names, n)
	}
	for n := range c.edsWarming {
		if _, ok := c.edsActive[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	c.edsList = names
	return names
}

func isEDS(cl *clusterv3.Cluster) bool { return cl.GetType() == clusterv3.Cluster_EDS }

func edsName(cl *clusterv3.Cluster) string {
	if n := cl.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return cl.GetName()
}

func withAssignment(cl *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment) *clusterv3.Cluster {
	if cla == nil {
		return cl
	}
	out := proto.Clone(cl).(*clusterv3.Cluster)
	out.LoadAssignment = cla
	return out
}

// nodeWithUserAgent fills the user agent fields Envoy sends when the
// bootstrap left them empty.
func nodeWithUserAgent(n *corev3.Node) *corev3.Node {
	if n == nil {
		n = &corev3.Node{}
	} else {
		n = proto.Clone(n).(*corev3.Node)
	}
	if n.GetUserAgentName() == "" {
		n.UserAgentName = "envoy"
	}
	if n.GetUserAgentVersionType() == nil {
		n.UserAgentVersionType = &corev3.Node_UserAgentBuildVersion{UserAgentBuildVersion: &corev3.BuildVersion{
			Version: &typev3.SemanticVersion{MajorNumber: 1, MinorNumber: 36, Patch: 0},
		}}
	}
	return n
}

// warmingNew reports whether a cluster that the data plane does not have
// yet is warming.
func (c *Client) warmingNew() bool {
	for name := range c.pending {
		if _, ok := c.clusters[name]; !ok {
			return true
		}
	}
	return false
}

// hold defers an LDS response while new clusters warm; it reports whether
// it did.
func (c *Client) hold(typeURL string, handle func() error) bool {
	if typeURL != TypeListener || (!c.warmingNew() && !c.routesWaiting() && !c.secretsWaiting() && len(c.held) == 0) {
		return false
	}
	c.held = append(c.held, handle)
	return true
}

// flushHeld handles the held LDS responses, in order, once no new cluster
// is warming.
func (c *Client) flushHeld() error {
	if len(c.held) == 0 || c.warmingNew() || c.routesWaiting() || c.secretsWaiting() {
		return nil
	}
	held := c.held
	c.held = nil
	for _, h := range held {
		if err := h(); err != nil {
			return err
		}
	}
	return nil
}
