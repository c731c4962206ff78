package wasm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero/api"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"
)

// gRPC status codes the host itself reports in proxy_on_grpc_close.
const (
	grpcDeadlineExceeded = 4
	grpcInternal         = 13
)

func grpcCalloutFuncs() []hostFunc {
	return []hostFunc{
		proxyFunc("proxy_grpc_call", 12, hostGRPCCall),
		proxyFunc("proxy_grpc_stream", 9, hostGRPCStream),
		proxyFunc("proxy_grpc_send", 4, hostGRPCSend),
		proxyFunc("proxy_grpc_cancel", 1, hostGRPCCancel),
		proxyFunc("proxy_grpc_close", 1, hostGRPCClose),
	}
}

// GRPCUpstream is the target of a gRPC callout, decoded from the upstream
// argument of proxy_grpc_call and proxy_grpc_stream.
type GRPCUpstream struct {
	// Cluster is the cluster to call.
	Cluster string
	// InitialMetadata is sent before the guest's metadata; it comes from
	// GrpcService.initial_metadata, plus ":authority" from
	// envoy_grpc.authority.
	InitialMetadata []Field
}

// errNoEnvoyGRPC is returned for a GrpcService that names no Envoy cluster
// (google_grpc only, or empty).
var errNoEnvoyGRPC = errors.New("grpc service has no envoy_grpc.cluster_name")

// ParseGRPCUpstream decodes a gRPC callout's upstream argument the way Envoy
// reads it: a serialized envoy.config.core.v3.GrpcService whose
// envoy_grpc.cluster_name names the cluster, or else the bytes are the
// cluster name itself. Bytes that happen to parse as a protobuf but set
// neither envoy_grpc nor google_grpc are taken as a name (Envoy would refuse
// them). A GrpcService with only google_grpc is an error: callouts go to
// configured clusters only.
func ParseGRPCUpstream(b []byte) (GRPCUpstream, error) {
	svc, err := decodeGrpcService(b)
	if err == nil && svc.hasEnvoyGRPC && svc.cluster != "" {
		up := GRPCUpstream{Cluster: svc.cluster}
		if svc.authority != "" {
			up.InitialMetadata = append(up.InitialMetadata, Field{Key: ":authority", Value: svc.authority})
		}
		up.InitialMetadata = append(up.InitialMetadata, svc.metadata...)
		return up, nil
	}
	if err == nil && (svc.hasEnvoyGRPC || svc.hasGoogleGRPC) {
		return GRPCUpstream{}, errNoEnvoyGRPC
	}
	if len(b) == 0 {
		return GRPCUpstream{}, errors.New("empty grpc upstream")
	}
	return GRPCUpstream{Cluster: string(b)}, nil
}

// grpcService is the part of envoy.config.core.v3.GrpcService the host
// uses.
type grpcService struct {
	hasEnvoyGRPC, hasGoogleGRPC bool
	cluster, authority          string
	metadata                    []Field
}

// GrpcService field numbers.
const (
	gsEnvoyGRPC       = 1
	gsGoogleGRPC      = 2
	gsInitialMetadata = 5
	egClusterName     = 1
	egAuthority       = 2
	hvKey             = 1
	hvValue           = 2
	hvRawValue        = 3
)

var errBadProto = errors.New("malformed protobuf")

