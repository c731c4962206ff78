package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Validator is implemented by a DataPlane that can check a cluster
// without starting it, so that an EDS cluster still waiting for its
// endpoints is NACKed at once when its configuration is bad.
type Validator interface {
	ValidateCluster(c *clusterv3.Cluster) error
}

// applyClusters hands new and changed clusters to the data plane (EDS ones
// once their endpoints are known) and removes the named ones. Bad clusters
// are reported; the others are applied.
func (c *Client) applyClusters(ctx context.Context, upserts []*clusterv3.Cluster, removes []string) error {
	var errs []error
	var add, raw []*clusterv3.Cluster
	seen := map[string]bool{}
	for _, cl := range upserts {
		name := cl.GetName()
		if !namedOnce("cluster", name, seen, &errs) {
			continue
		}
		if old, ok := c.clusters[name]; ok && same(old, cl) {
			c.dropPending(name) // a newer version was warming; back to the serving one
			continue
		}
		if p, ok := c.pending[name]; ok && same(p, cl) {
			continue
		}
		if v, ok := c.dp.(Validator); ok {
			if err := v.ValidateCluster(cl); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if isEDS(cl) {
			if err := c.edsSource(cl); err != nil {
				errs = append(errs, fmt.Errorf("cluster %q: eds_cluster_config.eds_config: %w", name, err))
				continue
			}
		}
		if c.waitForSecrets(name, cl) {
			continue
		}
		if isEDS(cl) {
			if cla := c.clas[edsName(cl)]; cla != nil {
				add, raw = append(add, withAssignment(cl, cla)), append(raw, cl)
			} else {
				c.setPending(name, cl)
				c.pendingSince[name] = time.Now()
			}
			continue
		}
		c.dropPending(name)
		add, raw = append(add, cl), append(raw, cl)
	}
	if err := c.addClusters(ctx, add, raw); err != nil {
		errs = append(errs, err)
	}
	var gone []string
	for _, name := range removes {
		_, active := c.clusters[name]
		_, warming := c.pending[name]
		if !active && !warming {
			continue
		}
		c.deleteActive(name)
		c.dropPending(name)
		gone = append(gone, name)
	}
	if a, ok := c.dp.(ClusterApplier); ok {
		if len(gone) > 0 {
			a.ApplyClusters(ctx, nil, gone)
		}
	} else {
		for _, name := range gone {
			c.dp.RemoveCluster(name)
		}
	}
	return errors.Join(errs...)
}

// setActive records a cluster the data plane serves, and deleteActive
// forgets one; with setPending and dropPending they keep the index of the
// clusters fed by each EDS name.
func (c *Client) setActive(name string, cl *clusterv3.Cluster) {
	if old, ok := c.clusters[name]; ok {
		c.unindex(c.edsActive, name, old)
	}
	c.clusters[name] = cl
	c.index(c.edsActive, name, cl)
}

func (c *Client) deleteActive(name string) {
	if old, ok := c.clusters[name]; ok {
		c.unindex(c.edsActive, name, old)
		delete(c.clusters, name)
	}
}

func (c *Client) setPending(name string, cl *clusterv3.Cluster) {
	if old, ok := c.pending[name]; ok {
		c.unindex(c.edsWarming, name, old)
	}
	c.pending[name] = cl
	c.index(c.edsWarming, name, cl)
}

func (c *Client) dropPending(name string) {
	if old, ok := c.pending[name]; ok {
		c.unindex(c.edsWarming, name, old)
		delete(c.pending, name)
	}
	delete(c.pendingSince, name)
}

func (c *Client) index(idx map[string][]string, name string, cl *clusterv3.Cluster) {
	if !isEDS(cl) {
		return
	}
	svc := edsName(cl)
	if len(c.edsActive[svc])+len(c.edsWarming[svc]) == 0 {
		c.edsList = nil // a new EDS name
	}
	idx[svc] = append(idx[svc], name)
}

func (c *Client) unindex(idx map[string][]string, name string, cl *clusterv3.Cluster) {
	if !isEDS(cl) {
		return
	}
	svc := edsName(cl)
	names := idx[svc]
	if i := slices.Index(names, name); i >= 0 {
		names = slices.Delete(names, i, i+1)
	}
	if len(names) > 0 {
		idx[svc] = names
		return
	}
	delete(idx, svc)
	if len(c.edsActive[svc])+len(c.edsWarming[svc]) == 0 {
		c.edsList = nil // an EDS name no longer needed
	}
}

// nameSet is the set of names, for differences between name lists.
func nameSet(names []string) map[string]struct{} {
	set := make(map[string]struct{}, len(names))
	for _, n := range names {
		set[n] = struct{}{}
	}
	return set
}

// usersOf lists the clusters of an index fed by an EDS name, sorted.
func usersOf(idx map[string][]string, svc string) []string {
	return slices.Sorted(slices.Values(idx[svc]))
}

// addClusters adds clusters (each may warm); raw[i] is the resource as
// received for add[i].
func (c *Client) addClusters(ctx context.Context, add, raw []*clusterv3.Cluster) error {
	if len(add) == 0 {
		return nil
	}
	var errs []error
	if a, ok := c.dp.(ClusterApplier); ok {
		// They warm concurrently: one deadline bounds each one's warming.
		actx, cancel := context.WithTimeout(ctx, c.cfg.WarmTimeout)
		errs = a.ApplyClusters(actx, add, nil)
		cancel()
	} else {
		errs = make([]error, len(add))
		var wg sync.WaitGroup
		for i, cl := range add {
			wg.Add(1)
			go func() {
				defer wg.Done()
				actx, cancel := context.WithTimeout(ctx, c.cfg.WarmTimeout)
				defer cancel()
				errs[i] = c.dp.AddCluster(actx, cl)
			}()
		}
		wg.Wait()
	}
	for i, cl := range raw {
		name := cl.GetName()
		c.dropPending(name)
		if errs[i] != nil {
			continue
		}
		c.setActive(name, cl)
		c.log.Debug("cluster applied", zap.String("cluster", name))
	}
	return errors.Join(errs...)
}

// applyEndpoints stores assignments and hands them to their clusters;
// warming clusters waiting for them start.
func (c *Client) applyEndpoints(ctx context.Context, clas []*endpointv3.ClusterLoadAssignment) error {
	var errs []error
	var add, raw []*clusterv3.Cluster
	for _, cla := range clas {
		svc := cla.GetClusterName()
		if svc == "" {
			errs = append(errs, errors.New("cluster_load_assignment: cluster_name: required"))
			continue
		}
		prev := c.clas[svc]
		if prev != nil && same(prev, cla) {
			continue
		}
		ok := true
		for _, name := range usersOf(c.edsActive, svc) {
			if err := c.dp.UpdateEndpoints(name, cla); err != nil {
				errs = append(errs, fmt.Errorf("cluster_load_assignment %q: %w", svc, err))
				ok = false
			}
		}
		if !ok {
			continue
		}
		c.clas[svc] = cla
		for _, name := range usersOf(c.edsWarming, svc) {
			if c.waitingForSecrets(name) {
				delete(c.pendingSince, name) // now it waits for its secrets only
				continue
			}
			cl := c.pending[name]
			add, raw = append(add, withAssignment(cl, cla)), append(raw, cl)
		}
	}
	if err := c.addClusters(ctx, add, raw); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// applyListeners swaps in the whole set of dynamic listeners, or nothing.
func (c *Client) applyListeners(ctx context.Context, next map[string]*listenerv3.Listener) error {
	if len(next) == len(c.listeners) {
		unchanged := true
		for name, l := range next {
			if old, ok := c.listeners[name]; !ok || !same(old, l) {
				unchanged = false
				break
			}
		}
		if unchanged {
			return nil
		}
	}
	ls := make([]*listenerv3.Listener, 0, len(next))
	for _, name := range slices.Sorted(maps.Keys(next)) {
		ls = append(ls, next[name])
	}
	if err := c.dp.UpdateListeners(ctx, ls); err != nil {
		return err
	}
	c.listeners = next
	c.listenersApplied()
	return nil
}

// decode unpacks a resource of the expected type.
func decode[T proto.Message](a *anypb.Any, typeURL string, newT func() T) (T, error) {
	var zero T
	if a.GetTypeUrl() != typeURL {
		return zero, fmt.Errorf("resource of type %q in a %q response", a.GetTypeUrl(), typeURL)
	}
	m := newT()
	if err := a.UnmarshalTo(m); err != nil {
		return zero, fmt.Errorf("%s: %w", typeURL, err)
	}
	return m, nil
}

func newCluster() *clusterv3.Cluster            { return &clusterv3.Cluster{} }
func newCLA() *endpointv3.ClusterLoadAssignment { return &endpointv3.ClusterLoadAssignment{} }
func newListener() *listenerv3.Listener         { return &listenerv3.Listener{} }

// same reports whether two resources are equal; a resource reused from the
// previous response (identical bytes) is the same pointer.
// namedOnce checks the name of a resource in one response: set, and not
// seen before in it. It records the name in seen, or appends why the
// resource is refused to errs and reports false.
func namedOnce(kind, name string, seen map[string]bool, errs *[]error) bool {
	switch {
	case name == "":
		*errs = append(*errs, fmt.Errorf("%s: name: required", kind))
		return false
	case seen[name]:
		*errs = append(*errs, fmt.Errorf("%s %q: name: duplicate in one response", kind, name))
		return false
	}
	seen[name] = true
	return true
}

func same[T proto.Message](a, b T) bool {
	return any(a) == any(b) || proto.Equal(a, b)
}

// decodeCache reuses the decoded resources of the previous SotW response
// of a type when their bytes did not change, so that an unchanged resource
// costs neither an unmarshal nor a deep comparison.
type decodeCache struct {
	prev, next map[string]proto.Message
}

func (d *decodeCache) get(a *anypb.Any) (proto.Message, bool) {
	m, ok := d.prev[a.GetTypeUrl()+"\x00"+string(a.GetValue())]
	return m, ok
}

func (d *decodeCache) put(a *anypb.Any, m proto.Message) {
	if d.next == nil {
		d.next = map[string]proto.Message{}
	}
	d.next[a.GetTypeUrl()+"\x00"+string(a.GetValue())] = m
}

// commit makes this response's resources the ones to reuse.
func (d *decodeCache) commit() { d.prev, d.next = d.next, nil }

// decodeWith is decode through a cache.
func decodeWith[T proto.Message](d *decodeCache, a *anypb.Any, typeURL string, newT func() T) (T, error) {
	if m, ok := d.get(a); ok {
		if t, ok := m.(T); ok {
			d.put(a, m)
			return t, nil
		}
	}
	t, err := decode(a, typeURL, newT)
	if err == nil {
		d.put(a, t)
	}
	return t, err
}

// edsSource checks an EDS cluster's eds_config and sets up the stream of
// a separate source on first use. Every EDS cluster of a data plane takes
// its endpoints from one config source (the first one seen).
func (c *Client) edsSource(cl *clusterv3.Cluster) error {
	cs := cl.GetEdsClusterConfig().GetEdsConfig()
	if cs == nil || c.cfg.Resolve == nil {
		return nil // fed over ADS, if any
	}
	src, err := c.cfg.Resolve(cs)
	if err != nil {
		return err
	}
	key := "ads"
	if src != nil {
		key = src.key()
	} else if c.ads == nil {
		return errors.New("ads: needs dynamic_resources.ads_config")
	}
	switch c.edsKey {
	case "":
		c.edsKey = key
		if src != nil && c.rctx != nil {
			c.addChannel(TypeEndpoint, *src)
		}
	case key:
	default:
		return errors.New("a second EDS config source is not implemented: the EDS clusters of a data plane share the eds_config of the first one")
	}
	return nil
}
