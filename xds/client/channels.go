package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// channel is one transport to a control plane: the ADS stream, carrying
// every type no separate source carries, or a separate source's stream
// (or REST poller) carrying one type. Owned by Run's goroutine.
type channel struct {
	name    string // "ads" or the type URL, for logs
	typeURL string // "" for ADS
	src     Source
	conn    *grpc.ClientConn
	http    *http.Client
	// gen is the stream's generation: events of older streams are
	// dropped. It moves on when a stream closes.
	gen      int
	live     bool
	cancel   context.CancelFunc
	failures int
	timer    *time.Timer // reconnect backoff or next REST poll
	sotw     *sotwStream
	delta    *deltaStream
	// REST: the request of the next poll, and whether one is in flight.
	restReq     *discoveryv3.DiscoveryRequest
	polling     bool
	restStarted bool
}

type eventKind int

const (
	evOpened eventKind = iota
	evResponse
	evClosed
	evRetry
	evPoll
	evPolled
	evFiles
)

// event is what the channels' goroutines report to Run's goroutine.
type event struct {
	ch     *channel
	gen    int
	kind   eventKind
	stream any // evOpened: sotwClient or deltaClient
	resp   any // evResponse, evPolled: *DiscoveryResponse (nil: not modified) or *DeltaDiscoveryResponse
	err    error
}

type sotwClient interface {
	Send(*discoveryv3.DiscoveryRequest) error
	Recv() (*discoveryv3.DiscoveryResponse, error)
}

type deltaClient interface {
	Send(*discoveryv3.DeltaDiscoveryRequest) error
	Recv() (*discoveryv3.DeltaDiscoveryResponse, error)
}

// streamMethods are the gRPC methods opening a SotW and a delta stream for
// ADS ("") and for each type on its own (Envoy's per-type services).
var streamMethods = map[string][2]string{
	"":                  {"/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources", "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"},
	TypeCluster:         {"/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters", "/envoy.service.cluster.v3.ClusterDiscoveryService/DeltaClusters"},
	TypeEndpoint:        {"/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints", "/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints"},
	TypeListener:        {"/envoy.service.listener.v3.ListenerDiscoveryService/StreamListeners", "/envoy.service.listener.v3.ListenerDiscoveryService/DeltaListeners"},
	TypeRoute:           {"/envoy.service.route.v3.RouteDiscoveryService/StreamRoutes", "/envoy.service.route.v3.RouteDiscoveryService/DeltaRoutes"},
	TypeSecret:          {"/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets", "/envoy.service.secret.v3.SecretDiscoveryService/DeltaSecrets"},
	TypeExtensionConfig: {"/envoy.service.extension.v3.ExtensionConfigDiscoveryService/StreamExtensionConfigs", "/envoy.service.extension.v3.ExtensionConfigDiscoveryService/DeltaExtensionConfigs"},
	TypeRuntime:         {"/envoy.service.runtime.v3.RuntimeDiscoveryService/StreamRuntime", "/envoy.service.runtime.v3.RuntimeDiscoveryService/DeltaRuntime"},
}

// restPaths are the REST endpoints of each type (POST, JSON).
var restPaths = map[string]string{
	TypeCluster:         "/v3/discovery:clusters",
	TypeEndpoint:        "/v3/discovery:endpoints",
	TypeListener:        "/v3/discovery:listeners",
	TypeRoute:           "/v3/discovery:routes",
	TypeSecret:          "/v3/discovery:secrets",
	TypeExtensionConfig: "/v3/discovery:extension_configs",
	TypeRuntime:         "/v3/discovery:runtime",
}

var bidi = &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}

// carrier is the channel a type is requested on, nil when none (file
// mode, or no ADS for a type without a separate source).
func (c *Client) carrier(typeURL string) *channel {
	if ch, ok := c.chanOf[typeURL]; ok {
		return ch
	}
	return c.ads
}

