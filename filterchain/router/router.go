package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/header"
	"github.com/wasmesh/wasmesh/internal/reqtarget"
	"github.com/wasmesh/wasmesh/route"
)

// TypeURL is the router's typed_config type.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

// EnvKeyClusters is the filterchain.Env.Values key of the Clusters the
// router sends requests through.
const EnvKeyClusters = "router.clusters"

// LBContext is what load balancing needs from the request.
type LBContext struct {
	// Hash is the route's hash policy result, for ring hash and maglev.
	Hash    uint64
	HasHash bool
	// Downstream is the client's address; OriginalDst the original
	// destination of a redirected connection (ORIGINAL_DST clusters).
	Downstream  netip.AddrPort
	OriginalDst netip.AddrPort
	// DownstreamHTTP2 hints use_downstream_protocol_config.
	DownstreamHTTP2 bool
	// AutoHostRewrite asks the cluster to set the request's Host to the
	// picked host's hostname.
	AutoHostRewrite bool
	// Fields are the request's headers, as the filters left them: the
	// request the router passes has no http.Header of its own (see
	// cluster.LoadBalancerContext.Fields).
	Fields *header.Map
	// Response, when set, may receive the response's head (":status"
	// first, lower-case names, in order); the response then has a nil
	// Header (see cluster.LoadBalancerContext.Response).
	Response *header.Map
}

// Clusters is what the router needs from the cluster manager.
type Clusters interface {
	// Has reports whether a cluster exists.
	Has(name string) bool
	// RoundTrip picks a host of the cluster and sends req to it. req.URL
	// carries the path and query; the cluster sets scheme and host; the
	// headers are lb.Fields (req.Header is nil). The returned host is
	// "ip:port". Errors should be (or wrap) *UpstreamError.
	RoundTrip(cluster string, req *http.Request, lb LBContext) (resp *http.Response, host string, err error)
}

// FailureKind classifies an upstream failure.
type FailureKind int

// Failure kinds, each with its Envoy response flag.
const (
	FailureConnect           FailureKind = iota // UF
	FailureNoHealthyUpstream                    // UH
	FailureOverflow                             // UO
	FailureReset                                // UR
	FailureProtocol                             // UPE
)

// UpstreamError is a classified upstream failure.
type UpstreamError struct {
	Kind FailureKind
	Err  error
}

func (e *UpstreamError) Error() string { return e.Err.Error() }
func (e *UpstreamError) Unwrap() error { return e.Err }

// Register adds the router's factory to r.
func Register(r *filterchain.Registry) { r.Add(factory{}) }

type factory struct{}

func (factory) TypeURLs() []string { return []string{TypeURL} }

func (factory) Compile(_ context.Context, name string, raw *anypb.Any, env *filterchain.Env) (filterchain.Config, error) {
	cfg := &routerv3.Router{}
	if err := raw.UnmarshalTo(cfg); err != nil {
		return nil, fmt.Errorf("decode %s: %w", TypeURL, err)
	}
	if err := cfg.ValidateAll(); err != nil {
		return nil, err
	}
	switch {
	case len(cfg.GetUpstreamLog()) > 0:
		return nil, errors.New("upstream_log: not supported")
	case len(cfg.GetUpstreamHttpFilters()) > 0:
		return nil, errors.New("upstream_http_filters: not supported")
	}
	clusters, _ := env.Values[EnvKeyClusters].(Clusters)
	return &Config{
		clusters:              clusters,
		suppressEnvoy:         cfg.GetSuppressEnvoyHeaders(),
		respectTimeoutHeaders: !cfg.GetRespectExpectedRqTimeout(),
	}, nil
}

// Config is a compiled router.
type Config struct {
	clusters              Clusters
	suppressEnvoy         bool
	respectTimeoutHeaders bool
}

var (
	_ filterchain.Config   = (*Config)(nil)
	_ filterchain.Terminal = (*Config)(nil)
)

// IsTerminal marks the router as the chain's end.
func (*Config) IsTerminal() bool { return true }

// NewFilter is never used for the router: the connection manager calls
// Forward instead. It returns a pass-through so a plan stays uniform.
func (*Config) NewFilter(*filterchain.Stream) filterchain.Filter { return filterchain.PassThrough{} }

// Request is one downstream request as the router forwards it.
type Request struct {
	Stream *filterchain.Stream
	Match  *route.Match
	// Body is the request body: BufferedBody when it was buffered (and can
	// be replayed for retries), else Reader (nil: no body).
	BufferedBody []byte
	Buffered     bool
	Reader       io.Reader
	// ContentLength is the body size when known, else -1.
	ContentLength int64
	// Formatter expands %COMMAND% in configured header values.
	Formatter route.Formatter
	// Random is the stream's random value.
	Random uint64
	// ResponseHeaders, when set, is where the upstream response's head
	// may go instead of its http.Header (LBContext.Response).
	ResponseHeaders *header.Map
}

