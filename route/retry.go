package route

import (
	"fmt"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/wasmesh/wasmesh/header"
)

// RetryOn is a set of retry conditions (retry_on, x-envoy-retry-on,
// x-envoy-retry-grpc-on).
type RetryOn uint32

// Retry conditions, named as in retry_on.
const (
	Retry5xx RetryOn = 1 << iota
	RetryGatewayError
	RetryConnectFailure
	RetryEnvoyRateLimited
	RetryRetriable4xx
	RetryRefusedStream
	RetryRetriableStatusCodes
	RetryRetriableHeaders
	RetryReset
	RetryResetBeforeRequest
	RetryHTTP3PostConnectFailure
	RetryGrpcCancelled
	RetryGrpcDeadlineExceeded
	RetryGrpcResourceExhausted
	RetryGrpcUnavailable
	RetryGrpcInternal
)

var retryOnNames = []struct {
	name string
	flag RetryOn
}{
	{"5xx", Retry5xx},
	{"gateway-error", RetryGatewayError},
	{"connect-failure", RetryConnectFailure},
	{"envoy-ratelimited", RetryEnvoyRateLimited},
	{"retriable-4xx", RetryRetriable4xx},
	{"refused-stream", RetryRefusedStream},
	{"retriable-status-codes", RetryRetriableStatusCodes},
	{"retriable-headers", RetryRetriableHeaders},
	{"reset", RetryReset},
	{"reset-before-request", RetryResetBeforeRequest},
	{"http3-post-connect-failure", RetryHTTP3PostConnectFailure},
	{"cancelled", RetryGrpcCancelled},
	{"deadline-exceeded", RetryGrpcDeadlineExceeded},
	{"resource-exhausted", RetryGrpcResourceExhausted},
	{"unavailable", RetryGrpcUnavailable},
	{"internal", RetryGrpcInternal},
}

// RetryGrpcAny is every gRPC status condition.
const RetryGrpcAny = RetryGrpcCancelled | RetryGrpcDeadlineExceeded | RetryGrpcResourceExhausted | RetryGrpcUnavailable | RetryGrpcInternal

// ParseRetryOn parses a comma-separated retry_on list. Empty items are
// skipped and items are trimmed; unknown lists the names it did not know
// (Envoy ignores them in x-envoy-retry-on headers; Compile rejects them in
// configuration).
func ParseRetryOn(s string) (on RetryOn, unknown []string) {
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		found := false
		for _, n := range retryOnNames {
			if n.name == item {
				on |= n.flag
				found = true
				break
			}
		}
		if !found {
			unknown = append(unknown, item)
		}
	}
	return on, unknown
}