// decodeGrpcService parses b as a GrpcService message. Unknown fields are
// skipped; a field of a known number with another wire type is skipped too,
// as protobuf parsers do.
func decodeGrpcService(b []byte) (grpcService, error) {
	var svc grpcService
	err := walkFields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case gsEnvoyGRPC:
			svc.hasEnvoyGRPC = true
			return walkFields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if typ != protowire.BytesType {
					return nil
				}
				switch num {
				case egClusterName:
					svc.cluster = string(v)
				case egAuthority:
					svc.authority = string(v)
				}
				return nil
			})
		case gsGoogleGRPC:
			svc.hasGoogleGRPC = true
			return walkFields(v, func(protowire.Number, protowire.Type, []byte) error { return nil })
		case gsInitialMetadata:
			var f Field
			var raw []byte
			err := walkFields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if typ != protowire.BytesType {
					return nil
				}
				switch num {
				case hvKey:
					f.Key = lowerASCII(string(v))
				case hvValue:
					f.Value = string(v)
				case hvRawValue:
					raw = v
				}
				return nil
			})
			if err != nil {
				return err
			}
			if raw != nil {
				f.Value = string(raw)
			}
			if len(svc.metadata) >= maxSerializedPairs {
				return fmt.Errorf("%w: more than %d metadata entries", errBadProto, maxSerializedPairs)
			}
			svc.metadata = append(svc.metadata, f)
		}
		return nil
	})
	return svc, err
}

// walkFields calls fn for each field of the message b; v is the payload of a
// length-delimited field and nil otherwise.
func walkFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errBadProto, protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: %v", errBadProto, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

// grpcEvents forwards a gRPC callout's events to the guest, in order.
type grpcEvents struct {
	i  *instance
	co *callout
}

func (h grpcEvents) OnInitialMetadata(md []Field) {
	md = append([]Field(nil), md...)
	h.co.q.push(func() { h.i.grpcMetadata(h.co, md, false) })
}

func (h grpcEvents) OnMessage(msg []byte) {
	h.co.q.push(func() { h.i.grpcMessage(h.co, msg) })
}

func (h grpcEvents) OnTrailingMetadata(md []Field) {
	md = append([]Field(nil), md...)
	h.co.q.push(func() { h.i.grpcMetadata(h.co, md, true) })
}

func (h grpcEvents) OnClose(code uint32, message string) {
	h.co.q.push(func() { h.i.grpcClose(h.co, code, message) })
}

// grpcMetadata delivers initial or trailing metadata of a gRPC stream. Like
// Envoy, a unary call reports no metadata.
func (i *instance) grpcMetadata(co *callout, md []Field, trailing bool) {
	if co.kind != kindGRPCStream {
		return
	}
	i.deliverCallout(co, func() (api.Function, *calloutView, []uint64, bool) {
		h := &Headers{}
		h.Reset(md)
		view := &calloutView{}
		fn := i.fns.onGRPCInitialMetadata
		if trailing {
			view.trailers = h
			fn = i.fns.onGRPCTrailingMetadata
		} else {
			view.headers = h
		}
		return fn, view, []uint64{uint64(h.Len())}, true
	})
}

// grpcMessage delivers a message of a gRPC stream (proxy_on_grpc_receive)
// or keeps a unary call's reply until its status is known.
func (i *instance) grpcMessage(co *callout, msg []byte) {
	i.deliverCallout(co, func() (api.Function, *calloutView, []uint64, bool) {
		if co.kind == kindGRPCCall {
			if !co.hasReply {
				co.reply, co.hasReply = msg, true
			}
			return nil, nil, nil, false
		}
		return i.fns.onGRPCReceive, &calloutView{body: msg}, []uint64{uint64(len(msg))}, true
	})
}

// grpcClose ends a gRPC callout. A unary call that succeeded delivers its
// reply through proxy_on_grpc_receive and nothing else; one that failed
// calls proxy_on_grpc_close (Envoy's onSuccess / onFailure). A stream calls
// proxy_on_grpc_close and stays known (for proxy_grpc_close) until the guest
// closed its side too.
func (i *instance) grpcClose(co *callout, code uint32, message string) {
	i.deliverCallout(co, func() (api.Function, *calloutView, []uint64, bool) {
		co.remoteClosed = true
		if co.kind == kindGRPCCall || co.localClosed {
			i.callouts.removeLocked(co)
		}
		co.release()
		if co.kind == kindGRPCCall && code == 0 {
			if co.hasReply {
				return i.fns.onGRPCReceive, &calloutView{body: co.reply}, []uint64{uint64(len(co.reply))}, true
			}
			code, message = grpcInternal, "no response message"
		}
		view := &calloutView{hasStatus: true, statusCode: code, statusMsg: message}
		return i.fns.onGRPCClose, view, []uint64{uint64(code)}, true
	})
}

