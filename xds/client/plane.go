package client

import (
	"context"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// DataPlane receives what the client accepted. The server implements it
// over its cluster manager and listener swap.
type DataPlane interface {
	// AddCluster adds or replaces a dynamic cluster, returning once it
	// serves (or with ctx's error while warming). Errors name the field.
	AddCluster(ctx context.Context, c *clusterv3.Cluster) error
	// RemoveCluster drops a dynamic cluster.
	RemoveCluster(name string) bool
	// UpdateEndpoints replaces the hosts of an EDS cluster.
	UpdateEndpoints(cluster string, cla *endpointv3.ClusterLoadAssignment) error
	// UpdateListeners replaces the whole set of dynamic listeners; nothing
	// changes when one of them fails to compile.
	UpdateListeners(ctx context.Context, ls []*listenerv3.Listener) error
}

// ClusterApplier is implemented by a DataPlane that applies the clusters
// of a response as one change, so that n clusters cost O(n) rather than n
// separate updates of the whole cluster set. The client then calls it
// instead of AddCluster and RemoveCluster.
type ClusterApplier interface {
	// ApplyClusters removes the named dynamic clusters, then adds or
	// replaces those of adds, each serving as soon as it warmed; it
	// returns once all did (or ctx ended), with the error of each cluster
	// of adds, in order.
	ApplyClusters(ctx context.Context, adds []*clusterv3.Cluster, removes []string) []error
}

// Counter is a monotonically increasing stat.
type Counter interface{ Inc() }

// Gauge is a stat that is set.
type Gauge interface{ Set(uint64) }

// Stats creates the client's stats (control_plane.connected_state,
// cluster_manager.cds.*, listener_manager.lds.*).
type Stats interface {
	Counter(name string) Counter
	Gauge(name string) Gauge
}

type nopStats struct{}

type nopStat struct{}

func (nopStat) Inc()       {}
func (nopStat) Set(uint64) {}

func (nopStats) Counter(string) Counter { return nopStat{} }
func (nopStats) Gauge(string) Gauge     { return nopStat{} }