// Forward sends the request upstream, with retries, and returns the
// response, or the local reply to send instead.
func (c *Config) Forward(r *Request) (*http.Response, *filterchain.LocalReply) {
	s, m := r.Stream, r.Match
	h := s.RequestHeaders
	info := s.Info
	if m == nil || m.Route == nil {
		info.ResponseFlags |= filterchain.FlagNoRouteFound
		return nil, &filterchain.LocalReply{Status: http.StatusNotFound, Details: "route_not_found", GRPCStatus: -1}
	}
	info.RouteName = m.Route.Name
	switch m.Route.Kind {
	case route.ActionDirectResponse:
		d := m.Route.DirectResponse
		return nil, &filterchain.LocalReply{Status: d.Status, Body: []byte(d.Body), Details: "direct_response", GRPCStatus: -1}
	case route.ActionRedirect:
		loc := m.Route.Redirect.Location(h)
		return nil, &filterchain.LocalReply{Status: m.Route.Redirect.Code, Details: "redirect",
			Headers: []header.Field{{Key: "location", Value: loc}}, GRPCStatus: -1}
	}
	a := m.Route.Action
	cluster := m.Cluster
	info.ClusterName = cluster
	if cluster == "" || c.clusters == nil || !c.clusters.Has(cluster) {
		info.ResponseFlags |= filterchain.FlagNoClusterFound
		code := a.ClusterNotFoundCode
		if code == 0 {
			code = http.StatusServiceUnavailable
		}
		return nil, &filterchain.LocalReply{Status: code, Details: "cluster_not_found", GRPCStatus: -1}
	}

	m.FinalizeRequestHeaders(h, r.Formatter, !c.suppressEnvoy)
	timeout := a.Timeout
	if c.respectTimeoutHeaders {
		if v, ok := h.Get("x-envoy-upstream-rq-timeout-ms"); ok {
			if ms, err := strconv.ParseUint(v, 10, 32); err == nil {
				timeout = time.Duration(ms) * time.Millisecond
			}
		}
	}
	policy := a.Retry
	retryOn, numRetries, perTry := route.RetryOn(0), 0, time.Duration(0)
	if policy != nil && policy.AllowsRequest(h) {
		retryOn, numRetries, perTry = policy.On, int(policy.NumRetries), policy.PerTryTimeout
	}
	if v, ok := h.Get("x-envoy-retry-on"); ok {
		extra, _ := route.ParseRetryOn(v)
		retryOn |= extra
		if policy == nil && numRetries == 0 {
			numRetries = 1
		}
	}
	if v, ok := h.Get("x-envoy-max-retries"); ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			numRetries = n
		}
	}
	if !c.suppressEnvoy {
		if timeout > 0 {
			v := a.TimeoutMs
			if timeout != a.Timeout || v == "" {
				v = strconv.FormatInt(timeout.Milliseconds(), 10)
			}
			h.Set("x-envoy-expected-rq-timeout-ms", v)
		}
	}
	for _, k := range []string{"x-envoy-retry-on", "x-envoy-max-retries", "x-envoy-upstream-rq-timeout-ms", "x-envoy-upstream-rq-per-try-timeout-ms"} {
		h.Del(k)
	}
	replayable := r.Reader == nil || r.Buffered
	if !replayable {
		numRetries = 0
	}

	lb := LBContext{Downstream: info.DownstreamRemote, AutoHostRewrite: a.AutoHostRewrite,
		DownstreamHTTP2: info.Protocol == "HTTP/2.0" || info.Protocol == "HTTP/2", Fields: h,
		Response: r.ResponseHeaders}
	if a.Hash != nil {
		lb.Hash, lb.HasHash = a.Hash.Hash(route.HashInput{Headers: h, RemoteAddr: info.DownstreamRemote.Addr()})
	}

	start := time.Now()
	info.UpstreamStart = start
	// The route timeout and the per-try timeouts are deadlines on the
	// request's context (deadlineCtx: no timer or channel unless a consumer
	// asks for Done).
	ctx := s.Context
	var routeCtx *deadlineCtx
	var rs *routeState
	if timeout > 0 {
		if d := start.Add(timeout); needDeadline(ctx, d) {
			// The route's context and its response body wrapper in one
			// allocation.
			rs = &routeState{ctx: deadlineCtx{Context: ctx, deadline: d}}
			routeCtx = &rs.ctx
			ctx = routeCtx
		}
	}
	for attempt := 0; ; attempt++ {
		info.Attempts = attempt + 1
		tryCtx := ctx
		var try *deadlineCtx
		if perTry > 0 {
			if try = withDeadline(ctx, time.Now().Add(perTry)); try != nil {
				// Its own deadline is the earlier: it needs only the
				// stream's cancellation.
				try.Context = s.Context
				tryCtx = try
			}
		}
		req, err := buildRequest(tryCtx, h, r)
		if err != nil {
			stopBoth(routeCtx, try)
			return nil, &filterchain.LocalReply{Status: http.StatusBadRequest, Details: "invalid_path", GRPCStatus: -1}
		}
		resp, host, err := c.clusters.RoundTrip(cluster, req, lb)
		info.UpstreamHost = host
		if err != nil {
			stopBoth(nil, try)
			reason := resetReason(err)
			timedOut := errors.Is(err, context.DeadlineExceeded)
			if timedOut && ctx.Err() != nil {
				stopBoth(routeCtx, nil)
				info.ResponseFlags |= filterchain.FlagUpstreamRequestTimeout
				return nil, &filterchain.LocalReply{Status: http.StatusGatewayTimeout, Body: []byte("upstream request timeout"), Details: "upstream_response_timeout", GRPCStatus: 4}
			}
			if attempt < numRetries && (timedOut || route.RetryOnReset(retryOn, reason)) && s.Context.Err() == nil {
				backoff(ctx, policy, attempt)
				continue
			}
			stopBoth(routeCtx, nil)
			return nil, c.failureReply(info, err, timedOut, attempt > 0 && attempt >= numRetries && numRetries > 0)
		}
		if retryOn != 0 && numRetries > 0 && s.Context.Err() == nil {
			rh := lb.Response
			if resp.Header != nil {
				rh = responseHeaderMap(resp, retryOn&route.RetryRetriableHeaders != 0)
			}
			p := policy
			if p == nil {
				p = &route.RetryPolicy{}
			}
			if p.RetryOnResponse(retryOn, resp.StatusCode, rh) {
				if attempt < numRetries {
					io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
					resp.Body.Close()
					stopBoth(nil, try)
					backoff(ctx, policy, attempt)
					continue
				}
				// The last allowed attempt is still retriable: Envoy
				// forwards it and flags the exhausted retries (URX).
				info.ResponseFlags |= filterchain.FlagUpstreamRetryLimitExceeded
			}
		}
		if !c.suppressEnvoy {
			st := serviceTime(time.Since(start).Milliseconds())
			switch {
			case resp.Header != nil:
				resp.Header["X-Envoy-Upstream-Service-Time"] = st
			case lb.Response != nil:
				lb.Response.Set("x-envoy-upstream-service-time", st[0])
			default:
				resp.Header = http.Header{"X-Envoy-Upstream-Service-Time": st}
			}
		}
		if routeCtx != nil || try != nil {
			if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
				// An upgraded connection: keep Write for the tunnel.
				resp.Body = &stopBodyRW{ReadWriteCloser: rwc, route: routeCtx, try: try}
			} else if rs != nil {
				rs.body = stopBody{ReadCloser: resp.Body, route: routeCtx, try: try}
				resp.Body = &rs.body
			} else {
				resp.Body = &stopBody{ReadCloser: resp.Body, route: routeCtx, try: try}
			}
		}
		return resp, nil
	}
}

