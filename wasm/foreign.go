package wasm

func foreignFuncs() []hostFunc { return nil }
