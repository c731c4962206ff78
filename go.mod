module github.com/wasmesh/wasmesh

go 1.26.8

require (
	github.com/tetratelabs/wazero v1.12.0
	go.uber.org/zap v1.28.0
)

require (
	go.uber.org/multierr v1.10.0 // indirect
	golang.org/x/sys v0.44.0 // indirect
)
