package server

import (
	"fmt"
	"sort"
	"sync"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wasmesh/wasmesh/admin"
)

// runtimeLayers is the layered runtime: static layers from the bootstrap
// and one admin layer that /runtime_modify changes.
type runtimeLayers struct {
	mu     sync.Mutex
	layers []admin.RuntimeLayer
	admin  int // index of the admin layer, -1 if none
}

func newRuntimeLayers(lr *bootstrapv3.LayeredRuntime) *runtimeLayers {
	r := &runtimeLayers{admin: -1}
	for _, l := range lr.GetLayers() {
		switch {
		case l.GetStaticLayer() != nil:
			vals := map[string]string{}
			flatten("", structpb.NewStructValue(l.GetStaticLayer()), vals)
			r.layers = append(r.layers, admin.RuntimeLayer{Name: l.GetName(), Values: vals})
		case l.GetAdminLayer() != nil:
			r.admin = len(r.layers)
			r.layers = append(r.layers, admin.RuntimeLayer{Name: l.GetName(), Values: map[string]string{}})
		default:
			r.layers = append(r.layers, admin.RuntimeLayer{Name: l.GetName(), Values: map[string]string{}})
		}
	}
	return r
}

func flatten(prefix string, v *structpb.Value, out map[string]string) {
	if st := v.GetStructValue(); st != nil {
		keys := make([]string, 0, len(st.GetFields()))
		for k := range st.GetFields() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, st.GetFields()[k], out)
		}
		return
	}
	switch x := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		out[prefix] = x.StringValue
	case *structpb.Value_NumberValue:
		out[prefix] = fmt.Sprint(x.NumberValue)
	case *structpb.Value_BoolValue:
		out[prefix] = fmt.Sprint(x.BoolValue)
	}
}

func (r *runtimeLayers) Layers() []admin.RuntimeLayer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]admin.RuntimeLayer, len(r.layers))
	for i, l := range r.layers {
		vals := make(map[string]string, len(l.Values))
		for k, v := range l.Values {
			vals[k] = v
		}
		out[i] = admin.RuntimeLayer{Name: l.Name, Values: vals}
	}
	return out
}

func (r *runtimeLayers) MergeValues(values map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.admin < 0 {
		return fmt.Errorf("no admin layer configured in layered_runtime")
	}
	for k, v := range values {
		if v == "" {
			delete(r.layers[r.admin].Values, k)
			continue
		}
		r.layers[r.admin].Values[k] = v
	}
	return nil
}
