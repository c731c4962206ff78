package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/zap"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// deltaStream is one incremental stream: ADS or a type's own.
type deltaStream struct {
	c        *Client
	ch       *channel
	stream   deltaClient
	sentNode bool
	sent     map[string][]string // names subscribed per type on this stream
}

func (s *deltaStream) send(req *discoveryv3.DeltaDiscoveryRequest) error {
	if !s.sentNode || !s.ch.src.SetNodeOnFirstMessageOnly {
		req.Node = s.c.cfg.Node
		s.sentNode = true
	}
	if err := s.stream.Send(req); err != nil {
		return fmt.Errorf("xds: send %s: %w", req.GetTypeUrl(), err)
	}
	return nil
}

// sync subscribes (first request of a type on the stream, with
// initial_resource_versions) or changes the EDS names.
func (s *deltaStream) sync() error {
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
		if !sub.wildcard && !ok && len(w.names) == 0 {
			continue
		}
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: w.url}
		if !ok {
			req.ResourceNamesSubscribe = w.names
			if len(sub.versions) > 0 {
				req.InitialResourceVersions = maps.Clone(sub.versions)
			}
		} else {
			had, want := nameSet(sent), nameSet(w.names)
			for _, n := range w.names {
				if _, ok := had[n]; !ok {
					req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
				}
			}
			for _, n := range sent {
				if _, ok := want[n]; !ok {
					req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, n)
					delete(sub.versions, n)
					c.forgetName(w.url, n)
				}
			}
		}
		sub.names = w.names
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

// handleDelta applies one incremental response and ACKs or NACKs it.
func (c *Client) handleDelta(ctx context.Context, s *deltaStream, resp *discoveryv3.DeltaDiscoveryResponse) error {
	sub, ok := c.subs[resp.GetTypeUrl()]
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
	if !ok || c.carrier(resp.GetTypeUrl()) != s.ch {
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: fmt.Sprintf("unsubscribed resource type %q on this stream", resp.GetTypeUrl())}
		return s.send(req)
	}
	sub.attempt.Inc()
	err := c.applyDelta(ctx, resp)
	switch resp.GetTypeUrl() {
	case TypeCluster:
		c.cdsAnswered = true
	case TypeListener:
		c.ldsInit = true
		c.routesHandled()
	}
	c.updateInit()
	if err == nil {
		for _, r := range resp.GetResources() {
			sub.versions[r.GetName()] = r.GetVersion()
		}
		for _, n := range resp.GetRemovedResources() {
			delete(sub.versions, n)
		}
		sub.version = resp.GetSystemVersionInfo()
		sub.success.Inc()
		sub.updateTime.Set(uint64(time.Now().UnixMilli()))
		c.setVersion(sub.typeURL, sub.version, "")
		c.log.Info("xds delta update accepted", zap.String("type", sub.typeURL), zap.String("system_version_info", sub.version),
			zap.Int("resources", len(resp.GetResources())), zap.Int("removed", len(resp.GetRemovedResources())))
	} else {
		sub.rejected.Inc()
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		c.setVersion(sub.typeURL, "", err.Error())
		c.log.Warn("xds delta update rejected", zap.String("type", sub.typeURL), zap.Error(err))
	}
	sub.nonce = resp.GetNonce()
	return s.send(req)
}

func (c *Client) applyDelta(ctx context.Context, resp *discoveryv3.DeltaDiscoveryResponse) error {
	var errs []error
	switch resp.GetTypeUrl() {
	case TypeCluster:
		var ups []*clusterv3.Cluster
		for _, r := range resp.GetResources() {
			cl, err := decode(r.GetResource(), TypeCluster, newCluster)
			if err != nil {
				errs = append(errs, fmt.Errorf("cluster %q: %w", r.GetName(), err))
				continue
			}
			ups = append(ups, cl)
		}
		errs = append(errs, c.applyClusters(ctx, ups, resp.GetRemovedResources()))
	case TypeEndpoint:
		var clas []*endpointv3.ClusterLoadAssignment
		for _, r := range resp.GetResources() {
			cla, err := decode(r.GetResource(), TypeEndpoint, newCLA)
			if err != nil {
				errs = append(errs, fmt.Errorf("cluster_load_assignment %q: %w", r.GetName(), err))
				continue
			}
			clas = append(clas, cla)
		}
		errs = append(errs, c.applyEndpoints(ctx, clas))
		for _, n := range resp.GetRemovedResources() {
			// The clusters keep their hosts, as Envoy's EDS does when an
			// assignment is removed.
			delete(c.clas, n)
		}
	case TypeListener:
		next := maps.Clone(c.listeners)
		for _, r := range resp.GetResources() {
			l, err := decode(r.GetResource(), TypeListener, newListener)
			if err != nil {
				return fmt.Errorf("listener %q: %w", r.GetName(), err)
			}
			next[l.GetName()] = l
		}
		for _, n := range resp.GetRemovedResources() {
			delete(next, n)
		}
		errs = append(errs, c.applyListeners(ctx, next))
	case TypeSecret:
		errs = append(errs, c.applySecretsDelta(ctx, resp))
	case TypeRuntime:
		errs = append(errs, c.handleRuntime(resp))
	case TypeExtensionConfig:
		var tcs []*corev3.TypedExtensionConfig
		var versions []string
		for _, r := range resp.GetResources() {
			tc, err := decode(r.GetResource(), TypeExtensionConfig, newExtensionConfig)
			if err != nil {
				errs = append(errs, fmt.Errorf("extension_config %q: %w", r.GetName(), err))
				continue
			}
			tcs, versions = append(tcs, tc), append(versions, r.GetVersion())
		}
		errs = append(errs, c.applyExtensionConfigs(ctx, tcs, versions))
		c.ecdsRemoved(resp.GetRemovedResources())
	case TypeRoute:
		var rcs []*routev3.RouteConfiguration
		var versions []string
		for _, r := range resp.GetResources() {
			rc, err := decode(r.GetResource(), TypeRoute, newRouteConfig)
			if err != nil {
				errs = append(errs, fmt.Errorf("route_config %q: %w", r.GetName(), err))
				continue
			}
			rcs, versions = append(rcs, rc), append(versions, r.GetVersion())
		}
		errs = append(errs, c.applyRoutes(ctx, rcs, versions))
		for _, n := range resp.GetRemovedResources() {
			// Envoy ignores an RDS removal: the listeners keep the last
			// routes; a listener waiting for them stops waiting.
			if _, ok := c.rdsHeld[n]; ok {
				c.rdsAnswered[n] = true
				delete(c.rdsSince, n)
			}
			c.log.Info("route configuration removed by the control plane; keeping the last version", zap.String("route_config", n))
		}
	}
	return errors.Join(errs...)
}
