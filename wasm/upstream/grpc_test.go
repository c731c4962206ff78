package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/wasmesh/wasmesh/wasm"
)

// grpcBackend is a real grpc-go server with one generic handler:
//
//	/test.Echo/Unary   one message in, "echo:"+msg out; header x-md echoes
//	                   request metadata x-in, trailer x-tr: t
//	/test.Echo/Stream  echoes every message until the client half-closes
//	/test.Echo/Fail    PERMISSION_DENIED "nope", trailer x-tr: f
//	/test.Echo/Slow    waits for the client to go away
//	/test.Echo/Meta    replies with the request's :authority, x-data-bin
//	                   (echoed as a binary header) and peer address
type grpcBackend struct {
	addr     string
	canceled chan struct{}
	started  chan struct{}
	pool     *x509.CertPool
}

func newGRPCBackend(t *testing.T, useTLS bool) *grpcBackend {
	t.Helper()
	b := &grpcBackend{canceled: make(chan struct{}, 16), started: make(chan struct{}, 16)}
	opts := []grpc.ServerOption{grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(b.handle)}
	if useTLS {
		// Borrow httptest's certificate for example.com.
		hs := httptest.NewUnstartedServer(nil)
		hs.StartTLS()
		cert := hs.TLS.Certificates[0]
		b.pool = x509.NewCertPool()
		b.pool.AddCert(hs.Certificate())
		hs.Close()
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	}
	srv := grpc.NewServer(opts...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return b
}

func (b *grpcBackend) handle(_ any, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	md, _ := metadata.FromIncomingContext(ss.Context())
	switch method {
	case "/test.Echo/Unary":
		var msg []byte
		if err := ss.RecvMsg(&msg); err != nil {
			return err
		}
		_ = ss.SendHeader(metadata.Pairs("x-md", strings.Join(md.Get("x-in"), ",")))
		ss.SetTrailer(metadata.Pairs("x-tr", "t"))
		return ss.SendMsg(append([]byte("echo:"), msg...))
	case "/test.Echo/Stream":
		_ = ss.SendHeader(metadata.Pairs("x-md", "stream"))
		for {
			var msg []byte
			err := ss.RecvMsg(&msg)
			if errors.Is(err, io.EOF) {
				ss.SetTrailer(metadata.Pairs("x-tr", "done"))
				return nil
			}
			if err != nil {
				return err
			}
			if err := ss.SendMsg(append([]byte("echo:"), msg...)); err != nil {
				return err
			}
		}
	case "/test.Echo/Fail":
		ss.SetTrailer(metadata.Pairs("x-tr", "f"))
		return status.Error(codes.PermissionDenied, "nope")
	case "/test.Echo/Slow":
		b.started <- struct{}{}
		<-ss.Context().Done()
		b.canceled <- struct{}{}
		return ss.Context().Err()
	case "/test.Echo/Meta":
		var msg []byte
		if err := ss.RecvMsg(&msg); err != nil {
			return err
		}
		p, _ := peer.FromContext(ss.Context())
		_ = ss.SendHeader(metadata.Pairs("x-echo-bin", strings.Join(md.Get("x-data-bin"), ",")))
		reply := fmt.Sprintf("authority=%s peer=%s", strings.Join(md.Get(":authority"), ","), p.Addr)
		return ss.SendMsg([]byte(reply))
	}
	return status.Errorf(codes.Unimplemented, "no %s", method)
}

func (b *grpcBackend) cluster() Cluster {
	if b.pool != nil {
		return Cluster{Address: b.addr, Protocol: TLS, RootCAs: b.pool, ServerName: "example.com"}
	}
	return Cluster{Address: b.addr, Protocol: H2C}
}

// recorder renders a stream's handler events as text.
type recorder struct{ events chan string }

func newRecorder() *recorder { return &recorder{events: make(chan string, 64)} }

func (r *recorder) OnInitialMetadata(md []wasm.Field) { r.events <- "md " + render(md) }
func (r *recorder) OnMessage(msg []byte)              { r.events <- "msg " + string(msg) }
func (r *recorder) OnTrailingMetadata(md []wasm.Field) {
	// A trailers-only response carries content-type, which render drops.
	if s := render(md); s != "" {
		r.events <- "trailers " + s
	}
}
func (r *recorder) OnClose(code uint32, message string) {
	r.events <- fmt.Sprintf("close %d %s", code, message)
}

func render(fields []wasm.Field) string {
	var parts []string
	for _, f := range fields {
		if f.Key == "content-type" {
			continue
		}
		parts = append(parts, f.Key+"="+f.Value)
	}
	return strings.Join(parts, ";")
}

// until collects events up to and including the close.
func (r *recorder) untilClose(t *testing.T) []string {
	t.Helper()
	var got []string
	for {
		select {
		case e := <-r.events:
			got = append(got, e)
			if strings.HasPrefix(e, "close ") {
				return got
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no close; events so far %q", got)
		}
	}
}

func (r *recorder) next(t *testing.T) string {
	t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return ""
}

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

func TestGRPCUnary(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			b := newGRPCBackend(t, useTLS)
			s := newStatic(t, Config{Clusters: map[string]Cluster{"grpc": b.cluster()}})
			r := newRecorder()
			st, err := s.GRPCStream(context.Background(), "grpc", "test.Echo", "Unary",
				[]wasm.Field{{Key: "x-in", Value: "v1"}}, 5*time.Second, r)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Send([]byte("hi"), true); err != nil {
				t.Fatal(err)
			}
			want := []string{"md x-md=v1", "msg echo:hi", "trailers x-tr=t", "close 0 "}
			if got := r.untilClose(t); !equal(got, want) {
				t.Errorf("events\n%q\nwant\n%q", got, want)
			}
			if err := st.Send([]byte("late"), false); err == nil {
				t.Error("Send after end of stream accepted")
			}
		})
	}
}

