package kong

import (
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Bootstrap wraps the resources as a static Envoy bootstrap (listeners,
// clusters and secrets in static_resources), which wasmesh or Envoy runs
// as it is. The load assignments are already inline in the clusters.
func (r *Resources) Bootstrap(node *corev3.Node) *bootstrapv3.Bootstrap {
	return &bootstrapv3.Bootstrap{
		Node: node,
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: r.Listeners,
			Clusters:  r.Clusters,
			Secrets:   r.Secrets,
		},
	}
}
