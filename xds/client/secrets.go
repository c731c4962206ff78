package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TypeSecret is the Secret type URL (SDS).
const TypeSecret = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

const (
	upstreamTLSTypeURL   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	downstreamTLSTypeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	// defaultSDSFetchTimeout is Envoy's initial_fetch_timeout default.
	defaultSDSFetchTimeout = 15 * time.Second
)

// SecretValidator is implemented by a DataPlane that checks a secret
// before the client accepts it (certificate and key parse and match); a
// rejected secret is NACKed and its previous value keeps serving.
type SecretValidator interface {
	ValidateSecret(s *tlsv3.Secret) error
}

// Secrets holds the secrets delivered over SDS by name: what listeners and
// clusters read at each TLS handshake (SDSSecret), and the SDS protocol
// state of the client using it. The server creates it (NewSecrets) and
// hands it to the client in Config.Secrets; SDSSecret and Dump are safe
// for concurrent use, the rest belongs to the client's goroutine.
type Secrets struct {
	mu    sync.Mutex
	slots map[string]*secretSlot

	// Owned by the client's goroutine.
	wanted   map[string]bool
	held     map[string]time.Duration // secrets of held LDS responses
	waiting  map[string]*clusterv3.Cluster
	clusterR map[*clusterv3.Cluster][]secretRef
	listenR  map[*listenerv3.Listener][]secretRef
	names    []string // sorted wanted names, nil when they changed

	// Guarded by mu: the client's resolver of config sources, whether it
	// has ADS, the key and source (nil: ADS) of the SDS secrets.
	resolve func(*corev3.ConfigSource) (*Source, error)
	hasADS  bool
	srcKey  string
	src     *Source
}

// secretSlot is one secret name: its current value, read lock-free at
// every handshake.
type secretSlot struct {
	value atomic.Pointer[tlsv3.Secret]
	// Guarded by Secrets.mu.
	version  string
	updated  time.Time
	since    time.Time     // when it was first wanted; zero when not wanted
	timeout  time.Duration // initial_fetch_timeout; negative: forever
	timedOut bool          // the initial fetch ended without a value (timeout, rejection)
}

// secretRef is a secret a resource reads over SDS, with its
// initial_fetch_timeout.
type secretRef struct {
	name    string
	timeout time.Duration
	src     *corev3.ConfigSource
}

// NewSecrets returns an empty secret store.
func NewSecrets() *Secrets {
	return &Secrets{slots: map[string]*secretSlot{}, wanted: map[string]bool{},
		waiting: map[string]*clusterv3.Cluster{}, clusterR: map[*clusterv3.Cluster][]secretRef{}, listenR: map[*listenerv3.Listener][]secretRef{}}
}

func (s *Secrets) slot(name string) *secretSlot {
	sl := s.slots[name]
	if sl == nil {
		sl = &secretSlot{}
		s.slots[name] = sl
	}
	return sl
}

// SDSSecret returns the reader of a secret delivered over SDS: nil until
// it arrives, a new pointer for each accepted version. The config source
// is `ads: {}` or an api_config_source (GRPC, DELTA_GRPC or REST), the
// same for every SDS secret of the data plane (resource_api_version V3
// and initial_fetch_timeout allowed); errors name the field under it.
func (s *Secrets) SDSSecret(name string, src *corev3.ConfigSource) (func() *tlsv3.Secret, error) {
	if name == "" {
		return nil, errors.New("name: required for an SDS secret")
	}
	var errs []error
	src.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		switch fd.Name() {
		case "ads", "api_config_source", "resource_api_version", "initial_fetch_timeout":
		default:
			errs = append(errs, fmt.Errorf("%s: not implemented by wasmesh for SDS (ads and api_config_source are)", fd.Name()))
		}
		return true
	})
	if src.GetAds() == nil && src.GetApiConfigSource() == nil && len(errs) == 0 {
		errs = append(errs, errors.New("ads: required (or api_config_source)"))
	}
	if v := src.GetResourceApiVersion(); v != corev3.ApiVersion_AUTO && v != corev3.ApiVersion_V3 {
		errs = append(errs, fmt.Errorf("resource_api_version: %s is not supported (V3 is)", v))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if src.GetApiConfigSource() != nil || s.resolve != nil {
		if err := s.useSource(src); err != nil {
			return nil, err
		}
	}
	sl := s.slot(name)
	return sl.value.Load, nil
}