// carried lists the types a channel carries.
func (c *Client) carried(ch *channel) []string {
	var out []string
	for url := range c.subs {
		if c.carrier(url) == ch {
			out = append(out, url)
		}
	}
	return out
}

// addChannel sets a channel up for a source (a type's own, or ADS for
// typeURL "") and opens it.
func (c *Client) addChannel(typeURL string, src Source) *channel {
	name := typeURL
	if name == "" {
		name = "ads"
	}
	ch := &channel{name: name, typeURL: typeURL, src: src}
	if src.REST {
		tr := &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 90 * time.Second}
		if src.Dial != nil {
			dial := src.Dial
			tr.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) { return dial(ctx, addr) }
		}
		ch.http = &http.Client{Transport: tr}
	} else {
		key := src.Target + "|" + src.Authority
		conn := c.conns[key]
		if conn == nil {
			opts := []grpc.DialOption{
				grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: c.cfg.KeepaliveTime, Timeout: c.cfg.KeepaliveTimeout}),
				// A full state of the world easily exceeds gRPC's 4 MB
				// default; Envoy sets no such limit on xDS.
				grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
			}
			if src.Dial != nil {
				opts = append(opts, grpc.WithContextDialer(src.Dial))
			}
			if src.Authority != "" {
				opts = append(opts, grpc.WithAuthority(src.Authority))
			}
			var err error
			if conn, err = grpc.NewClient(src.Target, opts...); err != nil {
				// Only a malformed target fails here; keep retrying so that
				// the error shows in the log.
				c.log.Error("xds: bad control plane target", zap.String("target", src.Target), zap.Error(err))
			} else {
				c.conns[key] = conn
			}
		}
		ch.conn = conn
	}
	c.chans = append(c.chans, ch)
	if typeURL != "" {
		c.chanOf[typeURL] = ch
	}
	c.open(ch)
	return ch
}

// post hands an event to Run's goroutine unless done ends first.
func (c *Client) post(done <-chan struct{}, ev event) bool {
	select {
	case c.events <- ev:
		return true
	case <-done:
		return false
	}
}

// open starts a channel's stream (or its first REST poll).
func (c *Client) open(ch *channel) {
	gen := ch.gen
	if ch.src.REST {
		ch.sotw = &sotwStream{c: c, ch: ch, stream: restSender{ch}, sent: map[string][]string{}}
		for _, url := range c.carried(ch) {
			c.subs[url].nonce = ""
		}
		if err := ch.sotw.sync(); err != nil {
			c.log.Warn("xds REST subscription", zap.Error(err))
		}
		c.poll(ch)
		return
	}
	sctx, cancel := context.WithCancel(c.rctx)
	ch.cancel = cancel
	conn := ch.conn
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		done := sctx.Done()
		report := func(kind eventKind, stream, resp any, err error) bool {
			return c.post(done, event{ch: ch, gen: gen, kind: kind, stream: stream, resp: resp, err: err})
		}
		if conn == nil {
			report(evClosed, nil, nil, fmt.Errorf("xds: no connection to %q", ch.src.Target))
			return
		}
		methods := streamMethods[ch.typeURL]
		if ch.src.Delta {
			pump[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse, deltaClient](sctx, conn, methods[1], report)
			return
		}
		pump[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse, sotwClient](sctx, conn, methods[0], report)
	}()
}

// pump opens a stream of one of the discovery services' methods, reports
// it opened (as the client interface W the event loop uses), then reports
// every response until the stream ends or the loop stops listening.
func pump[Req, Resp any, W any](ctx context.Context, conn *grpc.ClientConn, method string,
	report func(kind eventKind, stream, resp any, err error) bool) {
	cs, err := conn.NewStream(ctx, bidi, method)
	if err != nil {
		report(evClosed, nil, nil, err)
		return
	}
	st := &grpc.GenericClientStream[Req, Resp]{ClientStream: cs}
	var w any = st
	if !report(evOpened, w.(W), nil, nil) {
		return
	}
	for {
		r, err := st.Recv()
		if err != nil {
			report(evClosed, nil, nil, err)
			return
		}
		if !report(evResponse, nil, r, nil) {
			return
		}
	}
}

