package client_test

import (
	"context"
	"net"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wasmesh/wasmesh/xds/client"
)

// scriptedADS answers one SotW stream with a fixed script, recording
// the requests.
type scriptedADS struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	script func(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error
}

func (a *scriptedADS) StreamAggregatedResources(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return a.script(s)
}

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestReorderedAndDuplicateResponses: endpoints arriving before their
// cluster are kept for it; a duplicate response changes nothing and is
// ACKed with the same version.
func TestReorderedAndDuplicateResponses(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	up := upstream(t, "x")
	cla := assignment(t, "backend", up)
	cl := edsCluster(t, "backend")
	acks := make(chan *discoveryv3.DiscoveryRequest, 16)
	ads := &scriptedADS{script: func(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
		recv := func() *discoveryv3.DiscoveryRequest {
			r, err := s.Recv()
			if err != nil {
				return nil
			}
			return r
		}
		if r := recv(); r == nil || r.GetTypeUrl() != client.TypeCluster {
			t.Errorf("first request %v, want CDS", r)
			return nil
		}
		steps := []*discoveryv3.DiscoveryResponse{
			{TypeUrl: client.TypeEndpoint, VersionInfo: "e1", Nonce: "n1", Resources: []*anypb.Any{anyOf(t, cla)}},
			{TypeUrl: client.TypeCluster, VersionInfo: "c1", Nonce: "n2", Resources: []*anypb.Any{anyOf(t, cl)}},
			{TypeUrl: client.TypeCluster, VersionInfo: "c1", Nonce: "n3", Resources: []*anypb.Any{anyOf(t, cl)}},
		}
		for _, st := range steps {
			if err := s.Send(st); err != nil {
				return err
			}
			for {
				r := recv()
				if r == nil {
					return nil
				}
				if r.GetResponseNonce() == st.GetNonce() {
					acks <- r
					break
				}
			}
		}
		<-s.Context().Done()
		return nil
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, ads)
	go g.Serve(ln)
	defer g.Stop()

	rec := &countingRecorder{}
	c := client.New(client.Config{Node: nodeProto(), Target: "passthrough:///" + ln.Addr().String(), LDSInitialFetchTimeout: -1}, rec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for i, want := range []string{"e1", "c1", "c1"} {
		select {
		case r := <-acks:
			if r.GetErrorDetail() != nil || r.GetVersionInfo() != want {
				t.Errorf("response %d: answered version %q error %v, want ACK of %s", i, r.GetVersionInfo(), r.GetErrorDetail(), want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer to response %d", i)
		}
	}
	rec.mu.Lock()
	adds := rec.adds
	rec.mu.Unlock()
	if adds != 1 || rec.endpoints("backend") != 1 {
		t.Errorf("AddCluster called %d times, backend has %d endpoints; want once with the early endpoints", adds, rec.endpoints("backend"))
	}
}

type countingRecorder struct {
	recorder
	adds int
}

func (r *countingRecorder) AddCluster(ctx context.Context, c *clusterv3.Cluster) error {
	r.mu.Lock()
	r.adds++
	r.mu.Unlock()
	return r.recorder.AddCluster(ctx, c)
}