func (r RetryOn) String() string {
	var names []string
	for _, n := range retryOnNames {
		if r&n.flag != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// RetryPolicy is a compiled envoy.config.route.v3.RetryPolicy.
type RetryPolicy struct {
	On RetryOn
	// NumRetries defaults to 1.
	NumRetries uint32
	// PerTryTimeout and PerTryIdleTimeout are 0 when unset (none).
	PerTryTimeout     time.Duration
	PerTryIdleTimeout time.Duration
	// RetriableStatusCodes apply with RetryRetriableStatusCodes.
	RetriableStatusCodes []uint32
	// BackOffBase and BackOffMax are 0 when retry_back_off is unset: the
	// router's defaults apply (25 ms, ten times the base).
	BackOffBase time.Duration
	BackOffMax  time.Duration
	// RetriableHeaders are response header matchers for
	// RetryRetriableHeaders; any one matching retries.
	RetriableHeaders []HeaderMatcher
	// RetriableRequestHeaders, when not empty, allow retries only for
	// requests matching one of them.
	RetriableRequestHeaders []HeaderMatcher
	// OtherHosts is set by the envoy.retry_host_predicates.previous_hosts
	// predicate: a retry avoids hosts already tried.
	OtherHosts bool
	// HostSelectionMaxAttempts bounds host re-selection for OtherHosts;
	// 1 when unset.
	HostSelectionMaxAttempts int64
}

const previousHostsPredicate = "envoy.retry_host_predicates.previous_hosts"
const previousHostsType = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"

func (c *errs) retryPolicy(path string, p *routev3.RetryPolicy) *RetryPolicy {
	if p == nil {
		return nil
	}
	c.only(path, p, "retry_on", "num_retries", "per_try_timeout", "per_try_idle_timeout",
		"retry_host_predicate", "host_selection_retry_max_attempts", "retriable_status_codes",
		"retry_back_off", "retriable_headers", "retriable_request_headers", "refresh_cluster_on_retry")
	r := &RetryPolicy{NumRetries: 1, HostSelectionMaxAttempts: 1}
	on, unknown := ParseRetryOn(p.GetRetryOn())
	if len(unknown) > 0 {
		c.errf(at(path, "retry_on"), "unknown retry condition(s) %q", unknown)
	}
	r.On = on
	if p.GetNumRetries() != nil {
		r.NumRetries = p.GetNumRetries().GetValue()
	}
	r.PerTryTimeout = durationMs(p.GetPerTryTimeout())
	r.PerTryIdleTimeout = durationMs(p.GetPerTryIdleTimeout())
	r.RetriableStatusCodes = append([]uint32(nil), p.GetRetriableStatusCodes()...)
	if b := p.GetRetryBackOff(); b != nil {
		bp := at(path, "retry_back_off")
		c.only(bp, b, "base_interval", "max_interval")
		r.BackOffBase = max(durationMs(b.GetBaseInterval()), time.Millisecond)
		if b.GetMaxInterval() != nil {
			r.BackOffMax = max(durationMs(b.GetMaxInterval()), time.Millisecond)
			if r.BackOffMax < r.BackOffBase {
				c.errf(at(bp, "max_interval"), "must be greater than or equal to the base_interval")
			}
		} else {
			r.BackOffMax = 10 * r.BackOffBase
		}
	}
	r.RetriableHeaders = c.headerMatchers(path, "retriable_headers", p.GetRetriableHeaders())
	r.RetriableRequestHeaders = c.headerMatchers(path, "retriable_request_headers", p.GetRetriableRequestHeaders())
	for i, hp := range p.GetRetryHostPredicate() {
		pp := idx(path, "retry_host_predicate", i)
		c.only(pp, hp, "name", "typed_config")
		tu := hp.GetTypedConfig().GetTypeUrl()
		if hp.GetName() == previousHostsPredicate || tu == previousHostsType {
			r.OtherHosts = true
			continue
		}
		what := fmt.Sprintf("%q", hp.GetName())
		if tu != "" {
			what += " (" + tu + ")"
		}
		c.add(pp, fmt.Errorf("retry host predicate %s is %w", what, ErrUnsupported))
	}
	if n := p.GetHostSelectionRetryMaxAttempts(); n > 0 {
		r.HostSelectionMaxAttempts = n
	}
	return r
}

// AllowsRequest reports whether retriable_request_headers allow retrying
// this request.
func (r *RetryPolicy) AllowsRequest(h *header.Map) bool {
	if len(r.RetriableRequestHeaders) == 0 {
		return true
	}
	for i := range r.RetriableRequestHeaders {
		if r.RetriableRequestHeaders[i].Matches(h) {
			return true
		}
	}
	return false
}

// RetryOnResponse reports whether a response with this status and these
// headers should be retried under conditions on (the policy's, possibly
// widened by x-envoy-retry-on), as Envoy's RetryStateImpl.
func (r *RetryPolicy) RetryOnResponse(on RetryOn, status int, resp *header.Map) bool {
	if _, limited := resp.Get("x-envoy-ratelimited"); limited {
		return on&RetryEnvoyRateLimited != 0
	}
	if on&Retry5xx != 0 && status >= 500 && status <= 599 {
		return true
	}
	if on&RetryGatewayError != 0 && status >= 502 && status <= 504 {
		return true
	}
	if on&RetryRetriable4xx != 0 && status == 409 {
		return true
	}
	if on&RetryRetriableStatusCodes != 0 {
		for _, c := range r.RetriableStatusCodes {
			if int(c) == status {
				return true
			}
		}
	}
	if on&RetryRetriableHeaders != 0 {
		for i := range r.RetriableHeaders {
			if r.RetriableHeaders[i].Matches(resp) {
				return true
			}
		}
	}
	if on&RetryGrpcAny != 0 {
		if v, ok := resp.Get("grpc-status"); ok {
			var g RetryOn
			switch v {
			case "1":
				g = RetryGrpcCancelled
			case "4":
				g = RetryGrpcDeadlineExceeded
			case "8":
				g = RetryGrpcResourceExhausted
			case "14":
				g = RetryGrpcUnavailable
			case "13":
				g = RetryGrpcInternal
			}
			if on&g != 0 {
				return true
			}
		}
	}
	return false
}

// ResetReason is why an upstream stream ended without a response.
type ResetReason uint8

// Reset reasons the retry decision distinguishes.
const (
	ResetOther ResetReason = iota
	ResetConnectionFailure
	ResetRefusedStream
	ResetOverflow
)

// RetryOnReset reports whether an upstream reset should be retried, as
// Envoy's RetryStateImpl::wouldRetryFromReset.
func RetryOnReset(on RetryOn, reason ResetReason) bool {
	switch {
	case reason == ResetOverflow:
		return false
	case on&(RetryReset|Retry5xx|RetryGatewayError) != 0:
		return true
	case on&RetryRefusedStream != 0 && reason == ResetRefusedStream:
		return true
	case on&RetryConnectFailure != 0 && reason == ResetConnectionFailure:
		return true
	}
	return false
}