func TestGRPCStreaming(t *testing.T) {
	b := newGRPCBackend(t, false)
	s := newStatic(t, Config{Clusters: map[string]Cluster{"grpc": b.cluster()}})
	r := newRecorder()
	st, err := s.GRPCStream(context.Background(), "grpc", "test.Echo", "Stream", nil, 0, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send([]byte("a"), false); err != nil {
		t.Fatal(err)
	}
	if got := r.next(t); got != "md x-md=stream" {
		t.Fatalf("first event %q", got)
	}
	if got := r.next(t); got != "msg echo:a" {
		t.Fatalf("event %q", got)
	}
	// Messages sent after a reply arrive in order.
	for _, m := range []string{"b", "c"} {
		if err := st.Send([]byte(m), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	want := []string{"msg echo:b", "msg echo:c", "trailers x-tr=done", "close 0 "}
	if got := r.untilClose(t); !equal(got, want) {
		t.Errorf("events\n%q\nwant\n%q", got, want)
	}
}

func TestGRPCFailures(t *testing.T) {
	b := newGRPCBackend(t, false)
	s := newStatic(t, Config{Clusters: map[string]Cluster{
		"grpc":    b.cluster(),
		"refused": {Address: closedPort(t), Protocol: H2C},
	}})
	for _, tc := range []struct {
		name, cluster, method string
		timeout               time.Duration
		want                  []string
	}{
		{"error status", "grpc", "Fail", 0, []string{"trailers x-tr=f", "close 7 nope"}},
		{"unknown method", "grpc", "Nope", 0, []string{"close 12 no /test.Echo/Nope"}},
		{"deadline", "grpc", "Slow", 50 * time.Millisecond, []string{"close 4 context deadline exceeded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecorder()
			st, err := s.GRPCStream(context.Background(), tc.cluster, "test.Echo", tc.method, nil, tc.timeout, r)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Send([]byte("x"), true); err != nil {
				t.Fatal(err)
			}
			if got := r.untilClose(t); !equal(got, tc.want) {
				t.Errorf("events\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		r := newRecorder()
		st, err := s.GRPCStream(context.Background(), "refused", "test.Echo", "Unary", nil, 0, r)
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Send([]byte("x"), true)
		got := r.untilClose(t)
		if len(got) != 1 || !strings.HasPrefix(got[0], fmt.Sprintf("close %d ", codes.Unavailable)) {
			t.Errorf("events %q, want one UNAVAILABLE close", got)
		}
	})
	t.Run("unknown cluster", func(t *testing.T) {
		if _, err := s.GRPCStream(context.Background(), "nope", "s", "m", nil, 0, newRecorder()); !errors.Is(err, wasm.ErrUnknownCluster) {
			t.Errorf("err %v", err)
		}
	})
}

func TestGRPCCancel(t *testing.T) {
	b := newGRPCBackend(t, false)
	s := newStatic(t, Config{Clusters: map[string]Cluster{"grpc": b.cluster()}})
	r := newRecorder()
	st, err := s.GRPCStream(context.Background(), "grpc", "test.Echo", "Slow", nil, 0, r)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Send([]byte("x"), false)
	select {
	case <-b.started:
	case <-time.After(5 * time.Second):
		t.Fatal("call never reached the server")
	}
	st.Cancel()
	select {
	case <-b.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("server did not see the cancellation")
	}
	if err := st.Send([]byte("y"), false); err == nil {
		t.Error("Send after Cancel accepted")
	}
	// Close waits for the stream's goroutines; after it no event can come.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-r.events:
		t.Errorf("event after Cancel: %q", e)
	default:
	}
}

func TestGRPCMetadataAndReuse(t *testing.T) {
	b := newGRPCBackend(t, false)
	s := newStatic(t, Config{Clusters: map[string]Cluster{"grpc": b.cluster()}})
	var peers []string
	for i := 0; i < 2; i++ {
		r := newRecorder()
		md := []wasm.Field{
			{Key: ":authority", Value: "svc.internal"},
			{Key: ":path", Value: "/ignored"},
			{Key: "x-data-bin", Value: "AAEC"}, // base64 of 00 01 02
		}
		st, err := s.GRPCStream(context.Background(), "grpc", "test.Echo", "Meta", md, time.Second, r)
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Send(nil, true)
		got := r.untilClose(t)
		if len(got) != 3 || got[0] != "md x-echo-bin=AAEC" || got[2] != "close 0 " {
			t.Fatalf("events %q", got)
		}
		msg := strings.TrimPrefix(got[1], "msg ")
		if !strings.HasPrefix(msg, "authority=svc.internal peer=") {
			t.Errorf("reply %q", msg)
		}
		peers = append(peers, strings.TrimPrefix(msg, "authority=svc.internal peer="))
	}
	if peers[0] != peers[1] {
		t.Errorf("two calls used two connections: %v", peers)
	}
}
