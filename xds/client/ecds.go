package client

import (
	"context"
	"errors"
	"sort"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"go.uber.org/zap"
)

// TypeExtensionConfig is the TypedExtensionConfig type URL (ECDS).
const TypeExtensionConfig = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"

// ExtensionConfigUpdater is implemented by a DataPlane that serves HTTP
// filter configurations discovered over ECDS (config_discovery) to the
// connection managers naming them. Without it the client does not
// subscribe to ECDS.
type ExtensionConfigUpdater interface {
	// UpdateExtensionConfigs validates and applies extension
	// configurations (versions[i] is the version of tcs[i]), returning each
	// one's error, in order; a rejected one leaves the previous filter
	// configuration serving.
	UpdateExtensionConfigs(ctx context.Context, tcs []*corev3.TypedExtensionConfig, versions []string) []error
	// ForgetExtensionConfigs drops configurations no listener names any
	// more.
	ForgetExtensionConfigs(names []string)
}

// ecdsNeed is a listener's need of an extension configuration: its
// initial_fetch_timeout (negative: forever), and whether the listener
// warms until it arrives (not with apply_default_config_without_warming).
type ecdsNeed struct {
	timeout time.Duration
	warm    bool
}

func mergeNeed(out map[string]ecdsNeed, name string, n ecdsNeed) {
	if old, ok := out[name]; ok {
		n.warm = n.warm || old.warm
		if old.timeout < 0 || (n.timeout >= 0 && n.timeout > old.timeout) {
			n.timeout = old.timeout
		}
	}
	out[name] = n
}

// ecdsState is the ECDS side of the client, as routes' for RDS.
type ecdsState struct {
	configs  map[string]*corev3.TypedExtensionConfig
	answered map[string]bool
	active   map[string]ecdsNeed
	held     map[string]ecdsNeed
	since    map[string]time.Time
	// rejected is the last rejected configuration of each name: a control
	// plane resending it after the NACK (as go-control-plane's snapshot
	// cache does in SotW) gets the same NACK without a recompilation (a
	// Wasm module load).
	rejected map[string]rejectedConfig
}

type rejectedConfig struct {
	tc  *corev3.TypedExtensionConfig
	err error
}

func (c *Client) ecdsState() *ecdsState {
	if c.ecds == nil {
		c.ecds = &ecdsState{configs: map[string]*corev3.TypedExtensionConfig{}, answered: map[string]bool{}, since: map[string]time.Time{}}
	}
	return c.ecds
}

// ecdsEnabled reports whether the data plane takes ECDS.
func (c *Client) ecdsEnabled() bool {
	_, ok := c.dp.(ExtensionConfigUpdater)
	return ok
}

// listenerFilterConfigs adds to out the extension configurations the
// listener's connection managers' http_filters discover.
func listenerFilterConfigs(l *listenerv3.Listener, out map[string]ecdsNeed) {
	for _, filters := range listenerHCMs(l) {
		for _, hf := range filters {
			cd := hf.GetConfigDiscovery()
			if cd == nil || hf.GetName() == "" {
				continue
			}
			n := ecdsNeed{timeout: defaultRDSFetchTimeout, warm: !(cd.GetApplyDefaultConfigWithoutWarming() && cd.GetDefaultConfig() != nil)}
			if t := cd.GetConfigSource().GetInitialFetchTimeout(); t != nil {
				if n.timeout = t.AsDuration(); n.timeout == 0 {
					n.timeout = -1
				}
			}
			mergeNeed(out, hf.GetName(), n)
		}
	}
}

