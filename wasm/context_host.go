package wasm

import "context"

func contextFuncs() []hostFunc {
	return []hostFunc{
		proxyFunc("proxy_set_effective_context", 1, hostSetEffectiveContext),
		proxyFunc("proxy_done", 0, hostDone),
	}
}

// proxy_set_effective_context(context_id)
func hostSetEffectiveContext(_ context.Context, i *instance, st []uint64) Status {
	c, ok := i.contexts[u32(st, 0)]
	if !ok {
		return StatusBadArgument
	}
	i.effective = c
	return StatusOK
}

// proxy_done(): the effective context, which returned false from
// proxy_on_done, is finished now (proxy_on_log, proxy_on_delete run after
// the current callback).
func hostDone(_ context.Context, i *instance, _ []uint64) Status {
	c := i.effective
	if c == nil || !c.pendingDone {
		return StatusNotFound
	}
	c.pendingDone = false
	i.deferLocked(func() { i.completeContextLocked(c) })
	return StatusOK
}
