//go:build !linux

package cluster

import "syscall"

// replyWriter writes as the connection does: waiting for the reply from
// inside RawConn.Read is only done on Linux.
type replyWriter struct {
	tc    *trackedConn
	armed bool
}

func newReplyWriter(tc *trackedConn, _ syscall.RawConn) *replyWriter { return &replyWriter{tc: tc} }

func (w *replyWriter) Write(p []byte) (int, error) {
	w.armed = false
	return w.tc.Write(p)
}