// onEvent handles one event of a channel.
func (c *Client) onEvent(ctx context.Context, ev event) {
	ch := ev.ch
	if ev.kind == evFiles {
		c.checkFiles(ctx)
		return
	}
	if ev.gen != ch.gen {
		return // from a stream that is gone
	}
	switch ev.kind {
	case evOpened:
		c.streamOpened(ch, ev.stream)
	case evResponse:
		c.onResponse(ctx, ch, ev.resp)
	case evClosed:
		c.closeChannel(ch, ev.err)
	case evRetry:
		c.open(ch)
	case evPoll:
		c.poll(ch)
	case evPolled:
		c.polled(ctx, ch, ev.resp, ev.err)
	}
}

func (c *Client) streamOpened(ch *channel, stream any) {
	ch.live = true
	if c.carrier(TypeListener) == ch {
		c.held, c.rdsHeld = nil, nil // their stream is gone; the control plane resends
	}
	switch st := stream.(type) {
	case deltaClient:
		ch.delta = &deltaStream{c: c, ch: ch, stream: st, sent: map[string][]string{}}
	case sotwClient:
		// A new stream starts without a nonce: the control plane treats
		// the version as what the data plane already has.
		for _, url := range c.carried(ch) {
			c.subs[url].nonce = ""
		}
		ch.sotw = &sotwStream{c: c, ch: ch, stream: st, sent: map[string][]string{}}
	}
	if err := c.syncChannel(ch); err != nil {
		c.closeChannel(ch, err)
		return
	}
	c.updateConnected()
	c.log.Info("xds stream established", zap.String("stream", ch.name), zap.String("target", ch.src.Target), zap.Bool("delta", ch.src.Delta))
}

func (c *Client) onResponse(ctx context.Context, ch *channel, resp any) {
	ch.failures = 0 // backoff starts over once a stream delivered
	if ls, ok := listenersOf(resp); ok {
		c.noteListenerRoutes(ls)
		c.noteListenerSecrets(ls)
	}
	var typeURL string
	var handle func() error
	switch r := resp.(type) {
	case *discoveryv3.DiscoveryResponse:
		s := ch.sotw
		typeURL = r.GetTypeUrl()
		handle = func() error { return c.handleSotW(ctx, s, r) }
	case *discoveryv3.DeltaDiscoveryResponse:
		s := ch.delta
		typeURL = r.GetTypeUrl()
		handle = func() error { return c.handleDelta(ctx, s, r) }
	default:
		return
	}
	if !c.hold(typeURL, handle) {
		if err := handle(); err != nil {
			c.closeChannel(ch, err)
		}
	}
}

// syncChannel sends the subscriptions of a live channel that changed.
func (c *Client) syncChannel(ch *channel) error {
	switch {
	case ch.delta != nil:
		return ch.delta.sync()
	case ch.sotw != nil:
		return ch.sotw.sync()
	}
	return nil
}

// closeChannel ends a channel's stream and schedules its reconnection
// with backoff. What it delivered stays applied.
func (c *Client) closeChannel(ch *channel, err error) {
	if !ch.live && ch.cancel == nil {
		return // already closed, waiting to reconnect
	}
	if c.carrier(TypeListener) == ch {
		c.held, c.rdsHeld = nil, nil // they would be ACKed on the dead stream
	}
	if ch.cancel != nil {
		ch.cancel()
		ch.cancel = nil
	}
	ch.gen++
	ch.live = false
	ch.sotw, ch.delta = nil, nil
	c.updateConnected()
	if c.rctx.Err() != nil {
		return
	}
	for _, url := range c.carried(ch) {
		c.subs[url].failure.Inc() // a connection failure, as Envoy counts it
	}
	wait := c.backoff(ch.failures)
	ch.failures++
	c.log.Warn("xds stream closed, reconnecting", zap.String("stream", ch.name), zap.Error(err), zap.Duration("backoff", wait))
	c.schedule(ch, wait, evRetry)
}