// ecdsNames lists the extension configurations the applied listeners and
// the waiting listener responses need, sorted.
func (c *Client) ecdsNames() []string {
	if !c.ecdsEnabled() {
		return nil
	}
	c.typeChannel(TypeExtensionConfig)
	e := c.ecdsState()
	var names []string
	for n := range e.active {
		names = append(names, n)
	}
	for n := range e.held {
		if _, ok := e.active[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// noteListenerFilterConfigs records the extension configurations of an
// arriving LDS response.
func (c *Client) noteListenerFilterConfigs(ls []*listenerv3.Listener) {
	if !c.ecdsEnabled() {
		return
	}
	e := c.ecdsState()
	want := map[string]ecdsNeed{}
	for _, l := range ls {
		listenerFilterConfigs(l, want)
	}
	if e.held == nil {
		e.held = map[string]ecdsNeed{}
	}
	now := time.Now()
	for n, need := range want {
		if _, ok := e.configs[n]; !ok && !e.answered[n] {
			if _, waiting := e.since[n]; !waiting {
				e.since[n] = now
			}
		}
		mergeNeed(e.held, n, need)
	}
}

// ecdsWaiting reports whether a listener response waits for an extension
// configuration it warms on.
func (c *Client) ecdsWaiting() bool {
	if c.ecds == nil {
		return false
	}
	for n, need := range c.ecds.held {
		if need.warm && !c.ecds.answered[n] {
			return true
		}
	}
	return false
}

func (c *Client) ecdsListenersApplied() {
	if !c.ecdsEnabled() {
		return
	}
	active := map[string]ecdsNeed{}
	for _, l := range c.cfg.StaticListeners {
		listenerFilterConfigs(l, active)
	}
	for _, l := range c.listeners {
		listenerFilterConfigs(l, active)
	}
	e := c.ecdsState()
	e.active = active
	// Whether a configuration compiles depends on the listeners (their
	// type_urls) and routes (per-route configs): try again after a change.
	e.rejected = nil
}

func (c *Client) ecdsDeadlines(consider func(since time.Time, d time.Duration)) {
	if c.ecds == nil {
		return
	}
	for n, need := range c.ecds.held {
		if need.warm && !c.ecds.answered[n] {
			consider(c.ecds.since[n], need.timeout)
		}
	}
}

// ecdsTimeouts ends the wait for extension configurations whose initial
// fetch timed out: the listener is applied with the filter's
// default_config (or rejected without one).
func (c *Client) ecdsTimeouts(now time.Time) {
	if c.ecds == nil {
		return
	}
	e := c.ecds
	for n, need := range e.held {
		since, ok := e.since[n]
		if e.answered[n] || !ok || need.timeout < 0 || now.Before(since.Add(need.timeout)) {
			continue
		}
		c.log.Warn("ECDS initial fetch timed out; the filter starts with its default_config", zap.String("extension_config", n))
		e.answered[n] = true
		delete(e.since, n)
	}
}

func (c *Client) ecdsForget(name string) {
	if c.ecds == nil {
		return
	}
	delete(c.ecds.configs, name)
	delete(c.ecds.rejected, name)
	delete(c.ecds.answered, name)
	delete(c.ecds.since, name)
	if u, ok := c.dp.(ExtensionConfigUpdater); ok {
		u.ForgetExtensionConfigs([]string{name})
	}
}

// ecdsRemoved handles a delta removal: the filters keep their last
// configuration (as RDS removals, see doc.go); a listener waiting for it
// stops waiting.
func (c *Client) ecdsRemoved(names []string) {
	if c.ecds == nil {
		return
	}
	for _, n := range names {
		if _, ok := c.ecds.held[n]; ok {
			c.ecds.answered[n] = true
			delete(c.ecds.since, n)
		}
		c.log.Info("extension configuration removed by the control plane; keeping the last version", zap.String("extension_config", n))
	}
}

// applyExtensionConfigs hands new and changed extension configurations to
// the data plane; the bad ones are reported, the others applied. Each one
// that arrived ends its name's initial fetch, accepted or not.
func (c *Client) applyExtensionConfigs(ctx context.Context, tcs []*corev3.TypedExtensionConfig, versions []string) error {
	u, ok := c.dp.(ExtensionConfigUpdater)
	if !ok {
		return nil
	}
	e := c.ecdsState()
	watched := nameSet(c.subs[TypeExtensionConfig].names)
	var errs []error
	var up []*corev3.TypedExtensionConfig
	var upVersions []string
	seen := map[string]bool{}
	for i, tc := range tcs {
		name := tc.GetName()
		if !namedOnce("extension_config", name, seen, &errs) {
			continue
		}
		if _, ok := watched[name]; !ok {
			continue
		}
		e.answered[name] = true
		delete(e.since, name)
		if old, ok := e.configs[name]; ok && same(old, tc) {
			continue
		}
		if r, ok := e.rejected[name]; ok && same(r.tc, tc) {
			errs = append(errs, r.err)
			continue
		}
		up, upVersions = append(up, tc), append(upVersions, versions[i])
	}
	if len(up) == 0 {
		return errors.Join(errs...)
	}
	for i, err := range u.UpdateExtensionConfigs(ctx, up, upVersions) {
		if err != nil {
			errs = append(errs, err)
			if e.rejected == nil {
				e.rejected = map[string]rejectedConfig{}
			}
			e.rejected[up[i].GetName()] = rejectedConfig{up[i], err}
			continue
		}
		delete(e.rejected, up[i].GetName())
		e.configs[up[i].GetName()] = up[i]
		c.log.Debug("extension configuration applied", zap.String("extension_config", up[i].GetName()))
	}
	return errors.Join(errs...)
}

func newExtensionConfig() *corev3.TypedExtensionConfig { return &corev3.TypedExtensionConfig{} }
