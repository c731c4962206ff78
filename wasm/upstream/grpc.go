package upstream

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/wasmesh/wasmesh/wasm"
)

// rawCodec passes message bytes through: the filter encodes and decodes
// its own protos. Its name makes the content-type application/grpc+proto,
// which every server accepts.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case []byte:
		return m, nil
	case *[]byte:
		return *m, nil
	}
	return nil, fmt.Errorf("upstream: raw codec cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("upstream: raw codec cannot unmarshal into %T", v)
	}
	// grpc may reuse data once Unmarshal returns.
	*p = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// bidi is the descriptor of every callout stream: a unary call is a stream
// with one message each way.
var bidi = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// GRPCStream opens a gRPC stream to /service/method on the cluster. The
// stream is set up on a goroutine of its own; its events reach h in order
// and end with exactly one OnClose, unless the stream is cancelled.
func (s *Static) GRPCStream(ctx context.Context, clusterName, service, method string, initialMetadata []wasm.Field, timeout time.Duration, h wasm.GRPCHandler) (wasm.GRPCStream, error) {
	c, err := s.lookup(clusterName)
	if err != nil {
		return nil, err
	}
	conn, err := s.grpcConn(c)
	if err != nil {
		return nil, err
	}
	if !s.begin() {
		return nil, ErrClosed
	}
	md, authority := outgoingMetadata(initialMetadata)
	cctx, cancel := s.callContext(ctx, timeout)
	cctx = metadata.NewOutgoingContext(cctx, md)
	opts := []grpc.CallOption{grpc.ForceCodec(rawCodec{})}
	if authority != "" {
		opts = append(opts, grpc.CallAuthority(authority))
	}
	st := &grpcStream{h: h, cancel: cancel, wake: make(chan struct{}, 1)}
	go func() {
		defer s.calls.Done()
		defer cancel()
		st.run(cctx, conn, "/"+service+"/"+method, opts)
		if st.closeErr != nil {
			s.log.Debug("grpc callout failed", zap.String("cluster", c.name),
				zap.String("method", "/"+service+"/"+method), zap.Error(st.closeErr))
		}
	}()
	return st, nil
}

// grpcConn returns the cluster's connection, creating it on first use.
func (s *Static) grpcConn(c *cluster) (*grpc.ClientConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if conn := s.conns[c.name]; conn != nil {
		return conn, nil
	}
	creds := insecure.NewCredentials()
	if c.Protocol == TLS {
		creds = credentials.NewTLS(c.tlsConfig())
	}
	target := "passthrough:///" + c.Address
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if c.Dial != nil {
		// The data plane's cluster picks the host for each connection.
		target = "passthrough:///" + c.name
		dial := c.Dial
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx) }))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("upstream: cluster %q: grpc connection: %w", c.name, err)
	}
	s.conns[c.name] = conn
	return conn, nil
}

// outgoingMetadata converts callout metadata to grpc-go's: ":authority"
// becomes the call's authority, other pseudo-headers are dropped, and
// "-bin" values, which filters give in wire form (base64, as Envoy passes
// them), are decoded because grpc-go encodes them again.
func outgoingMetadata(fields []wasm.Field) (metadata.MD, string) {
	md := metadata.MD{}
	authority := ""
	for _, f := range fields {
		k := strings.ToLower(f.Key)
		if k == ":authority" {
			authority = f.Value
			continue
		}
		if strings.HasPrefix(k, ":") {
			continue
		}
		v := f.Value
		if strings.HasSuffix(k, "-bin") {
			if b, err := decodeBin(v); err == nil {
				v = string(b)
			}
		}
		md[k] = append(md[k], v)
	}
	return md, authority
}

func decodeBin(v string) ([]byte, error) {
	if len(v)%4 == 0 {
		return base64.StdEncoding.DecodeString(v)
	}
	return base64.RawStdEncoding.DecodeString(v)
}

// incomingFields converts received metadata to fields, keys sorted, with
// "-bin" values in wire form (unpadded base64).
func incomingFields(md metadata.MD) []wasm.Field {
	var out []wasm.Field
	for _, k := range sortedKeys(md) {
		bin := strings.HasSuffix(k, "-bin")
		for _, v := range md[k] {
			if bin {
				v = base64.RawStdEncoding.EncodeToString([]byte(v))
			}
			out = append(out, wasm.Field{Key: k, Value: v})
		}
	}
	return out
}

