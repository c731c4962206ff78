package wasm

import "sync"

// queueRegistry holds the host-wide shared queues.
// TODO(queues helper): host functions and proxy_on_queue_ready dispatch.
type queueRegistry struct {
	mu sync.Mutex
}

func newQueueRegistry() *queueRegistry { return &queueRegistry{} }

func queueFuncs() []hostFunc { return nil }
