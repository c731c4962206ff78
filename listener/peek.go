package listener

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmesh/wasmesh/listener/hcm"
)

// conn is an accepted connection: listener filters peek at its first
// bytes without consuming them (they are read again by whoever serves
// the connection), and it carries the connection's facts to the chain.
// Its Close runs once and updates the listener's books.
type conn struct {
	net.Conn
	// buf holds bytes peeked and not yet read.
	buf []byte

	info    hcm.ConnInfo
	sni     string
	alpn    []string
	proto   string // detected transport protocol
	restore bool   // original destination recovered

	start     time.Time
	owner     atomic.Pointer[Listener]
	closeOnce sync.Once
}

func (c *conn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// peek reads until at least n bytes are buffered.
func (c *conn) peek(n int) ([]byte, error) {
	for len(c.buf) < n {
		if err := c.readMore(n - len(c.buf)); err != nil {
			return c.buf, err
		}
	}
	return c.buf, nil
}

// readMore does one read of up to min(want, 4 KiB)-or-more bytes and
// appends it to the buffer.
func (c *conn) readMore(want int) error {
	if want < 1024 {
		want = 1024
	}
	if cap(c.buf)-len(c.buf) < want {
		nb := make([]byte, len(c.buf), len(c.buf)+want)
		copy(nb, c.buf)
		c.buf = nb
	}
	n, err := c.Conn.Read(c.buf[len(c.buf):cap(c.buf)])
	c.buf = c.buf[:len(c.buf)+n]
	if n > 0 {
		return nil
	}
	return err
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if l := c.owner.Load(); l != nil {
			l.connClosed(c)
		}
	})
	return err
}

// CloseWrite half-closes the connection (TCP FIN).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (c *conn) setDeadline(d time.Duration) {
	if d <= 0 {
		_ = c.Conn.SetReadDeadline(time.Time{})
		return
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(d))
}
