package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// healthServer is a gRPC service with unary and server-streaming calls
// that set custom headers and trailers: Check("fail") answers
// PERMISSION_DENIED; Watch sends three messages.
type healthServer struct {
	healthpb.UnimplementedHealthServer
}

func (healthServer) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	grpc.SetHeader(ctx, metadata.Pairs("x-custom-header", "unary", "x-saw-authority", first(md[":authority"])))
	if req.GetService() == "fail" {
		grpc.SetTrailer(ctx, metadata.Pairs("x-custom-trailer", "failed"))
		return nil, status.Error(codes.PermissionDenied, "denied on purpose")
	}
	grpc.SetTrailer(ctx, metadata.Pairs("x-custom-trailer", "unary-done"))
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (healthServer) Watch(req *healthpb.HealthCheckRequest, st grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	for _, s := range []healthpb.HealthCheckResponse_ServingStatus{
		healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_SERVICE_UNKNOWN,
	} {
		if err := st.Send(&healthpb.HealthCheckResponse{Status: s}); err != nil {
			return err
		}
	}
	st.SetTrailer(metadata.Pairs("x-custom-trailer", "stream-done"))
	return nil
}

func first(v []string) string {
	if len(v) > 0 {
		return v[0]
	}
	return ""
}

func startGRPCUpstream(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, healthServer{})
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return l.Addr().(*net.TCPAddr).Port
}

// TestGRPC: unary and server-streaming calls through the proxy with
// grpc-go on both sides; headers and trailers (grpc-status and custom
// metadata) arrive; an error status passes through; a local reply for a
// gRPC request is a gRPC status (UNAVAILABLE); the grpc route matcher
// leaves non-gRPC requests alone.
func TestGRPC(t *testing.T) {
	t.Parallel()
	p := startProxy(t, "grpc.yaml", vars{"Up": startGRPCUpstream(t), "Dead": closedPort(t)})
	cc, err := grpc.NewClient(p.addr("grpc"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("unary", func(t *testing.T) {
		var hdr, trl metadata.MD
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr), grpc.Trailer(&trl))
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("status %v", resp.GetStatus())
		}
		if first(hdr["x-custom-header"]) != "unary" {
			t.Errorf("headers %v", hdr)
		}
		if first(trl["x-custom-trailer"]) != "unary-done" {
			t.Errorf("trailers %v", trl)
		}
	})
	t.Run("error-status", func(t *testing.T) {
		var trl metadata.MD
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "fail"}, grpc.Trailer(&trl))
		st, _ := status.FromError(err)
		if st.Code() != codes.PermissionDenied || st.Message() != "denied on purpose" {
			t.Fatalf("error %v", err)
		}
		if first(trl["x-custom-trailer"]) != "failed" {
			t.Errorf("trailers %v", trl)
		}
	})
	t.Run("server-streaming", func(t *testing.T) {
		st, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var got []healthpb.HealthCheckResponse_ServingStatus
		for {
			m, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("after %v: %v", got, err)
			}
			got = append(got, m.GetStatus())
		}
		if len(got) != 3 || got[1] != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("messages %v", got)
		}
		if first(st.Trailer()["x-custom-trailer"]) != "stream-done" {
			t.Errorf("trailers %v", st.Trailer())
		}
	})
	t.Run("local-reply-unavailable", func(t *testing.T) {
		_, err := client.Check(metadata.AppendToOutgoingContext(ctx, "x-route", "dead"), &healthpb.HealthCheckRequest{})
		if st, _ := status.FromError(err); st.Code() != codes.Unavailable {
			t.Fatalf("error %v, want UNAVAILABLE", err)
		}
	})
	t.Run("grpc-match-only-grpc", func(t *testing.T) {
		resp, body := do(t, h2cClient(), mustReq(t, "POST", p.url("grpc", "/grpc.health.v1.Health/Check"), nil))
		if resp.StatusCode != http.StatusNotFound || body != "not grpc" {
			t.Fatalf("non-gRPC request: %d %q", resp.StatusCode, body)
		}
	})
}
