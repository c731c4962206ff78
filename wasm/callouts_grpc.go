package wasm

func grpcCalloutFuncs() []hostFunc { return nil }
