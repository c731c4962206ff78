package network

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// readChunk is how much one read takes from a socket.
const readChunk = 32 << 10

// defaultBufferLimit is Envoy's per_connection_buffer_limit_bytes default.
const defaultBufferLimit = 1 << 20

// closeFlushTimeout bounds how long Close waits for queued bytes to be
// written before it closes the sockets.
const closeFlushTimeout = 10 * time.Second

// Conn is one downstream connection running through a Chain. Filters reach
// it to resume a paused direction, close the connection, or (terminals)
// write to the downstream.
type Conn struct {
	// Info are the connection's facts.
	Info Info

	ch   *Chain
	log  *zap.Logger
	ctx  context.Context
	down net.Conn
	up   net.Conn
	ups  atomic.Pointer[Upstream]

	// mu serialises filter callbacks and the filter buffers, as Envoy's
	// single worker thread per connection does.
	mu        sync.Mutex
	filters   []Filter
	inited    int  // filters whose OnNewConnection has run
	ncPaused  bool // a filter stopped the new connection
	ready     chan struct{}
	readyOnce sync.Once
	rbuf      []byte
	rEOS      bool
	rSent     bool // end of stream passed to the terminal
	rPausedAt int
	wbuf      []byte
	wEOS      bool
	wSent     bool
	wPausedAt int
	destroyed bool

	evMu     sync.Mutex
	pending  [2]bool
	hasEv    atomic.Bool
	closeReq atomic.Bool

	toUp, toDown *queue
	limit        int

	wake    chan struct{}
	downEOF atomic.Bool // downstream sent its end (or failed)
	upEOF   atomic.Bool
	failed  atomic.Bool // a socket error: tear down at once
	// downRemote and upRemote are set when that side ended by itself (end
	// of stream or a socket error); local when the session ended for its
	// own reasons (Close, idle timeout, shutdown).
	downRemote atomic.Bool
	upRemote   atomic.Bool
	local      atomic.Bool
	rDone      atomic.Bool // the downstream's end went through the read filters
	wDone      atomic.Bool
	lastData   atomic.Int64
	start      time.Time
}

// Logger is the connection's logger.
func (c *Conn) Logger() *zap.Logger { return c.log }

// Context is done when the connection is being torn down.
func (c *Conn) Context() context.Context { return c.ctx }

// Downstream is the downstream socket (after TLS termination). Filters
// must not read from it; it is here for its addresses and TLS state.
func (c *Conn) Downstream() net.Conn { return c.down }

// Continue resumes a direction a filter stopped. It may be called from any
// goroutine, also from inside a filter callback.
func (c *Conn) Continue(d Direction) {
	c.evMu.Lock()
	c.pending[d] = true
	c.evMu.Unlock()
	c.hasEv.Store(true)
	c.kick()
}

// Close closes the connection after the bytes already queued for the
// downstream are written (Envoy's FlushWrite close). It may be called from
// any goroutine, also from inside a filter callback.
func (c *Conn) Close() {
	c.closeReq.Store(true)
	c.signal()
}

// WriteDownstream sends b to the downstream through the write filters;
// endStream half-closes the downstream after it. Terminals that answer by
// themselves (direct_response) use it.
func (c *Conn) WriteDownstream(b []byte, endStream bool) {
	c.onWrite(b, endStream)
}

func (c *Conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Conn) touch() { c.lastData.Store(int64(time.Since(c.start))) }

// lock and unlock wrap the filter lock: whoever holds it delivers the
// Continue events that arrived meanwhile (also those raised from inside
// the holder's own callbacks) before it lets go, then writes what the
// filters produced, outside the lock.
func (c *Conn) lock() { c.mu.Lock() }

func (c *Conn) unlock() {
	for {
		c.drainEventsLocked()
		c.mu.Unlock()
		c.toUp.flush()
		c.toDown.flush()
		if !c.hasEv.Load() || !c.mu.TryLock() {
			return
		}
	}
}

