package cluster

import (
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/wasmesh/wasmesh/cluster/lb"
)

// Health flags, Envoy's Host::HealthFlag.
const (
	flagFailedActiveHC uint32 = 1 << iota
	flagFailedOutlier
	flagFailedEDS
	flagDegradedEDS
	flagDrainingEDS
	flagPendingActiveHC
	flagExcludedPendingHC // pending first check with ignore_new_hosts_until_first_hc
)

var flagNames = []struct {
	f    uint32
	name string
}{
	{flagFailedActiveHC, "/failed_active_hc"},
	{flagFailedOutlier, "/failed_outlier_check"},
	{flagFailedEDS, "/failed_eds_health"},
	{flagDegradedEDS, "/degraded_eds_health"},
	{flagPendingActiveHC, "/pending_active_hc"},
	{flagDrainingEDS, "/eds_status_draining"},
}

const (
	unhealthyFlags = flagFailedActiveHC | flagFailedOutlier | flagFailedEDS
	excludedFlags  = flagDrainingEDS | flagExcludedPendingHC
)

// Host is one upstream endpoint of a cluster. A host keeps its identity (its
// health, outlier state and counters) across endpoint updates that keep its
// address. All methods are safe for concurrent use.
type Host struct {
	cluster *Cluster
	key     string
	network string // "tcp" or "unix"
	pipeURL string // stand-in authority for a pipe
	addr    atomic.Pointer[string]
	info    atomic.Pointer[hostInfo]

	weight   atomic.Uint32
	priority atomic.Uint32
	flags    atomic.Uint32

	rqActive      atomic.Int64
	cxActive      atomic.Int64
	rqTotal       atomic.Uint64
	rqSuccess     atomic.Uint64
	rqError       atomic.Uint64
	rqTimeout     atomic.Uint64
	cxTotal       atomic.Uint64
	cxConnectFail atomic.Uint64

	outlier  *outlierHost // nil without outlier_detection
	removed  atomic.Bool
	lastUsed atomic.Int64 // unix nanos, ORIGINAL_DST cleanup
}

// hostInfo is the part of a host an endpoint update replaces as a whole.
type hostInfo struct {
	hostname   string
	hashKey    string // "" means the address
	locality   *corev3.Locality
	metadata   *corev3.Metadata
	hcAddr     string // health check address (port override), "" means addr
	hcHostname string
	hcDisabled bool
}

var _ lb.Host = (*Host)(nil)

// Address is where connections go: "ip:port", or a path for a pipe.
func (h *Host) Address() string { return *h.addr.Load() }

// Network is "tcp" or "unix".
func (h *Host) Network() string { return h.network }

// Hostname is the endpoint's hostname (or the DNS name it was resolved from).
func (h *Host) Hostname() string { return h.info.Load().hostname }

// Locality is the endpoint's locality, possibly nil.
func (h *Host) Locality() *corev3.Locality { return h.info.Load().locality }

// Metadata is the endpoint's metadata, possibly nil.
func (h *Host) Metadata() *corev3.Metadata { return h.info.Load().metadata }

// Weight is the endpoint's load_balancing_weight (1 when unset).
func (h *Host) Weight() uint32 { return h.weight.Load() }

// Priority is the priority of the endpoint's locality.
func (h *Host) Priority() uint32 { return h.priority.Load() }

// HashKey is the key RING_HASH and MAGLEV hash for this host.
func (h *Host) HashKey() string {
	if k := h.info.Load().hashKey; k != "" {
		return k
	}
	return h.Address()
}

// ActiveRequests is the number of requests in flight to the host.
func (h *Host) ActiveRequests() int64 { return h.rqActive.Load() }

// ClusterName is the name of the host's cluster.
func (h *Host) ClusterName() string { return h.cluster.name }

// Healthy reports whether the load balancer may use the host outside panic
// mode (degraded hosts are healthy but preferred last).
func (h *Host) Healthy() bool { return h.flags.Load()&(unhealthyFlags|excludedFlags) == 0 }

// Degraded reports an EDS DEGRADED host.
func (h *Host) Degraded() bool { return h.flags.Load()&flagDegradedEDS != 0 }

// Excluded reports a host the load balancer never uses, even in panic
// mode (EDS DRAINING, or waiting for its first health check with
// ignore_new_hosts_until_first_hc).
func (h *Host) Excluded() bool { return h.flags.Load()&excludedFlags != 0 }

// HealthFlags renders the flags as Envoy's /clusters does: "healthy", or
// the failed checks such as "/failed_active_hc/failed_outlier_check".
func (h *Host) HealthFlags() string {
	f := h.flags.Load()
	if f == 0 {
		return "healthy"
	}
	var b strings.Builder
	for _, n := range flagNames {
		if f&n.f != 0 {
			b.WriteString(n.name)
		}
	}
	if b.Len() == 0 {
		return "healthy"
	}
	return b.String()
}

// HostStats are a host's counters as Envoy's /clusters lists them.
type HostStats struct {
	CxActive, CxTotal, CxConnectFail                 uint64
	RqActive, RqTotal, RqSuccess, RqError, RqTimeout uint64
	// SuccessRate is the outlier detector's last success rate for the host
	// in percent, or -1 when not computed.
	SuccessRate float64
}

// Stats returns a snapshot of the host's counters.
func (h *Host) Stats() HostStats {
	s := HostStats{
		CxActive:      uint64(max(h.cxActive.Load(), 0)),
		CxTotal:       h.cxTotal.Load(),
		CxConnectFail: h.cxConnectFail.Load(),
		RqActive:      uint64(max(h.rqActive.Load(), 0)),
		RqTotal:       h.rqTotal.Load(),
		RqSuccess:     h.rqSuccess.Load(),
		RqError:       h.rqError.Load(),
		RqTimeout:     h.rqTimeout.Load(),
		SuccessRate:   -1,
	}
	if h.outlier != nil {
		s.SuccessRate = h.outlier.successRate()
	}
	return s
}

func (h *Host) setFlag(f uint32, on bool) (changed bool) {
	for {
		old := h.flags.Load()
		nv := old &^ f
		if on {
			nv = old | f
		}
		if nv == old {
			return false
		}
		if h.flags.CompareAndSwap(old, nv) {
			return true
		}
	}
}

func (h *Host) touch(now time.Time) { h.lastUsed.Store(now.UnixNano()) }

// hostSpec is a host as an endpoint list describes it, before it becomes a
// Host (or updates one).
type hostSpec struct {
	network  string
	address  string // "ip:port", a pipe path, or "name:port" before DNS
	dnsName  string // STRICT_DNS/LOGICAL_DNS: the name to resolve
	port     uint32
	hostname string
	weight   uint32
	priority uint32
	locality *corev3.Locality
	metadata *corev3.Metadata
	health   corev3.HealthStatus
	hcPort   uint32
	hcHost   string
	hcOff    bool
	hashKey  string // "envoy.lb" hash_key metadata
}

// key identifies a host within its cluster: its address for TCP (no
// string is built), "unix|" and the path for a pipe (a TCP address never
// has a "|").
func (s *hostSpec) key() string {
	if s.network == "tcp" {
		return s.address
	}
	return s.network + "|" + s.address
}

func edsFlags(st corev3.HealthStatus) uint32 {
	switch st {
	case corev3.HealthStatus_UNHEALTHY, corev3.HealthStatus_TIMEOUT:
		return flagFailedEDS
	case corev3.HealthStatus_DRAINING:
		return flagFailedEDS | flagDrainingEDS
	case corev3.HealthStatus_DEGRADED:
		return flagDegradedEDS
	}
	return 0
}
