package wasm

import "sync"

// sharedData is the host-wide key-value store behind proxy_get/set_shared_data.
// TODO(shared data helper): host functions.
type sharedData struct {
	mu sync.Mutex
}

func newSharedData() *sharedData { return &sharedData{} }

func sharedDataFuncs() []hostFunc { return nil }
