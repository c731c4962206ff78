package cluster

import (
	"net"
	"net/netip"
	"slices"
	"time"

	"go.uber.org/zap"
)

// dnsTarget is one endpoint of a STRICT_DNS or LOGICAL_DNS cluster and
// what its name resolved to last.
type dnsTarget struct {
	spec  hostSpec
	addrs []netip.Addr
	ok    bool // resolved at least once
}

// startDNS resolves every endpoint on its own goroutine; each first round,
// successful or not, releases one warming condition (Envoy's initial
// resolution).
func (c *Cluster) startDNS() {
	a := c.cfg.assignment
	if a == nil {
		return
	}
	targets := make([]*dnsTarget, len(a.hosts))
	for i := range a.hosts {
		targets[i] = &dnsTarget{spec: a.hosts[i]}
	}
	c.mu.Lock()
	c.overprov = a.overprovisioning
	c.weighted = a.weightedHealth
	c.initWait += len(targets)
	c.mu.Unlock()
	for _, t := range targets {
		c.wg.Add(1)
		go c.resolveLoop(t, targets)
	}
}

func (c *Cluster) resolveLoop(t *dnsTarget, all []*dnsTarget) {
	defer c.wg.Done()
	d := c.cfg.dns
	first := true
	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-c.ctx.Done():
			if first {
				c.mu.Lock()
				c.releaseInitLocked()
				c.mu.Unlock()
			}
			return
		case <-timer.C:
		}
		c.stats.updateAttempt().Inc()
		ans, err := c.resolver.Resolve(c.ctx, t.spec.dnsName, d.family)
		if c.ctx.Err() != nil {
			continue
		}
		next := d.refresh
		if err != nil {
			c.stats.updateFailure().Inc()
			c.logger().Debug("dns resolution failed", zap.String("name", t.spec.dnsName), zap.Error(err))
			next = min(d.failureBase<<min(failures, 30), d.failureMax)
			failures++
		} else {
			failures = 0
			c.stats.updateSuccess().Inc()
			if len(ans) == 0 {
				c.stats.updateEmpty().Inc()
			}
			addrs := make([]netip.Addr, 0, len(ans))
			minTTL := time.Duration(-1)
			for _, a := range ans {
				addrs = append(addrs, a.Addr)
				if minTTL < 0 || a.TTL < minTTL {
					minTTL = a.TTL
				}
			}
			if d.respectTTL && minTTL > 0 {
				next = minTTL
			}
			c.mu.Lock()
			if c.cfg.kind == discLogicalDNS {
				c.updateLogicalLocked(t, addrs)
			} else if !t.ok || !slices.Equal(addrs, t.addrs) {
				t.addrs, t.ok = addrs, true
				c.setHostsLocked(strictSpecs(all))
			} else {
				c.stats.updateNoRebuild().Inc()
			}
			c.mu.Unlock()
		}
		if d.jitter > 0 {
			next += time.Duration(c.rand() % uint64(d.jitter))
		}
		if first {
			first = false
			c.mu.Lock()
			c.releaseInitLocked()
			c.mu.Unlock()
		}
		timer.Reset(next)
	}
}

// strictSpecs expands the targets into one host per resolved address,
// in endpoint order and answer order.
func strictSpecs(all []*dnsTarget) []hostSpec {
	var out []hostSpec
	for _, t := range all {
		for _, a := range t.addrs {
			s := t.spec
			s.address = netip.AddrPortFrom(a, uint16(t.spec.port)).String()
			out = append(out, s)
		}
	}
	return out
}

// updateLogicalLocked keeps LOGICAL_DNS's single host and points it at the
// first address of the latest answer; an empty answer keeps the old one,
// as Envoy does.
func (c *Cluster) updateLogicalLocked(t *dnsTarget, addrs []netip.Addr) {
	if len(addrs) == 0 {
		c.stats.updateNoRebuild().Inc()
		return
	}
	addr := netip.AddrPortFrom(addrs[0], uint16(t.spec.port)).String()
	if len(c.members) == 1 {
		h := c.members[0]
		if h.Address() == addr {
			c.stats.updateNoRebuild().Inc()
			return
		}
		h.addr.Store(&addr)
		if t.spec.hcPort != 0 {
			info := *h.info.Load() // its hashKey, unless set, is the address: it follows
			info.hcAddr = net.JoinHostPort(addrs[0].String(), itoa(int(t.spec.hcPort)))
			h.info.Store(&info)
		}
		c.updateHealthTargetsLocked()
		c.rebuildLocked()
		return
	}
	s := t.spec
	s.address = addr
	h := c.newHost(&s, "logical|"+t.spec.address)
	c.members = []*Host{h}
	c.byKey = nil
	c.stats.membershipChange().Inc()
	c.updateHealthTargetsLocked()
	c.rebuildLocked()
}