// schedule posts an event of the channel's current stream after d.
func (c *Client) schedule(ch *channel, d time.Duration, kind eventKind) {
	if ch.timer != nil {
		ch.timer.Stop()
	}
	ev := event{ch: ch, gen: ch.gen, kind: kind}
	done := c.rctx.Done()
	ch.timer = time.AfterFunc(d, func() { c.post(done, ev) })
}

// updateConnected sets control_plane.connected_state: 1 while every
// stream is up (and every REST source answered its last poll).
func (c *Client) updateConnected() {
	v := uint64(1)
	for _, ch := range c.chans {
		if !ch.live {
			v = 0
		}
	}
	if len(c.chans) == 0 {
		v = 0
	}
	c.connected.Set(v)
}

// restSender keeps the request a SotW exchange would send as the next
// REST poll's request.
type restSender struct{ ch *channel }

func (r restSender) Send(req *discoveryv3.DiscoveryRequest) error {
	r.ch.restReq = req
	return nil
}

func (restSender) Recv() (*discoveryv3.DiscoveryResponse, error) { return nil, io.EOF }

// poll sends a REST channel's request, unless one is in flight or the type
// is not subscribed yet; the next poll follows refresh_delay after the
// answer.
func (c *Client) poll(ch *channel) {
	if ch.polling {
		return
	}
	if ch.restReq == nil {
		c.schedule(ch, ch.src.RefreshDelay, evPoll)
		return
	}
	req := proto.Clone(ch.restReq).(*discoveryv3.DiscoveryRequest)
	req.Node = c.cfg.Node // every REST request stands alone
	ch.polling, ch.restStarted = true, true
	gen, done := ch.gen, c.rctx.Done()
	rctx := c.rctx
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		resp, err := fetchREST(rctx, ch.http, ch.src, req)
		c.post(done, event{ch: ch, gen: gen, kind: evPolled, resp: resp, err: err})
	}()
}

func (c *Client) polled(ctx context.Context, ch *channel, resp any, err error) {
	ch.polling = false
	c.schedule(ch, ch.src.RefreshDelay, evPoll)
	if err != nil {
		ch.live = false
		c.updateConnected()
		for _, url := range c.carried(ch) {
			c.subs[url].failure.Inc()
		}
		c.log.Warn("xds REST fetch failed; keeping the last configuration", zap.String("type", ch.typeURL), zap.Error(err))
		return
	}
	ch.live = true
	c.updateConnected()
	if r, ok := resp.(*discoveryv3.DiscoveryResponse); ok && r != nil {
		if r.GetTypeUrl() == "" {
			r.TypeUrl = ch.typeURL
		}
		c.onResponse(ctx, ch, r)
	}
}

// fetchREST does one REST exchange: a nil response means not modified
// (HTTP 304).
func fetchREST(ctx context.Context, hc *http.Client, src Source, req *discoveryv3.DiscoveryRequest) (*discoveryv3.DiscoveryResponse, error) {
	body, err := protojson.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("xds: REST request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, src.RequestTimeout)
	defer cancel()
	url := src.Target + restPaths[req.GetTypeUrl()]
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("xds: REST request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := hc.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("xds: REST %s: %w", url, err)
	}
	defer hresp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(hresp.Body, math.MaxInt32))
	if err != nil {
		return nil, fmt.Errorf("xds: REST %s: %w", url, err)
	}
	switch hresp.StatusCode {
	case http.StatusNotModified:
		return nil, nil
	case http.StatusOK:
	default:
		if len(b) > 200 {
			b = b[:200]
		}
		return nil, fmt.Errorf("xds: REST %s: %s: %s", url, hresp.Status, b)
	}
	resp := &discoveryv3.DiscoveryResponse{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, resp); err != nil {
		return nil, fmt.Errorf("xds: REST %s: response: %w", url, err)
	}
	return resp, nil
}
