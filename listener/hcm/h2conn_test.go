package hcm

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
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
