package wasm

import (
	"context"

	"github.com/tetratelabs/wazero/api"
)

// hostFunc is one function the host provides to guests.
type hostFunc struct {
	module  string
	name    string
	params  []api.ValueType
	results []api.ValueType
	// abis lists the ABI versions that may import the function; nil means
	// every version.
	abis []ABIVersion
	fn   func(ctx context.Context, inst *instance, stack []uint64)
}

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// params builds a parameter list of n i32 values.
func i32s(n int) []api.ValueType {
	p := make([]api.ValueType, n)
	for i := range p {
		p[i] = i32
	}
	return p
}

// statusResult is the single i32 result of every proxy_* function.
var statusResult = []api.ValueType{i32}

// proxyFunc declares an "env" function with n i32 parameters returning a
// status.
func proxyFunc(name string, n int, fn func(ctx context.Context, inst *instance, stack []uint64) Status, abis ...ABIVersion) hostFunc {
	return hostFunc{
		module:  "env",
		name:    name,
		params:  i32s(n),
		results: statusResult,
		abis:    abis,
		fn: func(ctx context.Context, inst *instance, stack []uint64) {
			stack[0] = uint64(fn(ctx, inst, stack))
		},
	}
}

// allHostFuncs is every function the host links, gathered from the ABI area
// files. The order does not matter.
func allHostFuncs() []hostFunc {
	var all []hostFunc
	for _, area := range [][]hostFunc{
		logFuncs(),
		contextFuncs(),
		timerFuncs(),
		bufferFuncs(),
		headerFuncs(),
		streamFuncs(),
		httpCalloutFuncs(),
		grpcCalloutFuncs(),
		sharedDataFuncs(),
		queueFuncs(),
		metricFuncs(),
		propertyFuncs(),
		foreignFuncs(),
		wasiFuncs(),
	} {
		all = append(all, area...)
	}
	return all
}

// supports reports whether an ABI version may import f.
func (f hostFunc) supports(v ABIVersion) bool {
	if len(f.abis) == 0 {
		return true
	}
	for _, a := range f.abis {
		if a == v {
			return true
		}
	}
	return false
}

// u32 reads argument i as a guest u32.
func u32(stack []uint64, i int) uint32 { return uint32(stack[i]) }