// useSource checks a secret's config source against the one the SDS
// secrets use, and takes it when it is the first. Called with s.mu held.
func (s *Secrets) useSource(cs *corev3.ConfigSource) error {
	if s.resolve == nil {
		return errors.New("api_config_source: needs the xDS client (dynamic_resources)")
	}
	src, err := s.resolve(cs)
	if err != nil {
		return err
	}
	key := "ads"
	if src != nil {
		key = src.key()
	} else if !s.hasADS {
		return errors.New("ads: needs dynamic_resources.ads_config")
	}
	switch s.srcKey {
	case "":
		s.srcKey, s.src = key, src
	case key:
	default:
		return errors.New("a second SDS config source is not implemented: the SDS secrets of a data plane share the sds_config of the first one")
	}
	return nil
}

// noteSources takes the config source of the first secrets seen, before
// they are subscribed, so that they are requested where they come from.
// A conflicting source is reported when the resource compiles.
func (s *Secrets) noteSources(refs []secretRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srcKey != "" || s.resolve == nil {
		return
	}
	for _, r := range refs {
		if s.useSource(r.src) == nil {
			return
		}
	}
}

// source is the separate source of the SDS secrets, nil for ADS.
func (s *Secrets) source() *Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.src
}

// DumpedSecret is one dynamic secret for /config_dump.
type DumpedSecret struct {
	Name, Version string
	Updated       time.Time
	Secret        *tlsv3.Secret
}

