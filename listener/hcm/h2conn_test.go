package hcm

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.uber.org/zap"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/filterchain/router"
	"github.com/wasmesh/wasmesh/stats"
	"github.com/wasmesh/wasmesh/xds/bootstrap"
)

// TestH2Codec drives the HTTP/2 codec (cleartext, prior knowledge) with
// x/net's client: many concurrent streams on one connection, request and
// response bodies larger than the flow-control windows, and a stream the
// client cancels.
func TestH2Codec(t *testing.T) {
	f := newFixture(t, baseHCM)
	t.Run("concurrent streams", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := f.h2c.Get(f.url + "/many")
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.ProtoMajor != 2 || resp.StatusCode != 200 || !strings.Contains(string(b), "upstream GET /many") {
					errs <- &unexpected{resp.Proto, resp.StatusCode, string(b)}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	t.Run("bodies beyond the windows", func(t *testing.T) {
		big := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // 4.8 MB
		resp, err := f.h2c.Post(f.url+"/up", "application/octet-stream", bytes.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(b, big) {
			t.Fatalf("echo has %d bytes, want the %d sent at its end", len(b), len(big))
		}
	})
	t.Run("client cancel resets the stream and the upstream request", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url+"/hang", nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := f.h2c.Do(req)
			if err == nil {
				resp.Body.Close()
			}
		}()
		time.Sleep(100 * time.Millisecond)
		cancel()
		<-done
		select {
		case <-f.hangEnded:
		case <-time.After(10 * time.Second):
			t.Fatal("the upstream request was not cancelled after RST_STREAM")
		}
	})
	t.Run("HEAD and local replies", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodHead, f.url+"/direct", nil)
		resp, err := f.h2c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 418 || len(b) != 0 {
			t.Fatalf("HEAD: %d %q", resp.StatusCode, b)
		}
		resp, err = f.h2c.Get(f.url + "/direct")
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 418 || string(b) != "teapot" || resp.Header.Get("date") == "" || resp.Header.Get("server") == "" {
			t.Fatalf("GET: %d %q %v", resp.StatusCode, b, resp.Header)
		}
	})
}

type unexpected struct {
	proto  string
	status int
	body   string
}

func (u *unexpected) Error() string {
	return u.proto + " " + http.StatusText(u.status) + " " + u.body
}

// FuzzH2Conn feeds arbitrary frames to the HTTP/2 server after a valid
// preface and SETTINGS: whatever the peer sends, the connection must end
// (or keep serving) without a panic, and ServeConn must return once the
// peer is gone.
func FuzzH2Conn(f *testing.F) {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	var hb bytes.Buffer
	he := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{{":method", "GET"}, {":path", "/direct"}, {":scheme", "http"}, {":authority", "x"}} {
		_ = he.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	f.Add(append([]byte(nil), buf.Bytes()...))
	buf.Reset()
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: hb.Bytes(), EndHeaders: true})
	_ = fr.WriteData(3, false, []byte("hello"))
	_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
	_ = fr.WriteWindowUpdate(0, 1<<20)
	_ = fr.WritePing(false, [8]byte{1})
	_ = fr.WriteData(5, true, []byte("orphan"))
	f.Add(append([]byte(nil), buf.Bytes()...))
	f.Add([]byte{0, 0, 4, 1, 4, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 9, 0, 0, 0, 0, 1})

	m := fuzzManager(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		srv := m.NewH1Server(zap.NewNop())
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeConn(server)
		}()
		go io.Copy(io.Discard, client)
		var pre bytes.Buffer
		pre.WriteString(http2.ClientPreface)
		_ = http2.NewFramer(&pre, nil).WriteSettings()
		_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = client.Write(pre.Bytes())
		_, _ = client.Write(data)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("ServeConn did not return after the peer closed")
		}
		srv.Close()
	})
}

// fuzzManager compiles a connection manager with a direct response route
// and HTTP/2 as its only codec.
func fuzzManager(tb testing.TB) *Manager {
	tb.Helper()
	cfg := &hcmv3.HttpConnectionManager{}
	if err := bootstrap.Parse([]byte(benchHCM+"\ncodec_type: HTTP2\n"), cfg, false); err != nil {
		tb.Fatal(err)
	}
	reg := filterchain.NewRegistry()
	router.Register(reg)
	m, err := Compile(context.Background(), cfg, Deps{Logger: zap.NewNop(), Registry: reg, Stats: stats.New(stats.Options{}),
		Env: &filterchain.Env{Values: map[string]any{}}, ClusterExists: func(string) bool { return false }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Close)
	return m
}
