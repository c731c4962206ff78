package wasm

func httpCalloutFuncs() []hostFunc { return nil }