// Dump lists the secrets received and still wanted, sorted by name.
func (s *Secrets) Dump() []DumpedSecret {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []DumpedSecret
	for name, sl := range s.slots {
		if v := sl.value.Load(); v != nil {
			out = append(out, DumpedSecret{Name: name, Version: sl.version, Updated: sl.updated, Secret: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// sds is the client's secret store.
func (c *Client) sds() *Secrets { return c.cfg.Secrets }

// tlsRefs lists the SDS secrets of a CommonTlsContext (those with an ADS
// sds_config; the others are static and resolved by the data plane).
func tlsRefs(ctc *tlsv3.CommonTlsContext, out []secretRef) []secretRef {
	add := func(sc *tlsv3.SdsSecretConfig) {
		src := sc.GetSdsConfig()
		if (src.GetAds() == nil && src.GetApiConfigSource() == nil) || sc.GetName() == "" {
			return
		}
		d := defaultSDSFetchTimeout
		if t := src.GetInitialFetchTimeout(); t != nil {
			if d = t.AsDuration(); d == 0 {
				d = -1
			}
		}
		out = append(out, secretRef{name: sc.GetName(), timeout: d, src: src})
	}
	for _, sc := range ctc.GetTlsCertificateSdsSecretConfigs() {
		add(sc)
	}
	add(ctc.GetValidationContextSdsSecretConfig())
	add(ctc.GetCombinedValidationContext().GetValidationContextSdsSecretConfig())
	return out
}

func clusterSecretRefs(cl *clusterv3.Cluster) []secretRef {
	tc := cl.GetTransportSocket().GetTypedConfig()
	if tc.GetTypeUrl() != upstreamTLSTypeURL {
		return nil
	}
	u := &tlsv3.UpstreamTlsContext{}
	if tc.UnmarshalTo(u) != nil {
		return nil
	}
	return tlsRefs(u.GetCommonTlsContext(), nil)
}

func listenerSecretRefs(l *listenerv3.Listener) []secretRef {
	var out []secretRef
	chains := l.GetFilterChains()
	if dc := l.GetDefaultFilterChain(); dc != nil {
		chains = append(chains[:len(chains):len(chains)], dc)
	}
	for _, fc := range chains {
		tc := fc.GetTransportSocket().GetTypedConfig()
		if tc.GetTypeUrl() != downstreamTLSTypeURL {
			continue
		}
		d := &tlsv3.DownstreamTlsContext{}
		if tc.UnmarshalTo(d) != nil {
			continue
		}
		out = tlsRefs(d.GetCommonTlsContext(), out)
	}
	return out
}

// refsOf are a cluster's SDS secrets, decoded once per cluster version.
func (s *Secrets) refsOfCluster(cl *clusterv3.Cluster) []secretRef {
	if cl.GetTransportSocket() == nil {
		return nil
	}
	r, ok := s.clusterR[cl]
	if !ok {
		r = clusterSecretRefs(cl)
		s.noteSources(r)
		s.clusterR[cl] = r
	}
	return r
}

func (s *Secrets) refsOfListener(l *listenerv3.Listener) []secretRef {
	r, ok := s.listenR[l]
	if !ok {
		r = listenerSecretRefs(l)
		s.noteSources(r)
		s.listenR[l] = r
	}
	return r
}

// ready reports whether a secret arrived or its initial fetch ended
// without it (timed out or rejected).
func (s *Secrets) ready(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.slots[name]
	return sl != nil && (sl.value.Load() != nil || sl.timedOut)
}

func (s *Secrets) allReady(refs []secretRef) bool {
	for _, r := range refs {
		if !s.ready(r.name) {
			return false
		}
	}
	return true
}

// sdsNames lists the secrets the applied and warming clusters, the applied
// listeners and the held listener responses read, sorted; it starts the
// initial-fetch clock of new names and forgets the values of names no
// longer read.
func (c *Client) sdsNames() []string {
	s := c.sds()
	if src := s.source(); src != nil && c.chanOf[TypeSecret] == nil && c.rctx != nil {
		c.addChannel(TypeSecret, *src)
	}
	want := map[string]time.Duration{}
	note := func(refs []secretRef) {
		for _, r := range refs {
			if old, ok := want[r.name]; ok && (old < 0 || (r.timeout >= 0 && r.timeout < old)) {
				continue
			}
			want[r.name] = r.timeout
		}
	}
	seenC := make(map[*clusterv3.Cluster]bool)
	for _, m := range []map[string]*clusterv3.Cluster{c.clusters, c.pending} {
		for _, cl := range m {
			if refs := s.refsOfCluster(cl); refs != nil {
				seenC[cl] = true
				note(refs)
			}
		}
	}
	for cl := range s.clusterR {
		if !seenC[cl] {
			delete(s.clusterR, cl)
		}
	}
	seenL := make(map[*listenerv3.Listener]bool, len(c.listeners))
	for _, l := range c.listeners {
		seenL[l] = true
		note(s.refsOfListener(l))
	}
	for l := range s.listenR {
		if !seenL[l] {
			delete(s.listenR, l)
		}
	}
	if len(c.held) > 0 {
		for n, d := range s.held {
			note([]secretRef{{name: n, timeout: d}})
		}
	}
	changed := len(want) != len(s.wanted)
	now := time.Now()
	s.mu.Lock()
	for n, d := range want {
		if !s.wanted[n] {
			changed = true
			sl := s.slot(n)
			sl.since, sl.timeout, sl.timedOut = now, d, false
		}
	}
	for n := range s.wanted {
		if _, ok := want[n]; !ok {
			// No longer read: forgotten, fetched again if wanted again.
			sl := s.slots[n]
			sl.value.Store(nil)
			sl.since, sl.timedOut, sl.version = time.Time{}, false, ""
		}
	}
	s.mu.Unlock()
	if changed || s.names == nil {
		s.wanted = make(map[string]bool, len(want))
		names := make([]string, 0, len(want))
		for n := range want {
			s.wanted[n] = true
			names = append(names, n)
		}
		sort.Strings(names)
		s.names = names
	}
	return s.names
}

// waitForSecrets puts a new or changed cluster whose SDS secrets are not
// all there into warming; it reports whether it did. An EDS cluster
// whose assignment is missing too waits for it as well.
func (c *Client) waitForSecrets(name string, cl *clusterv3.Cluster) bool {
	s := c.sds()
	refs := s.refsOfCluster(cl)
	if len(refs) == 0 || s.allReady(refs) {
		delete(s.waiting, name)
		return false
	}
	c.setPending(name, cl)
	if isEDS(cl) && c.clas[edsName(cl)] == nil {
		c.pendingSince[name] = time.Now()
	} else {
		delete(c.pendingSince, name)
	}
	s.waiting[name] = cl
	return true
}

// waitingForSecrets reports whether a warming cluster waits for secrets.
func (c *Client) waitingForSecrets(name string) bool {
	s := c.sds()
	cl, ok := s.waiting[name]
	if !ok {
		return false
	}
	if c.pending[name] != cl {
		delete(s.waiting, name) // replaced or removed since
		return false
	}
	return true
}

// secretClustersWaiting reports whether a cluster waits for its secrets
// (CDS initialisation waits for them).
func (c *Client) secretClustersWaiting() bool {
	for name := range c.sds().waiting {
		if c.waitingForSecrets(name) {
			return true
		}
	}
	return false
}

// noteListenerSecrets records the SDS secrets the listeners of an arriving
// LDS response read, so that it is held until they arrive (listener
// warming).
func (c *Client) noteListenerSecrets(ls []*listenerv3.Listener) {
	s := c.sds()
	if len(c.held) == 0 {
		s.held = nil // the held responses it counted were handled
	}
	for _, l := range ls {
		refs := listenerSecretRefs(l)
		s.noteSources(refs)
		for _, r := range refs {
			if s.held == nil {
				s.held = map[string]time.Duration{}
			}
			if old, ok := s.held[r.name]; ok && (old < 0 || (r.timeout >= 0 && r.timeout < old)) {
				continue
			}
			s.held[r.name] = r.timeout
		}
	}
}

// secretsWaiting reports whether a listener response waits for secrets.
func (c *Client) secretsWaiting() bool {
	s := c.sds()
	if len(s.held) == 0 {
		return false
	}
	for n := range s.held {
		if !s.ready(n) {
			return true
		}
	}
	return false
}

// sdsDeadlines offers the initial-fetch deadlines of the secrets not
// received yet.
func (c *Client) sdsDeadlines(consider func(since time.Time, d time.Duration)) {
	s := c.sds()
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.wanted {
		sl := s.slots[n]
		if sl.value.Load() == nil && !sl.timedOut {
			consider(sl.since, sl.timeout)
		}
	}
}

// sdsTimeouts ends the wait for secrets whose initial fetch timed out:
// the listeners and clusters reading them start without them (their
// handshakes fail until the secret arrives), as Envoy's do.
func (c *Client) sdsTimeouts(ctx context.Context, now time.Time) {
	s := c.sds()
	var late []string
	s.mu.Lock()
	for n := range s.wanted {
		sl := s.slots[n]
		if sl.value.Load() != nil || sl.timedOut || sl.since.IsZero() || sl.timeout < 0 || now.Before(sl.since.Add(sl.timeout)) {
			continue
		}
		sl.timedOut = true
		late = append(late, n)
	}
	s.mu.Unlock()
	if len(late) == 0 {
		return
	}
	sort.Strings(late)
	for _, n := range late {
		c.log.Warn("SDS initial fetch timed out; starting without the secret", zap.String("secret", n))
	}
	if err := c.releaseSecretWaiters(ctx); err != nil {
		c.log.Warn("adding clusters that waited for secrets", zap.Error(err))
	}
}

// releaseSecretWaiters adds the warming clusters whose secrets are all
// there (EDS ones once their assignment is there too). Held listener
// responses are flushed by the stream loop.
func (c *Client) releaseSecretWaiters(ctx context.Context) error {
	s := c.sds()
	var add, raw []*clusterv3.Cluster
	for _, name := range slices.Sorted(maps.Keys(s.waiting)) {
		if !c.waitingForSecrets(name) {
			continue
		}
		cl := s.waiting[name]
		if !s.allReady(s.refsOfCluster(cl)) {
			continue
		}
		delete(s.waiting, name)
		if isEDS(cl) {
			cla := c.clas[edsName(cl)]
			if cla == nil {
				if _, ok := c.pendingSince[name]; !ok {
					c.pendingSince[name] = time.Now()
				}
				continue
			}
			add, raw = append(add, withAssignment(cl, cla)), append(raw, cl)
			continue
		}
		add, raw = append(add, cl), append(raw, cl)
	}
	return c.addClusters(ctx, add, raw)
}

// applySecrets stores the secrets of a response (SotW: version is the
// response's version_info; delta: each resource's version), NACKing the
// bad ones while their previous value keeps serving, then releases the
// clusters waiting for them.
func (c *Client) applySecrets(ctx context.Context, secs []*tlsv3.Secret, versions []string) error {
	s := c.sds()
	var errs []error
	seen := map[string]bool{}
	now := time.Now()
	v, _ := c.dp.(SecretValidator)
	for i, sec := range secs {
		name := sec.GetName()
		if !namedOnce("secret", name, seen, &errs) {
			continue
		}
		if !s.wanted[name] {
			continue // not subscribed (any more): ignored, as Envoy does
		}
		s.mu.Lock()
		sl := s.slot(name)
		s.mu.Unlock()
		if old := sl.value.Load(); old != nil && same(old, sec) {
			continue
		}
		if v != nil {
			if err := v.ValidateSecret(sec); err != nil {
				errs = append(errs, err)
				// A rejected first version ends the initial fetch, as in
				// Envoy: what waited for it starts without it.
				s.mu.Lock()
				sl.timedOut = true
				s.mu.Unlock()
				continue
			}
		}
		s.mu.Lock()
		sl.version, sl.updated = versions[i], now
		sl.value.Store(sec)
		s.mu.Unlock()
		c.log.Info("secret updated", zap.String("secret", name), zap.String("version", versions[i]))
	}
	if err := c.releaseSecretWaiters(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func newSecret() *tlsv3.Secret { return &tlsv3.Secret{} }

// applySecretsSotW decodes and applies an SDS response.
func (c *Client) applySecretsSotW(ctx context.Context, resp *discoveryv3.DiscoveryResponse) error {
	var errs []error
	var secs []*tlsv3.Secret
	var versions []string
	for _, a := range resp.GetResources() {
		sec, err := decodeWith(c.decoded(TypeSecret), a, TypeSecret, newSecret)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		secs, versions = append(secs, sec), append(versions, resp.GetVersionInfo())
	}
	errs = append(errs, c.applySecrets(ctx, secs, versions))
	return errors.Join(errs...)
}

// applySecretsDelta decodes and applies an incremental SDS response. A
// removed secret keeps its last value (the listeners and clusters reading
// it keep working), as a removed assignment keeps its hosts.
func (c *Client) applySecretsDelta(ctx context.Context, resp *discoveryv3.DeltaDiscoveryResponse) error {
	var errs []error
	var secs []*tlsv3.Secret
	var versions []string
	for _, r := range resp.GetResources() {
		sec, err := decode(r.GetResource(), TypeSecret, newSecret)
		if err != nil {
			errs = append(errs, fmt.Errorf("secret %q: %w", r.GetName(), err))
			continue
		}
		secs, versions = append(secs, sec), append(versions, r.GetVersion())
	}
	errs = append(errs, c.applySecrets(ctx, secs, versions))
	for _, n := range resp.GetRemovedResources() {
		c.log.Info("secret removed by the control plane; keeping the last version", zap.String("secret", n))
	}
	return errors.Join(errs...)
}