// readGRPCTarget reads the upstream, service, method and metadata arguments
// shared by proxy_grpc_call and proxy_grpc_stream.
func (i *instance) readGRPCTarget(st []uint64) (up GRPCUpstream, service, method string, md []Field, s Status) {
	upstream, ok := i.read(u32(st, 0), u32(st, 1))
	if !ok {
		return up, "", "", nil, StatusInvalidMemoryAccess
	}
	if service, ok = i.readString(u32(st, 2), u32(st, 3)); !ok {
		return up, "", "", nil, StatusInvalidMemoryAccess
	}
	if method, ok = i.readString(u32(st, 4), u32(st, 5)); !ok {
		return up, "", "", nil, StatusInvalidMemoryAccess
	}
	raw, ok := i.read(u32(st, 6), u32(st, 7))
	if !ok {
		return up, "", "", nil, StatusInvalidMemoryAccess
	}
	guestMD, err := ParsePairs(raw)
	if err != nil {
		return up, "", "", nil, StatusBadArgument
	}
	lowerKeys(guestMD)
	up, err = ParseGRPCUpstream(upstream)
	if err != nil {
		return up, "", "", nil, StatusBadArgument
	}
	md = append(append([]Field(nil), up.InitialMetadata...), guestMD...)
	return up, service, method, md, StatusOK
}

// openGRPCLocked starts a gRPC callout of kind k for the effective context.
func (i *instance) openGRPCLocked(k calloutKind, up GRPCUpstream, service, method string, md []Field, timeout time.Duration) (*callout, Status) {
	ups := i.vm.rt.opts.Upstreams
	if ups == nil {
		return nil, StatusParseFailure
	}
	ctx, root := i.callerLocked()
	if ctx == nil {
		return nil, StatusInternalFailure
	}
	id, ok := i.callouts.allocLocked(k)
	if !ok {
		return nil, StatusInternalFailure
	}
	co := &callout{id: id, kind: k, ctx: ctx, root: root}
	cctx, cancelCtx := context.WithCancel(context.Background())
	co.cancelCtx = cancelCtx
	i.callouts.addLocked(co)
	stream, err := ups.GRPCStream(cctx, up.Cluster, service, method, md, timeout, grpcEvents{i: i, co: co})
	if err != nil {
		i.callouts.removeLocked(co)
		cancelCtx()
		if errors.Is(err, ErrUnknownCluster) {
			return nil, StatusParseFailure
		}
		i.log.Warn("wasm grpc callout not started", zap.String("cluster", up.Cluster),
			zap.String("method", "/"+service+"/"+method), zap.Error(err))
		return nil, StatusInternalFailure
	}
	co.stream = stream
	return co, StatusOK
}

// proxy_grpc_call(upstream, upstream_size, service, service_size, method,
// method_size, initial_metadata, initial_metadata_size, message,
// message_size, timeout_ms, return_call_id)
func hostGRPCCall(_ context.Context, i *instance, st []uint64) Status {
	up, service, method, md, s := i.readGRPCTarget(st)
	if s != StatusOK {
		return s
	}
	msg, ok := i.read(u32(st, 8), u32(st, 9))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	retID := u32(st, 11)
	if _, ok := i.mem.Read(retID, 4); !ok {
		return StatusInvalidMemoryAccess
	}
	timeout, ok := guestTimeout(u32(st, 10))
	if !ok {
		return StatusBadArgument
	}
	co, s := i.openGRPCLocked(kindGRPCCall, up, service, method, md, timeout)
	if s != StatusOK {
		return s
	}
	if err := co.stream.Send(append([]byte(nil), msg...), true); err != nil {
		i.callouts.removeLocked(co)
		co.release()
		i.log.Warn("wasm grpc call not sent", zap.String("cluster", up.Cluster), zap.Error(err))
		return StatusInternalFailure
	}
	co.localClosed = true
	if timeout > 0 {
		co.timer = time.AfterFunc(timeout, func() {
			co.q.push(func() { i.grpcClose(co, grpcDeadlineExceeded, httpCalloutTimeoutMsg) })
		})
	}
	i.writeU32(retID, co.id)
	return StatusOK
}

