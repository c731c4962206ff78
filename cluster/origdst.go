package cluster

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// origDst is the host table of an ORIGINAL_DST cluster: a host per
// original destination, created on first use and dropped after a
// cleanup_interval without requests.
type origDst struct {
	c   *Cluster
	cfg *origDstSettings

	mu    sync.RWMutex
	hosts map[string]*Host
}

func (o *origDst) pick(lbc *LoadBalancerContext, req *http.Request) *Host {
	dst := lbc.OriginalDst
	if o.cfg.useHeader && req != nil {
		if v := req.Header.Get(o.cfg.header); v != "" {
			ap, err := netip.ParseAddrPort(v)
			if err != nil {
				return nil
			}
			dst = ap
		}
	}
	if !dst.IsValid() || dst.Port() == 0 && o.cfg.portOverride == 0 {
		return nil
	}
	if o.cfg.portOverride != 0 {
		dst = netip.AddrPortFrom(dst.Addr(), uint16(o.cfg.portOverride))
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	key := dst.String()
	o.mu.RLock()
	h := o.hosts[key]
	o.mu.RUnlock()
	if h != nil {
		return h
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if h = o.hosts[key]; h != nil {
		return h
	}
	s := hostSpec{network: "tcp", address: key, weight: 1}
	h = o.c.newHost(&s, s.key())
	o.hosts[key] = h
	o.c.stats.membershipChange().Inc()
	o.c.stats.membershipTotal().Set(uint64(len(o.hosts)))
	o.c.stats.membershipHealthy().Set(uint64(len(o.hosts)))
	return h
}

func (o *origDst) get(addr string) *Host {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.hosts[addr]
}

func (o *origDst) list() []*Host {
	o.mu.RLock()
	defer o.mu.RUnlock()
	out := make([]*Host, 0, len(o.hosts))
	for _, h := range o.hosts {
		out = append(out, h)
	}
	return out
}

func (o *origDst) cleanupLoop(ctx context.Context) {
	defer o.c.wg.Done()
	t := time.NewTicker(o.cfg.cleanup)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		o.sweep(o.c.m.opts.now())
	}
}

// sweep drops hosts unused for a cleanup interval and idle now.
func (o *origDst) sweep(now time.Time) {
	o.mu.Lock()
	var gone []*Host
	for k, h := range o.hosts {
		if now.Sub(time.Unix(0, h.lastUsed.Load())) >= o.cfg.cleanup && h.rqActive.Load() == 0 {
			delete(o.hosts, k)
			gone = append(gone, h)
		}
	}
	n := len(o.hosts)
	o.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	o.c.stats.membershipChange().Inc()
	o.c.stats.membershipTotal().Set(uint64(n))
	o.c.stats.membershipHealthy().Set(uint64(n))
	for _, h := range gone {
		h.removed.Store(true)
		if o.c.outlier != nil {
			o.c.outlier.remove(h)
		}
		o.c.conns.closeAll(h)
	}
}
