package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// txStats counts upstream_cx_tx_bytes_total and drops the rest.
type txStats struct{ tx atomic.Uint64 }

type txCounter struct{ s *txStats }

func (c txCounter) Inc()         {}
func (c txCounter) Add(n uint64) { c.s.tx.Add(n) }

type nopStat struct{}

func (nopStat) Inc()       {}
func (nopStat) Dec()       {}
func (nopStat) Add(uint64) {}
func (nopStat) Sub(uint64) {}
func (nopStat) Set(uint64) {}

func (s *txStats) Counter(name string) Counter {
	if name == "cluster.rw.upstream_cx_tx_bytes_total" {
		return txCounter{s}
	}
	return nopStat{}
}
func (s *txStats) Gauge(string) Gauge { return nopStat{} }

// replyPair is a replyWriter over a tracked client connection and the
// server end of it.
func replyPair(t *testing.T) (*replyWriter, *trackedConn, net.Conn, *txStats) {
	t.Helper()
	st := &txStats{}
	m := NewManager(context.Background(), Options{Stats: st})
	t.Cleanup(func() { m.Close() })
	if err := m.Add(context.Background(), h1ClusterConfig(t, "rw", "127.0.0.1:1", 0)); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tc := m.Get("rw").track(raw, nil)
	t.Cleanup(func() { tc.Close(); srv.Close() })
	rc := rawConnOf(tc)
	if rc == nil {
		t.Fatal("no RawConn on a TCP connection")
	}
	return newReplyWriter(tc, rc), tc, srv, st
}

func TestReplyWriter(t *testing.T) {
	req := []byte("GET / HTTP/1.1\r\nhost: x\r\n\r\n")
	t.Run("armed write returns once the reply is readable", func(t *testing.T) {
		w, tc, srv, st := replyPair(t)
		const delay = 50 * time.Millisecond
		go func() {
			buf := make([]byte, len(req))
			io.ReadFull(srv, buf)
			time.Sleep(delay)
			srv.Write([]byte("reply"))
		}()
		w.armed = true
		start := time.Now()
		n, err := w.Write(req)
		if err != nil || n != len(req) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if el := time.Since(start); el < delay {
			t.Fatalf("returned after %v, before the reply was sent (%v)", el, delay)
		}
		if w.armed {
			t.Fatal("still armed after a write")
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(tc, buf); err != nil || string(buf) != "reply" {
			t.Fatalf("read %q, %v", buf, err)
		}
		if got := st.tx.Load(); got != uint64(len(req)) {
			t.Fatalf("tx bytes %d, want %d", got, len(req))
		}
	})
	t.Run("full socket buffer falls back to a blocking write", func(t *testing.T) {
		w, tc, srv, st := replyPair(t)
		// Fill the socket's buffers until a non-blocking write is
		// refused: the server does not read yet.
		chunk := make([]byte, 64<<10)
		var filled int
		if err := rawConnOf(tc).Write(func(fd uintptr) bool {
			for {
				n, err := syscall.Write(int(fd), chunk)
				if n > 0 {
					filled += n
				}
				if err != nil {
					return true
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		got := make(chan int, 1)
		go func() {
			n, _ := io.Copy(io.Discard, io.LimitReader(srv, int64(filled+len(req))))
			got <- int(n)
			srv.Write([]byte("reply"))
		}()
		w.armed = true
		n, err := w.Write(req)
		if err != nil || n != len(req) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if n := <-got; n != filled+len(req) {
			t.Fatalf("server read %d bytes, want %d", n, filled+len(req))
		}
		// The fill went around the tracked connection: only the
		// request's bytes are counted.
		if got := st.tx.Load(); got != uint64(len(req)) {
			t.Fatalf("tx bytes %d, want %d", got, len(req))
		}
	})
	t.Run("expired read deadline writes without waiting", func(t *testing.T) {
		w, tc, srv, _ := replyPair(t)
		_ = tc.SetReadDeadline(aLongTimeAgo)
		w.armed = true
		n, err := w.Write(req)
		if err != nil || n != len(req) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		buf := make([]byte, len(req))
		_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(srv, buf); err != nil || string(buf) != string(req) {
			t.Fatalf("server read %q, %v", buf, err)
		}
	})
	t.Run("peer gone: the write error is the write's", func(t *testing.T) {
		w, _, srv, _ := replyPair(t)
		srv.(*net.TCPConn).SetLinger(0)
		srv.Close() // RST
		time.Sleep(20 * time.Millisecond)
		w.armed = true
		_, err := w.Write(req)
		// The first write after a reset may still succeed (the RST
		// arrives in reply); the wait then ends with the socket
		// readable, and a second write fails.
		if err == nil {
			_, err = w.Write(req)
		}
		var ne *net.OpError
		if !errors.As(err, &ne) || ne.Op != "write" {
			t.Fatalf("err %v, want a write *net.OpError", err)
		}
	})
}