// proxy_grpc_stream(upstream, upstream_size, service, service_size, method,
// method_size, initial_metadata, initial_metadata_size, return_stream_id)
func hostGRPCStream(_ context.Context, i *instance, st []uint64) Status {
	up, service, method, md, s := i.readGRPCTarget(st)
	if s != StatusOK {
		return s
	}
	retID := u32(st, 8)
	if _, ok := i.mem.Read(retID, 4); !ok {
		return StatusInvalidMemoryAccess
	}
	co, s := i.openGRPCLocked(kindGRPCStream, up, service, method, md, 0)
	if s != StatusOK {
		return s
	}
	i.writeU32(retID, co.id)
	return StatusOK
}

// grpcCalloutLocked finds a pending callout of the effective context's
// plugin: NOT_FOUND when id is not pending, BAD_ARGUMENT when it is a
// callout of another kind (an HTTP call, or a unary call to send on). Envoy
// decides the second by the id's bits alone, so it answers BAD_ARGUMENT
// even for ids it never handed out; the spec reads "unknown" as NOT_FOUND.
func (i *instance) grpcCalloutLocked(id uint32, kinds ...calloutKind) (*callout, Status) {
	_, root := i.callerLocked()
	if root == nil {
		return nil, StatusNotFound
	}
	co := i.callouts.lookupLocked(id, root)
	if co == nil {
		return nil, StatusNotFound
	}
	for _, k := range kinds {
		if co.kind == k {
			return co, StatusOK
		}
	}
	return nil, StatusBadArgument
}

// proxy_grpc_send(stream_id, message, message_size, end_stream)
func hostGRPCSend(_ context.Context, i *instance, st []uint64) Status {
	msg, ok := i.read(u32(st, 1), u32(st, 2))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	co, s := i.grpcCalloutLocked(u32(st, 0), kindGRPCStream)
	if s != StatusOK {
		return s
	}
	if co.localClosed {
		return StatusBadArgument
	}
	if co.remoteClosed {
		// Envoy accepts and drops a message for a stream the server ended.
		return StatusOK
	}
	end := u32(st, 3) != 0
	if err := co.stream.Send(append([]byte(nil), msg...), end); err != nil {
		i.log.Debug("wasm grpc send failed", zap.Uint32("callout_id", co.id), zap.Error(err))
		return StatusInternalFailure
	}
	co.localClosed = end
	return StatusOK
}

// proxy_grpc_cancel(call_or_stream_id): the callout ends without further
// callbacks.
func hostGRPCCancel(_ context.Context, i *instance, st []uint64) Status {
	co, s := i.grpcCalloutLocked(u32(st, 0), kindGRPCCall, kindGRPCStream)
	if s != StatusOK {
		return s
	}
	i.callouts.removeLocked(co)
	co.release()
	return StatusOK
}

// proxy_grpc_close(call_or_stream_id): cancels a unary call (Envoy);
// half-closes a stream, whose remaining events still arrive.
func hostGRPCClose(_ context.Context, i *instance, st []uint64) Status {
	co, s := i.grpcCalloutLocked(u32(st, 0), kindGRPCCall, kindGRPCStream)
	if s != StatusOK {
		return s
	}
	if co.kind == kindGRPCCall || co.remoteClosed {
		i.callouts.removeLocked(co)
		co.release()
		return StatusOK
	}
	if !co.localClosed {
		co.localClosed = true
		if err := co.stream.CloseSend(); err != nil {
			i.log.Debug("wasm grpc close failed", zap.Uint32("callout_id", co.id), zap.Error(err))
		}
	}
	return StatusOK
}
