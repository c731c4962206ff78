package wasm

func propertyFuncs() []hostFunc { return nil }