// kick processes pending events unless another goroutine holds the lock
// (it will process them before releasing it).
func (c *Conn) kick() {
	if c.mu.TryLock() {
		c.unlock()
	}
}

func (c *Conn) drainEventsLocked() {
	for c.hasEv.Load() {
		c.evMu.Lock()
		p := c.pending
		c.pending = [2]bool{}
		c.hasEv.Store(false)
		c.evMu.Unlock()
		if c.destroyed {
			continue
		}
		if p[Read] {
			switch {
			case c.ncPaused:
				c.ncPaused = false
				if c.startFiltersLocked(c.inited) {
					c.readyOnce.Do(func() { close(c.ready) })
				}
			case c.rPausedAt >= 0:
				from := c.rPausedAt + 1
				c.rPausedAt = -1
				c.iterateReadLocked(from)
			}
		}
		if p[Write] && c.wPausedAt >= 0 {
			from := c.wPausedAt - 1
			c.wPausedAt = -1
			c.iterateWriteLocked(from)
		}
	}
}

// startFiltersLocked runs OnNewConnection from filter i on; false when a
// filter stopped.
func (c *Conn) startFiltersLocked(i int) bool {
	for ; i < len(c.filters); i++ {
		st := c.filters[i].OnNewConnection()
		c.inited = i + 1
		if st == StopIteration {
			c.ncPaused = true
			return false
		}
	}
	return true
}

func (c *Conn) onRead(b []byte, eos bool) {
	c.lock()
	if !c.destroyed {
		c.rbuf = append(c.rbuf, b...)
		if eos {
			c.rEOS = true
		}
		c.iterateReadLocked(0)
	}
	c.unlock()
}

func (c *Conn) iterateReadLocked(from int) {
	if c.ncPaused || c.rSent || (len(c.rbuf) == 0 && !c.rEOS) {
		return
	}
	for i := from; i < len(c.filters); i++ {
		out, st := c.filters[i].OnDownstreamData(c.rbuf, c.rEOS)
		c.rbuf = out
		if st == StopIteration {
			c.rPausedAt = i
			return
		}
		if c.destroyed {
			return
		}
	}
	c.rPausedAt = -1
	if c.up != nil {
		c.toUp.push(c.rbuf, c.rEOS)
	}
	if c.rEOS {
		c.rSent = true
		c.rDone.Store(true)
	}
	c.rbuf = nil
}

func (c *Conn) onWrite(b []byte, eos bool) {
	c.lock()
	if !c.destroyed {
		c.wbuf = append(c.wbuf, b...)
		if eos {
			c.wEOS = true
		}
		c.iterateWriteLocked(len(c.filters) - 1)
	}
	c.unlock()
}

func (c *Conn) iterateWriteLocked(from int) {
	if c.wSent || (len(c.wbuf) == 0 && !c.wEOS) {
		return
	}
	for i := from; i >= 0; i-- {
		out, st := c.filters[i].OnUpstreamData(c.wbuf, c.wEOS)
		c.wbuf = out
		if st == StopIteration {
			c.wPausedAt = i
			return
		}
		if c.destroyed {
			return
		}
	}
	c.wPausedAt = -1
	c.toDown.push(c.wbuf, c.wEOS)
	if c.wEOS {
		c.wSent = true
		c.wDone.Store(true)
	}
	c.wbuf = nil
}

// Serve runs the connection through the chain until both sides are done,
// a filter or the terminal closes it, it idles out, or ctx is done. It
// closes down.
func (ch *Chain) Serve(ctx context.Context, down net.Conn, info Info) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	limit := ch.BufferLimit
	if limit <= 0 {
		limit = defaultBufferLimit
	}
	c := &Conn{
		Info: info, ch: ch, ctx: ctx, down: down, limit: limit,
		log:       ch.Logger.With(zap.Uint64("connection_id", info.ID)),
		ready:     make(chan struct{}),
		wake:      make(chan struct{}, 1),
		rPausedAt: -1, wPausedAt: -1,
		start: time.Now(),
	}
	c.toDown = newQueue(c, down, true)
	c.toUp = newQueue(c, nil, false)
	c.filters = make([]Filter, len(ch.Filters))
	for i, f := range ch.Filters {
		c.filters[i] = f.NewFilter(c)
	}
	var wg sync.WaitGroup
	defer func() {
		c.teardown()
		wg.Wait()
	}()

	c.lock()
	if c.startFiltersLocked(0) {
		c.readyOnce.Do(func() { close(c.ready) })
	}
	c.unlock()
