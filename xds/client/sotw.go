package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/zap"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// sotwStream is one SotW stream: ADS, a type's own, or a REST poller.
type sotwStream struct {
	c        *Client
	ch       *channel
	stream   sotwClient
	sentNode bool
	sent     map[string][]string // names last requested per type; absent: not subscribed
}

func (s *sotwStream) send(req *discoveryv3.DiscoveryRequest) error {
	if !s.sentNode || !s.ch.src.SetNodeOnFirstMessageOnly {
		req.Node = s.c.cfg.Node
		s.sentNode = true
	}
	if err := s.stream.Send(req); err != nil {
		return fmt.Errorf("xds: send %s: %w", req.GetTypeUrl(), err)
	}
	return nil
}

// sync sends the subscriptions that are due and not yet requested on this
// stream, in Envoy's order: CDS, EDS, LDS.
func (s *sotwStream) sync() error {
	c := s.c
	want := []struct {
		url   string
		names []string
		due   bool
	}{
		{TypeCluster, nil, true},
		{TypeEndpoint, c.edsNames(), true},
		{TypeListener, nil, c.cdsInit},
		{TypeRoute, c.rdsNames(), c.cdsInit},
		{TypeExtensionConfig, c.ecdsNames(), c.cdsInit},
		{TypeSecret, c.sdsNames(), true},
		{TypeRuntime, c.rtdsNames(), true},
	}
	for _, w := range want {
		if c.carrier(w.url) != s.ch {
			continue
		}
		sub := c.subs[w.url]
		sent, ok := s.sent[w.url]
		if !w.due || (ok && slices.Equal(sent, w.names)) {
			continue
		}
		if !sub.wildcard && len(w.names) == 0 {
			// An empty list would read as a wildcard; the stale
			// subscription is harmless.
			continue
		}
		if len(sub.names) > 0 {
			keep := nameSet(w.names)
			for _, n := range sub.names {
				if _, ok := keep[n]; !ok {
					c.forgetName(w.url, n) // no longer watched: it would go stale
				}
			}
		}
		sub.names = w.names
		req := &discoveryv3.DiscoveryRequest{TypeUrl: w.url, ResourceNames: w.names, VersionInfo: sub.version, ResponseNonce: sub.nonce}
		if err := s.send(req); err != nil {
			return err
		}
		if w.names == nil {
			w.names = []string{}
		}
		s.sent[w.url] = w.names
	}
	return nil
}

// handleSotW applies one response and ACKs or NACKs it.
func (c *Client) handleSotW(ctx context.Context, s *sotwStream, resp *discoveryv3.DiscoveryResponse) error {
	sub, ok := c.subs[resp.GetTypeUrl()]
	if !ok || c.carrier(resp.GetTypeUrl()) != s.ch {
		return s.send(&discoveryv3.DiscoveryRequest{
			TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce(),
			ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: fmt.Sprintf("unsubscribed resource type %q on this stream", resp.GetTypeUrl())},
		})
	}
	sub.attempt.Inc()
	err := c.applySotW(ctx, resp)
	if resp.GetTypeUrl() == TypeCluster {
		c.cdsAnswered = true
	}
	if resp.GetTypeUrl() == TypeListener {
		c.ldsInit = true
		c.routesHandled()
	}
	c.updateInit()
	req := &discoveryv3.DiscoveryRequest{TypeUrl: sub.typeURL, ResponseNonce: resp.GetNonce()}
	if !sub.wildcard {
		req.ResourceNames = sub.names
	}
	if err == nil {
		sub.version = resp.GetVersionInfo()
		sub.success.Inc()
		sub.updateTime.Set(uint64(time.Now().UnixMilli()))
		c.setVersion(sub.typeURL, sub.version, "")
		c.log.Info("xds update accepted", zap.String("type", sub.typeURL), zap.String("version", sub.version), zap.Int("resources", len(resp.GetResources())))
	} else {
		sub.rejected.Inc()
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		c.setVersion(sub.typeURL, "", err.Error())
		c.log.Warn("xds update rejected", zap.String("type", sub.typeURL), zap.String("version", resp.GetVersionInfo()), zap.Error(err))
	}
	req.VersionInfo = sub.version
	sub.nonce = resp.GetNonce()
	return s.send(req)
}

func (c *Client) applySotW(ctx context.Context, resp *discoveryv3.DiscoveryResponse) error {
	if d := c.decoded(resp.GetTypeUrl()); d != nil {
		defer d.commit()
	}
	var errs []error
	switch resp.GetTypeUrl() {
	case TypeCluster:
		var ups []*clusterv3.Cluster
		present := map[string]bool{}
		for _, a := range resp.GetResources() {
			cl, err := decodeWith(c.decoded(TypeCluster), a, TypeCluster, newCluster)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			ups = append(ups, cl)
			present[cl.GetName()] = true
		}
		if len(errs) > 0 {
			// Without every resource the removal set is unknown.
			return errors.Join(errs...)
		}
		var removes []string
		for _, m := range []map[string]*clusterv3.Cluster{c.clusters, c.pending} {
			for name := range m {
				if !present[name] {
					removes = append(removes, name)
				}
			}
		}
		return c.applyClusters(ctx, ups, removes)
	case TypeEndpoint:
		var clas []*endpointv3.ClusterLoadAssignment
		for _, a := range resp.GetResources() {
			cla, err := decodeWith(c.decoded(TypeEndpoint), a, TypeEndpoint, newCLA)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			clas = append(clas, cla)
		}
		errs = append(errs, c.applyEndpoints(ctx, clas))
		return errors.Join(errs...)
	case TypeListener:
		next := map[string]*listenerv3.Listener{}
		for _, a := range resp.GetResources() {
			l, err := decodeWith(c.decoded(TypeListener), a, TypeListener, newListener)
			if err != nil {
				return err
			}
			if _, dup := next[l.GetName()]; dup {
				return fmt.Errorf("listener %q: name: duplicate in one response", l.GetName())
			}
			next[l.GetName()] = l
		}
		return c.applyListeners(ctx, next)
	case TypeExtensionConfig:
		var tcs []*corev3.TypedExtensionConfig
		var versions []string
		for _, a := range resp.GetResources() {
			tc, err := decodeWith(c.decoded(TypeExtensionConfig), a, TypeExtensionConfig, newExtensionConfig)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			tcs, versions = append(tcs, tc), append(versions, resp.GetVersionInfo())
		}
		errs = append(errs, c.applyExtensionConfigs(ctx, tcs, versions))
		return errors.Join(errs...)
	case TypeRoute:
		var rcs []*routev3.RouteConfiguration
		var versions []string
		for _, a := range resp.GetResources() {
			rc, err := decodeWith(c.decoded(TypeRoute), a, TypeRoute, newRouteConfig)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			rcs, versions = append(rcs, rc), append(versions, resp.GetVersionInfo())
		}
		errs = append(errs, c.applyRoutes(ctx, rcs, versions))
		return errors.Join(errs...)
	case TypeSecret:
		return c.applySecretsSotW(ctx, resp)
	case TypeRuntime:
		return c.handleRuntime(resp)
	}
	return nil
}

// decoded is the decode cache of a type, nil for an unknown type.
func (c *Client) decoded(typeURL string) *decodeCache {
	if _, ok := c.subs[typeURL]; !ok {
		return nil
	}
	if c.decodeCaches == nil {
		c.decodeCaches = map[string]*decodeCache{}
	}
	d := c.decodeCaches[typeURL]
	if d == nil {
		d = &decodeCache{}
		c.decodeCaches[typeURL] = d
	}
	return d
}
