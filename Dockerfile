# Builds the wasmesh binary and ships it with the example filter.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -tags grpcnotrace -ldflags='-s -w' -o /out/wasmesh ./cmd/wasmesh

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/wasmesh /usr/local/bin/wasmesh
COPY examples /examples
WORKDIR /
ENTRYPOINT ["/usr/local/bin/wasmesh"]
CMD ["demo", "-filter", "/examples/filters/my-filter/my-filter.wasm", "-listen", "0.0.0.0:8000", "-serve"]