wait:
	for {
		select {
		case <-c.ready:
			break wait
		case <-ctx.Done():
			return
		case <-c.wake:
			if c.closeReq.Load() {
				return
			}
		}
	}
	if c.closeReq.Load() {
		return
	}
	ups, err := ch.Terminal.Open(ctx, c)
	if err != nil {
		c.log.Debug("network filter chain: terminal failed", zap.Error(err))
		c.local.Store(true)
		return
	}
	c.touch()
	if ups != nil {
		c.ups.Store(ups)
		c.mu.Lock()
		c.up = ups.Conn
		c.mu.Unlock()
		c.toUp.setDst(ups.Conn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.readLoop(ups.Conn, Write)
		}()
	} else {
		c.upEOF.Store(true)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.readLoop(down, Read)
	}()

	var idle <-chan time.Time
	var timeout time.Duration
	var timer *time.Timer
	if ups != nil && ups.IdleTimeout > 0 {
		timeout = ups.IdleTimeout
		timer = time.NewTimer(timeout)
		defer timer.Stop()
		idle = timer.C
	}
	for {
		if c.finished() {
			return
		}
		select {
		case <-ctx.Done():
			c.local.Store(true)
			return
		case <-c.wake:
		case <-idle:
			since := time.Duration(int64(time.Since(c.start)) - c.lastData.Load())
			if since >= timeout {
				if ups.Stats != nil && ups.Stats.IdleTimeout != nil {
					ups.Stats.IdleTimeout.Inc()
				}
				c.log.Debug("tcp proxy idle timeout", zap.Duration("idle_timeout", timeout))
				c.local.Store(true)
				return
			}
			timer.Reset(timeout - since)
		}
	}
}

// finished reports whether the session should end now. A Close request
// waits for the queued downstream bytes first.
func (c *Conn) finished() bool {
	if c.failed.Load() {
		return true
	}
	if c.closeReq.Load() {
		c.local.Store(true)
		if c.toDown.idle() {
			return true
		}
		c.toDown.deadlineOnce(closeFlushTimeout)
		return false
	}
	return c.downEOF.Load() && c.upEOF.Load() && c.rDone.Load() && c.wDone.Load() && c.toUp.idle() && c.toDown.idle()
}

func (c *Conn) readLoop(src net.Conn, d Direction) {
	buf := make([]byte, readChunk)
	q := c.toUp
	if d == Write {
		q = c.toDown
	}
	for {
		n, err := src.Read(buf)
		if n > 0 {
			c.touch()
			if d == Read {
				if s := c.ups.Load(); s != nil && s.Stats != nil && s.Stats.RxBytes != nil {
					s.Stats.RxBytes.Add(uint64(n))
				}
				c.onRead(buf[:n], false)
			} else {
				c.onWrite(buf[:n], false)
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if d == Read {
					if s := c.ups.Load(); s != nil && s.Stats != nil && s.Stats.UpstreamFlush != nil && !c.toUp.idle() {
						s.Stats.UpstreamFlush.Inc()
					}
					c.onRead(nil, true)
				} else {
					c.onWrite(nil, true)
				}
			} else {
				c.failed.Store(true)
			}
			if d == Read {
				c.downRemote.Store(true)
				c.downEOF.Store(true)
			} else {
				c.upRemote.Store(true)
				c.upEOF.Store(true)
			}
			c.signal()
			return
		}
		if !q.waitBelow(c.limit) {
			return
		}
	}
}

