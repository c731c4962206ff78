// Package streamctx is the context of a connection and of a stream in the
// connection managers: a context.Context whose cancellation reaches its
// children and the upstream connections serving it through hooks, without
// the bookkeeping of context.WithCancel (no channel until someone asks for
// Done, no map of children, no goroutine).
//
// A Context made from another Context registers itself as one of its
// parent's hooks; made from any other context it follows that context
// with one context.AfterFunc. Hooks run on the cancelling goroutine and
// must not block: the HTTP/1.1 upstream pool's hook only expires its
// connection's deadline. context.AfterFunc and context.WithCancel on a
// Context work as on any context (AfterFunc functions run on their own
// goroutine).
package streamctx