// grpcStream is one open callout: Send and CloseSend queue work for the
// stream's goroutine, which never blocks the caller.
type grpcStream struct {
	h        wasm.GRPCHandler
	cancel   context.CancelFunc
	canceled atomic.Bool

	mu         sync.Mutex
	queue      []sendOp
	sendClosed bool
	wake       chan struct{}

	// closeErr is the stream's final error, for the debug log.
	closeErr error
}

type sendOp struct {
	msg       []byte
	closeOnly bool
	end       bool
}

var errSendClosed = errors.New("upstream: grpc stream already half-closed")

// Send queues msg; end half-closes the stream after it.
func (g *grpcStream) Send(msg []byte, end bool) error {
	return g.enqueue(sendOp{msg: msg, end: end})
}

// CloseSend queues a half-close.
func (g *grpcStream) CloseSend() error {
	return g.enqueue(sendOp{closeOnly: true, end: true})
}

func (g *grpcStream) enqueue(op sendOp) error {
	if g.canceled.Load() {
		return context.Canceled
	}
	g.mu.Lock()
	if g.sendClosed {
		g.mu.Unlock()
		return errSendClosed
	}
	g.queue = append(g.queue, op)
	g.sendClosed = op.end
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
	return nil
}

// Cancel resets the stream; the handler hears nothing more.
func (g *grpcStream) Cancel() {
	g.canceled.Store(true)
	g.cancel()
}

// run opens the stream, then sends queued messages while a second
// goroutine receives, and returns when both are done.
func (g *grpcStream) run(ctx context.Context, conn *grpc.ClientConn, method string, opts []grpc.CallOption) {
	cs, err := conn.NewStream(ctx, bidi, method, opts...)
	if err != nil {
		g.finish(status.Convert(err), nil)
		return
	}
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		g.receive(cs)
	}()
	g.sendLoop(ctx, cs, recvDone)
	<-recvDone
}

// sendLoop sends what Send and CloseSend queued, until the stream is
// half-closed or over.
func (g *grpcStream) sendLoop(ctx context.Context, cs grpc.ClientStream, recvDone <-chan struct{}) {
	for {
		select {
		case <-g.wake:
		case <-recvDone:
			return
		case <-ctx.Done():
			return
		}
		g.mu.Lock()
		ops := g.queue
		g.queue = nil
		g.mu.Unlock()
		for _, op := range ops {
			if !op.closeOnly {
				if err := cs.SendMsg(op.msg); err != nil {
					// The stream is over; receive reports its status.
					return
				}
			}
			if op.end {
				_ = cs.CloseSend()
				return
			}
		}
	}
}

// receive delivers initial metadata, messages, trailers and the status.
func (g *grpcStream) receive(cs grpc.ClientStream) {
	if md, err := cs.Header(); err == nil && len(md) > 0 {
		g.emit(func() { g.h.OnInitialMetadata(incomingFields(md)) })
	}
	var err error
	for {
		var msg []byte
		if err = cs.RecvMsg(&msg); err != nil {
			break
		}
		g.emit(func() { g.h.OnMessage(msg) })
	}
	st := status.New(codes.OK, "")
	if !errors.Is(err, io.EOF) {
		st = status.Convert(err)
	}
	if ourDeadlinePassed(cs.Context(), st) {
		// The server may see the grpc-timeout first and reset the stream;
		// either way the call ran out of the time the filter gave it, and
		// the filter gets the same status and message.
		st = status.New(codes.DeadlineExceeded, context.DeadlineExceeded.Error())
	}
	g.finish(st, cs.Trailer())
}

// finish delivers the trailers and the final status.
func (g *grpcStream) finish(st *status.Status, trailer metadata.MD) {
	if st.Code() != codes.OK {
		g.closeErr = st.Err()
	}
	if len(trailer) > 0 {
		g.emit(func() { g.h.OnTrailingMetadata(incomingFields(trailer)) })
	}
	g.emit(func() { g.h.OnClose(uint32(st.Code()), st.Message()) })
}

func (g *grpcStream) emit(f func()) {
	if !g.canceled.Load() {
		f()
	}
}

// ourDeadlinePassed reports whether a DEADLINE_EXCEEDED status comes from
// the call's own timeout rather than from the server's choice of status.
func ourDeadlinePassed(ctx context.Context, st *status.Status) bool {
	if st.Code() != codes.DeadlineExceeded {
		return false
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
