package stats

import (
	"strconv"
	"sync/atomic"
)

// CodeCounters hands out the per-response-code counters Envoy keeps under a
// scope: "<prefix><code>" (upstream_rq_200) and "<prefix><class>xx"
// (upstream_rq_2xx). Each counter is created on first use and cached in an
// array, so the request path looks one up without a lock or an allocation.
// Codes outside 100..599 share one unlisted counter.
type CodeCounters struct {
	scope   *Scope
	prefix  string
	codes   [500]atomic.Pointer[Counter]
	classes [5]atomic.Pointer[Counter]
	invalid *Counter
}

// NewCodeCounters returns the code counters of sc named prefix+code, for
// example NewCodeCounters(clusterScope, "upstream_rq_").
func NewCodeCounters(sc *Scope, prefix string) *CodeCounters {
	return &CodeCounters{scope: sc, prefix: prefix, invalid: newCounter(prefix + "invalid")}
}

// Code returns the counter of one status code.
func (c *CodeCounters) Code(code int) *Counter {
	if code < 100 || code > 599 {
		return c.invalid
	}
	slot := &c.codes[code-100]
	if ctr := slot.Load(); ctr != nil {
		return ctr
	}
	ctr := c.scope.Counter(c.prefix + strconv.Itoa(code))
	slot.Store(ctr)
	return ctr
}

// Class returns the counter of a status code's class ("2xx" for 204).
func (c *CodeCounters) Class(code int) *Counter {
	if code < 100 || code > 599 {
		return c.invalid
	}
	slot := &c.classes[code/100-1]
	if ctr := slot.Load(); ctr != nil {
		return ctr
	}
	ctr := c.scope.Counter(c.prefix + strconv.Itoa(code/100) + "xx")
	slot.Store(ctr)
	return ctr
}

// Inc counts one response with the code in both its code and class counters.
func (c *CodeCounters) Inc(code int) {
	c.Code(code).Inc()
	c.Class(code).Inc()
}