func (c *Config) failureReply(info *filterchain.StreamInfo, err error, timedOut, retriesExhausted bool) *filterchain.LocalReply {
	if retriesExhausted {
		info.ResponseFlags |= filterchain.FlagUpstreamRetryLimitExceeded
	}
	if timedOut {
		info.ResponseFlags |= filterchain.FlagUpstreamRequestTimeout
		return &filterchain.LocalReply{Status: http.StatusGatewayTimeout, Body: []byte("upstream request timeout"), Details: "upstream_per_try_timeout", GRPCStatus: 4}
	}
	var ue *UpstreamError
	kind := FailureConnect
	if errors.As(err, &ue) {
		kind = ue.Kind
	}
	switch kind {
	case FailureNoHealthyUpstream:
		info.ResponseFlags |= filterchain.FlagNoHealthyUpstream
		return &filterchain.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("no healthy upstream"), Details: "no_healthy_upstream", GRPCStatus: 14}
	case FailureOverflow:
		info.ResponseFlags |= filterchain.FlagUpstreamOverflow
		lr := &filterchain.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("upstream connect error or disconnect/reset before headers. reset reason: overflow"), Details: "upstream_reset_before_response_started{overflow}", GRPCStatus: 14}
		if !c.suppressEnvoy {
			lr.Headers = []header.Field{{Key: "x-envoy-overloaded", Value: "true"}}
		}
		return lr
	case FailureReset:
		// The upstream connection closed before a response: Envoy's UC.
		info.ResponseFlags |= filterchain.FlagUpstreamConnectionTermination
		return &filterchain.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("upstream connect error or disconnect/reset before headers. reset reason: connection termination"), Details: "upstream_reset_before_response_started{connection_termination}", GRPCStatus: 14}
	case FailureProtocol:
		info.ResponseFlags |= filterchain.FlagUpstreamProtocolError
		return &filterchain.LocalReply{Status: http.StatusBadGateway, Body: []byte("upstream connect error or disconnect/reset before headers. reset reason: protocol error"), Details: "upstream_reset_before_response_started{protocol_error}", GRPCStatus: 14}
	}
	info.ResponseFlags |= filterchain.FlagUpstreamConnectionFailure
	return &filterchain.LocalReply{Status: http.StatusServiceUnavailable, Body: []byte("upstream connect error or disconnect/reset before headers. reset reason: connection failure"), Details: "upstream_reset_before_response_started{connection_failure}", GRPCStatus: 14}
}

