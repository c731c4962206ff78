# wasmesh — the two commands a fresh machine needs:
#   make run    runs the main job: Kong's Proxy-Wasm walk-through, the gateway
#               on :8000 (Admin API 127.0.0.1:8001) with the example filter in
#               front of an embedded upstream
#   make test   installs what the tests need and runs the whole suite
# .ci/run calls `make test`.

GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

# How the proxy binary is built (bench/run.sh builds it the same way; see
# docs/architecture.md, "Memory"): a static binary without cgo, without
# gRPC's golang.org/x/net/trace (the grpcnotrace tag; it drags in
# html/template, whose reflection keeps every exported method of every linked
# type in the binary), without symbols or local paths. Idle RSS is mostly the
# binary's pages touched at start-up, so its size is memory.
BUILD_ENV := CGO_ENABLED=0
BUILD_FLAGS := -trimpath -tags grpcnotrace -ldflags='-s -w'

.PHONY: all build run envoy demo kong-demo serve test deps deps-debian check-wasm wasm vet bench

all: build

build:
	$(BUILD_ENV) $(GO) build $(BUILD_FLAGS) -o bin/wasmesh ./cmd/wasmesh

# run is Kong's Proxy-Wasm walk-through (examples/kong) in Kong gateway
# mode, with an embedded default upstream on 127.0.0.1:8080.
run:
	KONG_WASM=on KONG_DATABASE=off KONG_WASM_FILTERS_PATH=examples/kong/filters \
	KONG_DECLARATIVE_CONFIG=examples/kong/config/kong.yml \
	$(BUILD_ENV) $(GO) run $(BUILD_FLAGS) ./cmd/wasmesh kong start --demo-upstream 127.0.0.1:8080

# envoy starts wasmesh as Envoy would be started, on an Envoy bootstrap:
# the same filter on :10000 in front of an embedded upstream, admin :9901.
envoy:
	$(BUILD_ENV) $(GO) run $(BUILD_FLAGS) ./cmd/wasmesh -c examples/envoy/greeting.yaml

demo:
	$(GO) run ./cmd/wasmesh demo

# kong-demo is the former name of run.
kong-demo: run

serve:
	$(GO) run ./cmd/wasmesh demo -serve

# deps installs the toolchains the tests build their filters with. Each tool
# is checked first, so a machine that has them does no work.
deps:
	@scripts/deps.sh

# check-wasm rebuilds every committed .wasm built from project sources and
# fails if one is stale.
check-wasm: deps
	@scripts/check-wasm.sh

vet:
	$(GO) vet ./...

test: deps check-wasm vet
	$(GO) test -race -count=1 -timeout 30m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./wasm/...
