package cluster

import (
	"net"
	"os"
	"syscall"
)

// replyWriter is what a pool connection's buffered writer flushes into.
// Armed (by exchange, for the flush that completes a request with nothing
// left to send), a flush writes the bytes itself from inside the
// connection's RawConn.Read and then parks until the socket is readable,
// so the reader that follows finds the reply there instead of first
// reading nothing (EAGAIN) and parking: one system call less per request.
// RawConn.Read clears the poller's "readable" mark before the callback
// runs; the bytes are written after that, so the reply they cause always
// marks the socket readable again and the wait cannot miss it.
//
// Unarmed, or when the socket cannot take all of the bytes at once, or
// when the connection's read side cannot wait (a read deadline already
// passed), it writes as the connection always does. A wait that ends in
// an error (deadline, close) is not the write's: the read that follows
// sees the same condition and reports it.
type replyWriter struct {
	tc    *trackedConn
	rc    syscall.RawConn
	armed bool

	// Per flush, read by the callback (made once, so a flush allocates
	// nothing).
	p       []byte
	written int
	werr    error
	fn      func(uintptr) bool
}

func newReplyWriter(tc *trackedConn, rc syscall.RawConn) *replyWriter {
	w := &replyWriter{tc: tc, rc: rc}
	w.fn = w.writeThenWait
	return w
}

// writeThenWait is the RawConn.Read callback: the first call writes, the
// next (the socket became readable) ends the wait.
func (w *replyWriter) writeThenWait(fd uintptr) bool {
	if w.p == nil {
		return true
	}
	for w.written < len(w.p) {
		n, err := syscall.Write(int(fd), w.p[w.written:])
		if n > 0 {
			w.written += n
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			if err != syscall.EAGAIN {
				w.werr = err
			}
			w.p = nil
			return true
		}
	}
	w.p = nil
	return false
}

func (w *replyWriter) Write(p []byte) (int, error) {
	if !w.armed || len(p) == 0 {
		return w.tc.Write(p)
	}
	w.armed = false
	w.p, w.written, w.werr = p, 0, nil
	_ = w.rc.Read(w.fn)
	w.p = nil
	written := w.written
	if written > 0 {
		w.tc.c.stats.cxTxBytes().Add(uint64(written))
	}
	if w.werr != nil {
		return written, &net.OpError{Op: "write", Net: w.tc.LocalAddr().Network(), Source: w.tc.LocalAddr(), Addr: w.tc.RemoteAddr(), Err: os.NewSyscallError("write", w.werr)}
	}
	if written < len(p) {
		// The socket's buffer was full, or the read side could not
		// wait: the rest goes the ordinary way.
		n, err := w.tc.Write(p[written:])
		return written + n, err
	}
	return len(p), nil
}