func resetReason(err error) route.ResetReason {
	var ue *UpstreamError
	if errors.As(err, &ue) {
		switch ue.Kind {
		case FailureConnect:
			return route.ResetConnectionFailure
		case FailureOverflow:
			return route.ResetOverflow
		}
	}
	return route.ResetOther
}

// backoff sleeps the retry back-off: Envoy's default base 25 ms, max 10x
// base, full jitter.
func backoff(ctx context.Context, p *route.RetryPolicy, attempt int) {
	base, max := 25*time.Millisecond, 250*time.Millisecond
	if p != nil && p.BackOffBase > 0 {
		base = p.BackOffBase
		max = 10 * base
		if p.BackOffMax > 0 {
			max = p.BackOffMax
		}
	}
	d := base << min(attempt, 16)
	if d > max || d <= 0 {
		d = max
	}
	d = time.Duration(rand.Int64N(int64(d) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// buildRequest makes the upstream request from the (finalized) headers:
// method, target and authority from the pseudo-headers, the body, and no
// http.Header (the cluster writes the header map: LBContext.Fields).
func buildRequest(ctx context.Context, h *header.Map, r *Request) (*http.Request, error) {
	method, _ := h.Get(":method")
	path, _ := h.Get(":path")
	authority, _ := h.Get(":authority")
	u, err := reqtarget.Parse(path)
	if err != nil {
		return nil, err
	}
	var body io.ReadCloser = http.NoBody
	cl := r.ContentLength
	switch {
	case r.Buffered:
		body = io.NopCloser(strings.NewReader(string(r.BufferedBody)))
		cl = int64(len(r.BufferedBody))
	case r.Reader != nil:
		body = io.NopCloser(r.Reader)
	default:
		cl = 0
	}
	// A template on the stack: WithContext makes the one copy that
	// escapes.
	req := http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Body:          body,
		ContentLength: cl,
		Host:          authority,
	}
	if cl == 0 && r.Reader == nil && !r.Buffered {
		// An empty body that net/http does not consider replayable: it
		// must not resend a request on its own when a reused connection
		// closes (retries are the route's retry policy's call).
		req.Body = emptyBody{}
	}
	return req.WithContext(ctx), nil
}

// serviceTimes are x-envoy-upstream-service-time values for the common
// small durations, shared by responses (capacity 1: an append copies).
var serviceTimes = func() [256][]string {
	var t [256][]string
	for i := range t {
		t[i] = []string{strconv.Itoa(i)}[:1:1]
	}
	return t
}()

func serviceTime(ms int64) []string {
	if ms >= 0 && ms < int64(len(serviceTimes)) {
		return serviceTimes[ms]
	}
	return []string{strconv.FormatInt(ms, 10)}
}

// responseHeaderMap views a response's status and headers as a header map
// for the retry decision: all of them when retriable_headers may match any,
// else only those RetryOnResponse reads without them.
func responseHeaderMap(resp *http.Response, all bool) *header.Map {
	if !all {
		m := header.NewCap(3, ":status", strconv.Itoa(resp.StatusCode))
		for k, vs := range resp.Header {
			if strings.EqualFold(k, "x-envoy-ratelimited") || strings.EqualFold(k, "grpc-status") {
				for _, v := range vs {
					m.Add(k, v)
				}
			}
		}
		return m
	}
	m := header.New(":status", strconv.Itoa(resp.StatusCode))
	for k, vs := range resp.Header {
		for _, v := range vs {
			m.Add(k, v)
		}
	}
	return m
}

// emptyBody is an empty request body that net/http will not replay.
type emptyBody struct{}

func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyBody) Close() error             { return nil }
