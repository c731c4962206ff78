package cluster

import (
	"syscall"
	"unsafe"
)

// socketPeeker looks at an idle connection's socket without blocking and
// without consuming anything: one recv(MSG_PEEK|MSG_DONTWAIT). Its callback
// is made once per connection, so a check allocates nothing.
type socketPeeker struct {
	rc  syscall.RawConn
	res int
	fn  func(uintptr) bool
}

func newSocketPeeker(rc syscall.RawConn) *socketPeeker {
	p := &socketPeeker{rc: rc}
	p.fn = p.peek
	return p
}

func (p *socketPeeker) peek(fd uintptr) bool {
	var b [1]byte
	for {
		n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			p.res = peekIdle
		case errno != 0 || n == 0:
			p.res = peekEnd
		default:
			p.res = peekData
		}
		return true
	}
}

func (p *socketPeeker) check() int {
	if err := p.rc.Read(p.fn); err != nil {
		return peekEnd
	}
	return p.res
}