// teardown closes both sockets and tells the filters how each side ended.
func (c *Conn) teardown() {
	downPeer, upPeer := PeerLocal, PeerLocal
	if !c.local.Load() {
		if c.downRemote.Load() {
			downPeer = PeerRemote
		}
		if c.upRemote.Load() {
			upPeer = PeerRemote
		}
	}
	c.toUp.close()
	c.toDown.close()
	c.down.Close()
	if c.up != nil {
		c.up.Close()
	}
	c.mu.Lock()
	c.destroyed = true
	hadUp := c.up != nil
	for _, f := range c.filters {
		f.OnDownstreamClose(downPeer)
		if hadUp {
			f.OnUpstreamClose(upPeer)
		}
	}
	for _, f := range c.filters {
		f.OnDestroy()
	}
	c.mu.Unlock()
}

// queue is one direction's bytes waiting to be written, in order. Whoever
// pushes writes (flush) unless another goroutine already is.
type queue struct {
	c       *Conn
	mu      sync.Mutex
	cond    *sync.Cond
	dst     net.Conn
	toDown  bool
	bufs    [][]byte
	size    int
	eos     bool
	eosDone bool
	writing bool
	closed  bool
	dlSet   bool
}

func newQueue(c *Conn, dst net.Conn, toDown bool) *queue {
	q := &queue{c: c, dst: dst, toDown: toDown}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) setDst(dst net.Conn) {
	q.mu.Lock()
	q.dst = dst
	q.mu.Unlock()
}

func (q *queue) push(b []byte, eos bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.eos {
		return
	}
	if len(b) > 0 {
		q.bufs = append(q.bufs, append([]byte(nil), b...))
		q.size += len(b)
	}
	if eos {
		q.eos = true
	}
}

// flush writes what is queued unless someone else is writing already.
func (q *queue) flush() {
	q.mu.Lock()
	if q.writing || q.closed || q.dst == nil {
		q.mu.Unlock()
		return
	}
	q.writing = true
	for !q.closed {
		if len(q.bufs) == 0 {
			if q.eos && !q.eosDone {
				q.eosDone = true
				dst := q.dst
				q.mu.Unlock()
				closeWrite(dst)
				q.mu.Lock()
			}
			break
		}
		b := q.bufs[0]
		q.bufs[0] = nil
		q.bufs = q.bufs[1:]
		dst := q.dst
		q.mu.Unlock()
		n, err := dst.Write(b)
		if q.toDown && n > 0 {
			if s := q.c.ups.Load(); s != nil && s.Stats != nil && s.Stats.TxBytes != nil {
				s.Stats.TxBytes.Add(uint64(n))
			}
		}
		q.c.touch()
		q.mu.Lock()
		q.size -= len(b)
		q.cond.Broadcast()
		if err != nil {
			q.closed = true
			if q.toDown {
				q.c.downRemote.Store(true)
			} else {
				q.c.upRemote.Store(true)
			}
			q.c.failed.Store(true)
			break
		}
	}
	q.writing = false
	q.cond.Broadcast()
	q.mu.Unlock()
	q.c.signal()
}

// waitBelow blocks while more than limit bytes are queued; false once the
// queue is closed.
func (q *queue) waitBelow(limit int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.size > limit && !q.closed {
		q.cond.Wait()
	}
	return !q.closed
}

// idle reports whether nothing is queued or being written (and a queued
// end of stream has been delivered).
func (q *queue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed || (len(q.bufs) == 0 && !q.writing && (!q.eos || q.eosDone || q.dst == nil))
}

// deadlineOnce bounds the remaining writes (a closing connection's flush).
func (q *queue) deadlineOnce(d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dlSet || q.dst == nil {
		return
	}
	q.dlSet = true
	_ = q.dst.SetWriteDeadline(time.Now().Add(d))
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.bufs = nil
	q.size = 0
	q.cond.Broadcast()
	q.mu.Unlock()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}
