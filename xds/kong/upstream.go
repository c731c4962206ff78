package kong

import (
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// balancing maps the upstream's algorithm onto lb_policy. Kong's
// "latency" (lowest EWMA response time) has no Envoy policy; LEAST_REQUEST
// (power of two choices over active requests) is the closest, since slow
// hosts accumulate active requests.
func (t *translator) balancing(c *clusterv3.Cluster, u *Upstream) {
	switch u.Algorithm {
	case "least-connections", "latency":
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	case "consistent-hashing":
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
			MinimumRingSize: wrapperspb.UInt64(uint64(u.Slots)),
		}}
	default:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	}
}

// hashPolicy maps hash_on and hash_fallback onto the route's hash_policy
// (Envoy uses the first policy that yields a hash, as Kong falls back).
func (t *translator) hashPolicy(r *Route, u *Upstream) []*routev3.RouteAction_HashPolicy {
	if u == nil || u.Algorithm != "consistent-hashing" {
		return nil
	}
	var out []*routev3.RouteAction_HashPolicy
	add := func(field, on, header, queryArg string) {
		var p *routev3.RouteAction_HashPolicy
		switch on {
		case "none", "":
			return
		case "ip":
			p = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
				ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}}
		case "header":
			p = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
				Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: header}}}
		case "cookie":
			// Kong sets the cookie when the client has none: Envoy does so
			// when a ttl is given (0s: a session cookie).
			p = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
				Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: u.HashOnCookie, Path: u.HashOnCookiePath, Ttl: durationpb.New(0)}}}
		case "path":
			p = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
				Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: ":path", RegexRewrite: &matcherv3.RegexMatchAndSubstitute{
					Pattern: re2(`\?.*`), Substitution: "",
				}}}}
		case "query_arg":
			p = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
				QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: queryArg}}}
		default: // consumer, uri_capture
			t.errf("upstream '%s' %s: %q is not supported by wasmesh", u.Name, field, on)
			return
		}
		out = append(out, p)
	}
	add("hash_on", u.HashOn, u.HashOnHeader, u.HashOnQueryArg)
	add("hash_fallback", u.HashFallback, u.HashFallbackHeader, u.HashFallbackQueryArg)
	return out
}

func re2(s string) *matcherv3.RegexMatcher {
	return &matcherv3.RegexMatcher{Regex: s}
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

// statusRanges turns a status list into Envoy's [start, end) ranges.
func statusRanges(codes []int) []*typev3.Int64Range {
	c := slices.Clone(codes)
	slices.Sort(c)
	c = slices.Compact(c)
	var out []*typev3.Int64Range
	for _, code := range c {
		if n := len(out); n > 0 && out[n-1].End == int64(code) {
			out[n-1].End++
			continue
		}
		out = append(out, &typev3.Int64Range{Start: int64(code), End: int64(code) + 1})
	}
	return out
}

func secs(f float64) *durationpb.Duration {
	return durationpb.New(durationFromSeconds(f))
}

// healthchecks maps Kong's active checks onto health_checks (active when
// an interval is non-zero, as in Kong) and passive checks onto
// outlier_detection (when a failure counter is non-zero).
func (t *translator) healthchecks(c *clusterv3.Cluster, u *Upstream) {
	if u.Healthchecks.Threshold > 0 {
		t.errf("upstream '%s' healthchecks.threshold: not supported by wasmesh (Envoy has no upstream-wide health threshold)", u.Name)
	}
	a := u.Healthchecks.Active
	if a.Healthy.Interval > 0 || a.Unhealthy.Interval > 0 {
		interval := a.Healthy.Interval
		if interval == 0 {
			interval = a.Unhealthy.Interval
		}
		unhealthy := max(a.Unhealthy.HTTPFailures, a.Unhealthy.TCPFailures, a.Unhealthy.Timeouts, 1)
		hc := &corev3.HealthCheck{
			Timeout:            secs(a.Timeout),
			Interval:           secs(interval),
			HealthyThreshold:   wrapperspb.UInt32(uint32(max(a.Healthy.Successes, 1))),
			UnhealthyThreshold: wrapperspb.UInt32(uint32(unhealthy)),
		}
		if a.Unhealthy.Interval > 0 {
			hc.UnhealthyInterval = secs(a.Unhealthy.Interval)
		}
		switch a.Type {
		case "tcp":
			hc.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{}}
		case "grpc", "grpcs":
			// Envoy has grpc_health_check; the data plane does not run it yet.
			t.errf("upstream '%s' healthchecks.active.type: %q is not supported by wasmesh yet", u.Name, a.Type)
			return
		default:
			h := &corev3.HealthCheck_HttpHealthCheck{Path: a.HTTPPath, ExpectedStatuses: statusRanges(a.Healthy.HTTPStatuses)}
			if a.HTTPSSNI != "" {
				h.Host = a.HTTPSSNI
			}
			for _, name := range sortedKeys(a.Headers) {
				for _, v := range a.Headers[name] {
					h.RequestHeadersToAdd = append(h.RequestHeadersToAdd, &corev3.HeaderValueOption{
						Header: &corev3.HeaderValue{Key: name, Value: v},
					})
				}
			}
			hc.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: h}
			if a.Type == "https" {
				t.errf("upstream '%s' healthchecks.active.type: \"https\" is not supported by wasmesh yet", u.Name)
			}
		}
		c.HealthChecks = []*corev3.HealthCheck{hc}
	}
	p := u.Healthchecks.Passive.Unhealthy
	if p.HTTPFailures > 0 || p.TCPFailures > 0 || p.Timeouts > 0 {
		od := &clusterv3.OutlierDetection{
			EnforcingConsecutive_5Xx:           wrapperspb.UInt32(0),
			EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(0),
			EnforcingSuccessRate:               wrapperspb.UInt32(0),
		}
		if p.HTTPFailures > 0 {
			od.Consecutive_5Xx = wrapperspb.UInt32(uint32(p.HTTPFailures))
			od.EnforcingConsecutive_5Xx = wrapperspb.UInt32(100)
		}
		if n := max(p.TCPFailures, p.Timeouts); n > 0 {
			od.ConsecutiveGatewayFailure = wrapperspb.UInt32(uint32(n))
			od.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
		}
		c.OutlierDetection = od
	}
}
