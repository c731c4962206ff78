package client

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	runtimev3 "github.com/envoyproxy/go-control-plane/envoy/service/runtime/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/structpb"
)

// TypeRuntime is the Runtime type URL (RTDS).
const TypeRuntime = "type.googleapis.com/envoy.service.runtime.v3.Runtime"

// RuntimeUpdater is implemented by a DataPlane with a layered runtime:
// the client hands it each accepted RTDS layer, flattened to dotted keys
// (a nested struct {a: {b: 1}} is "a.b" = "1"); nil values empty the
// layer (removed by the control plane).
type RuntimeUpdater interface {
	UpdateRuntimeLayer(name string, values map[string]string)
}

// RTDSLayer is one rtds_layer of the bootstrap's layered_runtime.
type RTDSLayer struct {
	Name string
	// Timeout is the rtds_config initial_fetch_timeout (negative: wait
	// forever; 15 s by default).
	Timeout time.Duration
}

// RTDSFromBootstrap reads the rtds_layers of a layered_runtime into cfg
// (its RTDS layers, and RTDSSource when their rtds_config is an
// api_config_source). Every rtds_layer must name the same config source.
func RTDSFromBootstrap(lr *bootstrapv3.LayeredRuntime, cfg *Config) error {
	var errs fieldErrors
	key := ""
	for i, l := range lr.GetLayers() {
		rl := l.GetRtdsLayer()
		if rl == nil {
			continue
		}
		p := fmt.Sprintf("layered_runtime.layers[%d].rtds_layer", i)
		errs.only(p, rl, "name", "rtds_config")
		if rl.GetName() == "" {
			errs.add(p+".name", "required")
		}
		cs := rl.GetRtdsConfig()
		if cs == nil {
			errs.add(p+".rtds_config", "required")
			continue
		}
		if cfg.Resolve == nil {
			errs.add(p+".rtds_config", "needs dynamic_resources")
			continue
		}
		src, err := cfg.Resolve(cs)
		if err != nil {
			errs.add(p+".rtds_config", err.Error())
			continue
		}
		k := "ads"
		if src != nil {
			k = src.key()
		} else if !cfg.HasADS {
			errs.add(p+".rtds_config.ads", "needs dynamic_resources.ads_config")
			continue
		}
		if key != "" && k != key {
			errs.add(p+".rtds_config", "a second RTDS config source is not implemented: every rtds_layer must name the same one")
			continue
		}
		key, cfg.RTDSSource = k, src
		d := defaultRDSFetchTimeout
		if t := cs.GetInitialFetchTimeout(); t != nil {
			if d = t.AsDuration(); d == 0 {
				d = -1
			}
		}
		// The resource is named by rtds_layer.name (the layer's own name
		// is what /runtime shows).
		cfg.RTDSLayers = append(cfg.RTDSLayers, RTDSLayer{Name: rl.GetName(), Timeout: d})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// rtdsNames lists the RTDS resource names, sorted.
func (c *Client) rtdsNames() []string {
	if _, ok := c.dp.(RuntimeUpdater); !ok || len(c.cfg.RTDSLayers) == 0 {
		return nil
	}
	if c.rtdsList == nil {
		for _, l := range c.cfg.RTDSLayers {
			c.rtdsList = append(c.rtdsList, l.Name)
		}
		sort.Strings(c.rtdsList)
	}
	return c.rtdsList
}

// rtdsTimeout is the shortest initial_fetch_timeout of the layers
// (negative: wait forever).
func (c *Client) rtdsTimeout() time.Duration {
	d := time.Duration(-1)
	for _, l := range c.cfg.RTDSLayers {
		if l.Timeout >= 0 && (d < 0 || l.Timeout < d) {
			d = l.Timeout
		}
	}
	return d
}

// flattenRuntime turns a Runtime layer into dotted keys; lists and nulls
// are rejected, as Envoy rejects them.
func flattenRuntime(prefix string, v *structpb.Value, out map[string]string) error {
	switch x := v.GetKind().(type) {
	case *structpb.Value_StructValue:
		keys := make([]string, 0, len(x.StructValue.GetFields()))
		for k := range x.StructValue.GetFields() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			if err := flattenRuntime(p, x.StructValue.GetFields()[k], out); err != nil {
				return err
			}
		}
	case *structpb.Value_StringValue:
		out[prefix] = x.StringValue
	case *structpb.Value_NumberValue:
		out[prefix] = fmt.Sprint(x.NumberValue)
	case *structpb.Value_BoolValue:
		out[prefix] = fmt.Sprint(x.BoolValue)
	default:
		return fmt.Errorf("layer.%s: invalid runtime entry value (a string, number, bool or struct is required)", prefix)
	}
	return nil
}

// applyRuntimes checks and applies Runtime resources; a bad one is
// reported and leaves its layer as it was, the others are applied.
func (c *Client) applyRuntimes(rts []*runtimev3.Runtime) error {
	ru, ok := c.dp.(RuntimeUpdater)
	if !ok {
		return nil
	}
	want := nameSet(c.rtdsNames())
	var errs []error
	for _, rt := range rts {
		name := rt.GetName()
		if _, ok := want[name]; !ok {
			c.log.Info("unrequested runtime layer ignored", zap.String("name", name))
			continue
		}
		vals := map[string]string{}
		if err := flattenRuntime("", structpb.NewStructValue(rt.GetLayer()), vals); err != nil {
			errs = append(errs, fmt.Errorf("runtime %q %w", name, err))
			continue
		}
		ru.UpdateRuntimeLayer(name, vals)
	}
	return errors.Join(errs...)
}

// decodeRuntimes decodes the resources of an RTDS response.
func decodeRuntimes(resp any) ([]*runtimev3.Runtime, []string, error) {
	var rts []*runtimev3.Runtime
	var errs []error
	var removed []string
	add := func(name string, rt *runtimev3.Runtime, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("runtime %q: %w", name, err))
			return
		}
		rts = append(rts, rt)
	}
	switch r := resp.(type) {
	case *discoveryv3.DiscoveryResponse:
		for _, a := range r.GetResources() {
			rt, err := decode(a, TypeRuntime, newRuntime)
			add(strings.TrimPrefix(a.GetTypeUrl(), "type.googleapis.com/"), rt, err)
		}
	case *discoveryv3.DeltaDiscoveryResponse:
		for _, res := range r.GetResources() {
			rt, err := decode(res.GetResource(), TypeRuntime, newRuntime)
			add(res.GetName(), rt, err)
		}
		removed = r.GetRemovedResources()
	}
	return rts, removed, errors.Join(errs...)
}

func newRuntime() *runtimev3.Runtime { return &runtimev3.Runtime{} }

// handleRuntime applies an RTDS response (SotW or delta): delta removals
// empty their layer, as Envoy's do; a SotW response without a layer keeps
// it.
func (c *Client) handleRuntime(resp any) error {
	rts, removed, err := decodeRuntimes(resp)
	errs := []error{err, c.applyRuntimes(rts)}
	if ru, ok := c.dp.(RuntimeUpdater); ok {
		for _, n := range removed {
			ru.UpdateRuntimeLayer(n, nil)
		}
	}
	c.rtdsInit = true
	return errors.Join(errs...)
}
