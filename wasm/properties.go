package wasm

// Properties: proxy_get_property and proxy_set_property, Envoy's attribute
// vocabulary, and StreamInfo, the Properties implementation the data plane
// fills in.
//
// # Paths
//
// A path is a list of segments separated by NUL bytes, as in Envoy:
// "request\x00path", "request\x00headers\x00user-agent". A trailing NUL is
// ignored. Dots are not separators: "request.path" is a single segment, so
// it names an unknown top-level property (or a user property of that name)
// and reads NOT_FOUND, exactly as in Envoy. Splitting on dots would make
// filters work here that fail in Envoy. The first segment picks the
// property; each further segment selects a map key, a message field (by its
// proto name) or a list index (decimal), as Envoy's CEL walk does.
//
// # Encodings
//
// Values are returned the way Envoy serialises CEL values: strings and bytes
// raw; int64, uint64 and double as 8 little-endian bytes; bool as 1 byte;
// durations as int64 nanoseconds; timestamps as int64 nanoseconds since the
// Unix epoch; protobuf messages in their wire format; maps in the header-map
// pair format (SerializePairs) with every key and value encoded by these
// rules; lists in the same format with the element as key and an empty
// value. google.protobuf.Struct, Value, ListValue, the wrapper types,
// Timestamp, Duration and Any are unwrapped like CEL does (a Struct is a
// map). A null value, or a map the host cannot list (the bare "request",
// "connection", "xds"...), fails with SERIALIZATION_FAILURE.
//
// # Property table
//
//	path                                type       source
//	plugin_name                         string     PluginConfig.Name
//	plugin_root_id                      string     PluginConfig.RootID (may be empty)
//	plugin_vm_id                        string     VMConfig.ID
//	request.path                        string     :path
//	request.url_path                    string     :path without the query
//	request.host                        string     :authority (else host)
//	request.scheme                      string     :scheme
//	request.method                      string     :method
//	request.headers                     map        request headers, values of a repeated header joined with ","
//	request.headers.<name>              string     one header, same joining
//	request.headers_bytes               int64      sum of key and value lengths
//	request.referer                     string     referer
//	request.useragent                   string     user-agent
//	request.id                          string     x-request-id
//	request.query                       string     after "?" up to "#", "" if none
//	request.size                        int64      content-length, else Properties request.size (body bytes)
//	request.total_size                  int64      Properties, else headers_bytes + Properties request.size
//	request.time                        timestamp  Properties (StreamInfo.StartTime)
//	request.protocol                    string     Properties (StreamInfo.Protocol)
//	request.duration                    duration   Properties (StreamInfo.Duration)
//	response.code                       int64      :status, else the local response, else Properties
//	response.code_details               string     the local response's details, else Properties
//	response.flags                      int64      Properties (StreamInfo.ResponseFlags)
//	response.grpc_status                int64      grpc-status of trailers, then headers, then the local response, then mapped from response.code
//	response.headers                    map        response headers
//	response.headers.<name>             string     one header
//	response.headers_bytes              int64      sum of key and value lengths
//	response.trailers                   map        response trailers
//	response.trailers.<name>            string     one trailer
//	response.size                       int64      Properties (body bytes sent)
//	response.total_size                 int64      Properties, else size + headers + trailers bytes
//	response.backend_latency            duration   Properties
//	connection.id                       uint64     Properties (StreamInfo.ConnectionID)
//	connection_id                       uint64     Properties
//	connection.mtls                     bool       Properties
//	connection.requested_server_name    string     Properties
//	connection.tls_version, subject_local_certificate, subject_peer_certificate,
//	uri_san_local_certificate, uri_san_peer_certificate, dns_san_local_certificate,
//	dns_san_peer_certificate, sha256_peer_certificate_digest
//	                                    string     Properties (StreamInfo.DownstreamTLS)
//	connection.termination_details      string     Properties
//	connection.transport_failure_reason string     Properties
//	source.address, destination.address string     Properties ("ip:port")
//	source.port, destination.port       int64      Properties
//	upstream.address, upstream.local_address
//	                                    string     Properties
//	upstream.port                       int64      Properties
//	upstream.locality                   message    Properties (config.core.v3.Locality)
//	upstream.transport_failure_reason   string     Properties
//	upstream.request_attempt_count      uint64     Properties
//	upstream.<tls field>                string     Properties (StreamInfo.UpstreamTLS)
//	xds.node, node                      message    Properties (config.core.v3.Node)
//	xds.cluster_name, cluster_name      string     Properties
//	xds.cluster_metadata, cluster_metadata
//	                                    message    Properties (config.core.v3.Metadata)
//	xds.route_name, route_name          string     Properties
//	xds.route_metadata, route_metadata  message    Properties
//	xds.virtual_host_name               string     Properties
//	xds.virtual_host_metadata           message    Properties
//	xds.upstream_host_metadata, upstream_host_metadata
//	                                    message    Properties
//	xds.filter_chain_name               string     Properties
//	xds.listener_metadata, listener_metadata
//	                                    message    Properties
//	xds.listener_direction, listener_direction
//	                                    int64      Properties (config.core.v3.TrafficDirection)
//	metadata                            message    Properties (dynamic metadata, config.core.v3.Metadata)
//	filter_state.<key>                  bytes      the context's filter state, else Properties
//	<anything else>                     bytes      a value stored with proxy_set_property, else Properties
//
// "Properties" means the stream's StreamOptions.Properties, then the
// plugin's PluginConfig.Properties (a root context asks only the latter).
// The host answers the header-derived values itself from the live maps, so
// a filter sees its own changes.
//
// # Writes
//
// proxy_set_property(path, value) stores value in the effective context's
// filter state under "wasm.<path>" (segments joined with NUL), like Envoy,
// where get_property(path) and get_property("filter_state", "wasm.<path>")
// read it back. A property declared with the declare_property foreign
// function takes its read-only flag from the declaration: it may be set
// once per stream, a second write is BAD_ARGUMENT. Like Envoy, a write to a
// path the host owns ("plugin_root_id", "request\x00path") succeeds but is
// shadowed: reads still answer the host's value. When the stream's
// Properties also implements PropertySetter, every accepted write (and
// every set_envoy_filter_state) is offered to it as the path
// ["filter_state", key]; false refuses the write.
//
// Properties.GetProperty and PropertySetter.SetProperty run inside a guest
// call with the instance lock held: they must be safe for concurrent use
// and must not call back into the stream (FilterState would deadlock).
//
// # Differences from Envoy
//
//   - Root contexts have their own property store: set_property in a root
//     context succeeds and reads back there (Envoy answers NOT_FOUND, having
//     no stream). Streams do not see their root's values.
//   - A multi-segment user path reads back with the same path (Envoy stores
//     it but can only find single-segment names).
//   - Declared types are recorded but values are not parsed: get always
//     returns the raw bytes, and selecting into a Protobuf or FlatBuffers
//     property is NOT_FOUND (Envoy can walk those with the schema).
//   - The older top-level names (node, cluster_name, cluster_metadata,
//     listener_direction, listener_metadata, route_name, route_metadata,
//     upstream_host_metadata) and their xds.* forms are both served.
//   - Without a data plane answer, request.time, protocol, duration, size
//     (no content-length), response.flags, size and backend_latency are
//     NOT_FOUND; Envoy always has a StreamInfo.
//   - request.host falls back to the host header when :authority is absent.
//   - Header maps list their keys in first-appearance order (Envoy's order
//     is unspecified). Map entries of protobuf maps and Structs are sorted
//     by key.
//   - An empty path is NOT_FOUND (Envoy: SERIALIZATION_FAILURE); set with an
//     empty path is BAD_ARGUMENT.
//   - Caps: a path is at most 64 KiB (BAD_ARGUMENT), a context holds at most
//     1024 stored values and 4 MiB of keys and values (BAD_ARGUMENT beyond).
//   - All return pointers are checked before the lookup, so an
//     out-of-bounds return slot is INVALID_MEMORY_ACCESS even when the
//     property does not exist.

import (
	"context"
	"encoding/binary"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Caps on what a guest can store through properties.
const (
	maxPropertyPathBytes = 64 << 10
	maxPropertyEntries   = 1024
	maxPropertyBytes     = 4 << 20
)

// userPropertyPrefix is the filter-state key prefix of values written with
// proxy_set_property (Envoy's CelState prefix).
const userPropertyPrefix = "wasm."

func propertyFuncs() []hostFunc {
	return []hostFunc{
		proxyFunc("proxy_get_property", 4, hostGetProperty),
		proxyFunc("proxy_set_property", 4, hostSetProperty),
	}
}

// proxy_get_property(path, path_size, return_value, return_value_size)
func hostGetProperty(_ context.Context, i *instance, st []uint64) Status {
	retPtr, retSize := u32(st, 2), u32(st, 3)
	if !i.inBounds(retPtr, 4) || !i.inBounds(retSize, 4) {
		return StatusInvalidMemoryAccess
	}
	raw, ok := i.read(u32(st, 0), u32(st, 1))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	segs, s := parsePropertyPath(raw)
	if s != StatusOK {
		return s
	}
	v, s := i.getProperty(i.effective, segs)
	if s != StatusOK {
		return s
	}
	return i.copyOut(v, retPtr, retSize)
}

// proxy_set_property(path, path_size, value, value_size)
func hostSetProperty(_ context.Context, i *instance, st []uint64) Status {
	raw, ok := i.read(u32(st, 0), u32(st, 1))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	val, ok := i.read(u32(st, 2), u32(st, 3))
	if !ok {
		return StatusInvalidMemoryAccess
	}
	segs, s := parsePropertyPath(raw)
	if s != StatusOK {
		return s
	}
	if len(segs) == 0 {
		return StatusBadArgument
	}
	c := i.effective
	if c == nil {
		return StatusNotFound
	}
	return i.setFilterState(c, userPropertyPrefix+strings.Join(segs, "\x00"), string(val), strings.Join(segs, "\x00"), true)
}

// inBounds reports whether [ptr, ptr+size) is guest memory.
func (i *instance) inBounds(ptr, size uint32) bool {
	_, ok := i.mem.Read(ptr, size)
	return ok
}

// parsePropertyPath checks a guest path against the cap and splits it.
func parsePropertyPath(raw []byte) ([]string, Status) {
	if len(raw) > maxPropertyPathBytes {
		return nil, StatusBadArgument
	}
	return SplitPropertyPath(raw), StatusOK
}

// SplitPropertyPath splits a property path into its segments the way Envoy
// does: NUL bytes separate segments, a trailing NUL ends the path, empty
// segments in the middle are kept, and nothing else (no dot) separates.
func SplitPropertyPath(path []byte) []string {
	var segs []string
	for start := 0; start < len(path); {
		end := start
		for end < len(path) && path[end] != 0 {
			end++
		}
		segs = append(segs, string(path[start:end]))
		start = end + 1
	}
	return segs
}

// JoinPropertyPath builds the path for segs, NUL-separated.
func JoinPropertyPath(segs ...string) []byte {
	return []byte(strings.Join(segs, "\x00"))
}

// Encoders for property values, in Envoy's encodings. Data planes that
// implement Properties themselves use them; StreamInfo does.

// EncodeInt64 encodes an int64 property: 8 bytes, little-endian.
func EncodeInt64(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

// EncodeUint64 encodes a uint64 property: 8 bytes, little-endian.
func EncodeUint64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// EncodeFloat64 encodes a double property: IEEE 754, 8 bytes little-endian.
func EncodeFloat64(v float64) []byte { return EncodeUint64(math.Float64bits(v)) }

// EncodeBool encodes a bool property: one byte, 0 or 1.
func EncodeBool(v bool) []byte {
	if v {
		return []byte{1}
	}
	return []byte{0}
}

// EncodeDuration encodes a duration property as int64 nanoseconds.
func EncodeDuration(d time.Duration) []byte { return EncodeInt64(int64(d)) }

// EncodeTimestamp encodes a timestamp property as int64 nanoseconds since
// the Unix epoch.
func EncodeTimestamp(t time.Time) []byte { return EncodeInt64(t.UnixNano()) }

// EncodeMessage encodes a message property in the protobuf wire format
// (deterministic).
func EncodeMessage(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// EncodeMap encodes a map of string values in the pair format.
func EncodeMap(fields []Field) []byte { return SerializePairs(fields) }

// EncodeList encodes a list of strings: pairs with each item as the key and
// an empty value, as Envoy does.
func EncodeList(items []string) []byte {
	fields := make([]Field, len(items))
	for k, s := range items {
		fields[k].Key = s
	}
	return SerializePairs(fields)
}

// DecodeInt64 decodes an 8-byte little-endian integer property.
func DecodeInt64(b []byte) (int64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint64(b)), true
}

// ---------------------------------------------------------------------------
// Host-side lookup.

// propState is a context's stored properties: its filter state (values of
// proxy_set_property under "wasm.<path>", values of set_envoy_filter_state
// under their key) and, for root contexts, the declared properties.
type propState struct {
	state    map[string]*stateEntry
	declared map[string]*propertyDecl
	bytes    int
	entries  int
}

// stateEntry is one filter-state value.
type stateEntry struct {
	value    string
	set      bool
	readOnly bool
	span     lifeSpan
}

// propertyDecl is a declare_property declaration.
type propertyDecl struct {
	readOnly bool
	typ      propertyType
	schema   string
	span     lifeSpan
}

// propertyType is Envoy's WasmType.
type propertyType int32

// Envoy's WasmType values.
const (
	propertyBytes       propertyType = 0
	propertyString      propertyType = 1
	propertyFlatBuffers propertyType = 2
	propertyProtobuf    propertyType = 3
)

// lifeSpan is Envoy's LifeSpan of a filter-state value. The host records it;
// a stream's values live as long as the stream.
type lifeSpan int32

// Envoy's LifeSpan values.
const (
	spanFilterChain          lifeSpan = 0
	spanDownstreamRequest    lifeSpan = 1
	spanDownstreamConnection lifeSpan = 2
)

func (c *contextState) propState() *propState {
	if c.props == nil {
		c.props = &propState{}
	}
	return c.props
}

// charge accounts for n more bytes and k more entries; false past the caps.
func (p *propState) charge(n, k int) bool {
	if p.bytes+n > maxPropertyBytes || p.entries+k > maxPropertyEntries {
		return false
	}
	p.bytes += n
	p.entries += k
	return true
}

// rootOf is the root context of c (c itself for a root context).
func rootOf(c *contextState) *contextState {
	if c.root != nil {
		return c.root
	}
	return c
}

// streamOfContext returns c's stream, or nil for a root context.
func streamOfContext(c *contextState) *streamBase {
	switch {
	case c == nil:
		return nil
	case c.http != nil:
		return &c.http.streamBase
	case c.tcp != nil:
		return &c.tcp.streamBase
	}
	return nil
}

// setFilterState stores value under key in c's filter state. user marks a
// proxy_set_property write, whose declaration (by name) is looked up on
// the root context.
func (i *instance) setFilterState(c *contextState, key, value, name string, user bool) Status {
	ps := c.propState()
	e := ps.state[key]
	if e != nil && e.readOnly && e.set {
		return StatusBadArgument
	}
	var fresh *stateEntry
	if e == nil {
		fresh = &stateEntry{}
		if user {
			if d := rootOf(c).props.declaration(name); d != nil {
				fresh.readOnly, fresh.span = d.readOnly, d.span
			}
		}
		if !ps.charge(len(key)+len(value), 1) {
			return StatusBadArgument
		}
	} else if !ps.charge(len(value)-len(e.value), 0) {
		return StatusBadArgument
	}
	if sb := streamOfContext(c); sb != nil {
		if setter, ok := sb.props.(PropertySetter); ok {
			if !setter.SetProperty([]string{"filter_state", key}, []byte(value)) {
				// Undo the charge.
				if fresh != nil {
					ps.charge(-len(key)-len(value), -1)
				} else {
					ps.charge(len(e.value)-len(value), 0)
				}
				if user {
					return StatusBadArgument
				}
				return StatusNotFound
			}
		}
	}
	if fresh != nil {
		if ps.state == nil {
			ps.state = map[string]*stateEntry{}
		}
		ps.state[key] = fresh
		e = fresh
	}
	e.value, e.set = value, true
	return StatusOK
}

func (p *propState) declaration(name string) *propertyDecl {
	if p == nil {
		return nil
	}
	return p.declared[name]
}

// lookup returns the filter-state value under key.
func (p *propState) lookup(key string) (string, bool) {
	if p == nil {
		return "", false
	}
	e, ok := p.state[key]
	if !ok || !e.set {
		return "", false
	}
	return e.value, true
}

// FilterState returns a copy of the filter state the filter stored on this
// stream: proxy_set_property values under "wasm.<path>" (path segments
// joined with NUL) and set_envoy_filter_state values under their key. It
// may be called at any time, including after Close.
func (s *streamBase) FilterState() map[string][]byte {
	if s.inst == nil || s.ctx == nil {
		return nil
	}
	s.inst.mu.Lock()
	defer s.inst.mu.Unlock()
	ps := s.ctx.props
	if ps == nil {
		return map[string][]byte{}
	}
	out := make(map[string][]byte, len(ps.state))
	for k, e := range ps.state {
		if e.set {
			out[k] = []byte(e.value)
		}
	}
	return out
}

// mapTokens are the top-level names whose value is a map the host cannot
// list: reading them bare fails like Envoy (SERIALIZATION_FAILURE).
func isMapToken(name string) bool {
	switch name {
	case "request", "response", "connection", "upstream", "source", "destination",
		"xds", "filter_state", "upstream_filter_state":
		return true
	}
	return false
}

// isDataPlaneToken reports whether the data plane answers name.
func isDataPlaneToken(name string) bool {
	switch name {
	case "connection", "connection_id", "upstream", "source", "destination", "xds",
		"metadata", "upstream_filter_state", "node", "cluster_name", "cluster_metadata",
		"listener_direction", "listener_metadata", "route_name", "route_metadata",
		"upstream_host_metadata":
		return true
	}
	return false
}

// isStreamOnlyToken reports whether name only exists in a stream context
// (a root context answers NOT_FOUND without asking the plugin's
// Properties).
func isStreamOnlyToken(name string) bool {
	switch name {
	case "connection", "connection_id", "upstream", "source", "destination", "metadata",
		"upstream_filter_state":
		return true
	}
	return false
}

// getProperty answers a property path for context c (which may be nil
// before any context exists).
func (i *instance) getProperty(c *contextState, segs []string) ([]byte, Status) {
	if len(segs) == 0 {
		return nil, StatusNotFound
	}
	name, rest := segs[0], segs[1:]
	switch name {
	case "plugin_vm_id":
		return resolveProperty(i.vm.cfg.ID, rest)
	case "plugin_name", "plugin_root_id":
		if c == nil || c.plugin == nil {
			return nil, StatusNotFound
		}
		if name == "plugin_name" {
			return resolveProperty(c.plugin.cfg.Name, rest)
		}
		return resolveProperty(c.plugin.cfg.RootID, rest)
	}
	if c == nil {
		return nil, StatusNotFound
	}
	q := propQuery{c: c, sb: streamOfContext(c), full: segs}
	switch {
	case name == "request" || name == "response":
		if q.sb == nil {
			return nil, StatusNotFound
		}
		if len(rest) == 0 {
			return nil, StatusSerializationFailure
		}
		if name == "request" {
			return q.request(rest)
		}
		return q.response(rest)
	case name == "filter_state":
		if len(rest) == 0 {
			if q.sb == nil {
				return nil, StatusNotFound
			}
			return nil, StatusSerializationFailure
		}
		if v, ok := c.props.lookup(rest[0]); ok {
			return resolveProperty([]byte(v), rest[1:])
		}
		return q.ask()
	case isDataPlaneToken(name):
		if q.sb == nil && isStreamOnlyToken(name) {
			return nil, StatusNotFound
		}
		if len(rest) == 0 && isMapToken(name) {
			return nil, StatusSerializationFailure
		}
		return q.ask()
	}
	if v, ok := c.props.lookup(userPropertyPrefix + strings.Join(segs, "\x00")); ok {
		return []byte(v), StatusOK
	}
	return q.ask()
}

// propQuery is one lookup in a context.
type propQuery struct {
	c    *contextState
	sb   *streamBase
	full []string
}

// ask asks the data plane: the stream's Properties, then the plugin's.
func (q *propQuery) ask() ([]byte, Status) {
	return q.askPath(q.full)
}

func (q *propQuery) askPath(path []string) ([]byte, Status) {
	if q.sb != nil && q.sb.props != nil {
		if v, ok := q.sb.props.GetProperty(path); ok {
			return v, StatusOK
		}
	}
	if q.c.plugin != nil && q.c.plugin.cfg.Properties != nil {
		if v, ok := q.c.plugin.cfg.Properties.GetProperty(path); ok {
			return v, StatusOK
		}
	}
	return nil, StatusNotFound
}

// askInt64 asks the data plane for an int64 path.
func (q *propQuery) askInt64(path ...string) (int64, bool) {
	v, s := q.askPath(path)
	if s != StatusOK {
		return 0, false
	}
	return DecodeInt64(v)
}

func (q *propQuery) http() *HTTPStream {
	if q.c.http == nil {
		return nil
	}
	return q.c.http
}

// request answers request.<rest...>.
func (q *propQuery) request(rest []string) ([]byte, Status) {
	var h *Headers
	if s := q.http(); s != nil {
		h = s.reqHeaders
	}
	field, sub := rest[0], rest[1:]
	header := func(keys ...string) ([]byte, Status) {
		for _, k := range keys {
			if v, ok := h.Get(k); ok {
				return resolveProperty(v, sub)
			}
		}
		return q.ask()
	}
	switch field {
	case "path":
		return header(":path")
	case "host":
		return header(":authority", "host")
	case "scheme":
		return header(":scheme")
	case "method":
		return header(":method")
	case "referer":
		return header("referer")
	case "useragent":
		return header("user-agent")
	case "id":
		return header("x-request-id")
	case "url_path", "query":
		if h == nil {
			return q.ask()
		}
		p, _ := h.Get(":path")
		before, after, found := strings.Cut(p, "?")
		if field == "url_path" {
			return resolveProperty(before, sub)
		}
		if !found {
			after = ""
		}
		after, _, _ = strings.Cut(after, "#")
		return resolveProperty(after, sub)
	case "headers":
		return resolveProperty(headerMap{h}, sub)
	case "headers_bytes":
		return resolveProperty(int64(headersBytes(h)), sub)
	case "size":
		if v, ok := h.Get("content-length"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, StatusNotFound
			}
			return resolveProperty(n, sub)
		}
		return q.ask()
	case "total_size":
		if v, s := q.ask(); s == StatusOK {
			return v, s
		}
		n, ok := q.askInt64("request", "size")
		if !ok {
			return nil, StatusNotFound
		}
		return resolveProperty(n+int64(headersBytes(h)), sub)
	}
	return q.ask()
}

// response answers response.<rest...>.
func (q *propQuery) response(rest []string) ([]byte, Status) {
	var h, t *Headers
	var local *LocalResponse
	if s := q.http(); s != nil {
		h, t, local = s.respHeaders, s.respTrailers, s.getLocal()
	}
	field, sub := rest[0], rest[1:]
	switch field {
	case "code":
		if code, ok := q.responseCode(h, local); ok {
			return resolveProperty(code, sub)
		}
		return nil, StatusNotFound
	case "code_details":
		if local != nil {
			return resolveProperty(local.Details, sub)
		}
		return q.ask()
	case "grpc_status":
		if v, ok := grpcStatusOf(t); ok {
			return resolveProperty(v, sub)
		}
		if v, ok := grpcStatusOf(h); ok {
			return resolveProperty(v, sub)
		}
		if local != nil && local.GRPCStatus >= 0 {
			return resolveProperty(int64(local.GRPCStatus), sub)
		}
		if code, ok := q.responseCode(h, local); ok {
			return resolveProperty(httpToGRPCStatus(code), sub)
		}
		return nil, StatusNotFound
	case "headers":
		return resolveProperty(headerMap{h}, sub)
	case "trailers":
		return resolveProperty(headerMap{t}, sub)
	case "headers_bytes":
		return resolveProperty(int64(headersBytes(h)), sub)
	case "total_size":
		if v, s := q.ask(); s == StatusOK {
			return v, s
		}
		n, ok := q.askInt64("response", "size")
		if !ok {
			return nil, StatusNotFound
		}
		return resolveProperty(n+int64(headersBytes(h)+headersBytes(t)), sub)
	}
	return q.ask()
}

// responseCode is :status, the local response's code, or the data plane's.
func (q *propQuery) responseCode(h *Headers, local *LocalResponse) (int64, bool) {
	if v, ok := h.Get(":status"); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n, true
		}
	}
	if local != nil && local.StatusCode != 0 {
		return int64(local.StatusCode), true
	}
	return q.askInt64("response", "code")
}

// grpcStatusOf reads grpc-status like Envoy: absent or empty is no status,
// a value that is not a number up to 16 is -1 (InvalidCode).
func grpcStatusOf(h *Headers) (int64, bool) {
	v, ok := h.Get("grpc-status")
	if !ok || v == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > 16 {
		return -1, true
	}
	return int64(n), true
}

// httpToGRPCStatus maps an HTTP status to a gRPC status as Envoy does.
func httpToGRPCStatus(code int64) int64 {
	switch code {
	case 400:
		return 13 // INTERNAL
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return 7 // PERMISSION_DENIED
	case 404:
		return 12 // UNIMPLEMENTED
	case 429, 502, 503, 504:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}

// headersBytes is Envoy's HeaderMap::byteSize: key and value lengths.
func headersBytes(h *Headers) int {
	n := 0
	for _, f := range h.Fields() {
		n += len(f.Key) + len(f.Value)
	}
	return n
}

// ---------------------------------------------------------------------------
// Values and the path walk.
//
// A property value is one of: nil (null), string, []byte, int64, uint64,
// float64, bool, time.Duration, time.Time, protoreflect.Message, propMap or
// []any (a list).

// propMap is a map-valued property.
type propMap interface {
	// lookup returns the value under a key.
	lookup(key string) (any, bool)
	// entries lists the map for serialisation; false when it cannot be
	// listed.
	entries() ([]propEntry, bool)
}

type propEntry struct {
	key   any
	value any
}

// lazyMap is a map computed key by key; it cannot be listed (like Envoy's
// request, connection or xds wrappers).
type lazyMap func(key string) (any, bool)

func (m lazyMap) lookup(key string) (any, bool) { return m(key) }
func (lazyMap) entries() ([]propEntry, bool)    { return nil, false }

// entryMap is a listed map with string keys.
type entryMap []propEntry

func (m entryMap) lookup(key string) (any, bool) {
	for _, e := range m {
		if k, ok := e.key.(string); ok && k == key {
			return e.value, true
		}
	}
	return nil, false
}

func (m entryMap) entries() ([]propEntry, bool) { return m, true }

// headerMap is a header map as Envoy's CEL sees it: one entry per name,
// repeated values joined with ",".
type headerMap struct{ h *Headers }

func (m headerMap) lookup(key string) (any, bool) {
	if !validHeaderName(key) {
		return nil, false
	}
	vals := m.h.Values(key)
	if len(vals) == 0 {
		return nil, false
	}
	return strings.Join(vals, ","), true
}

func (m headerMap) entries() ([]propEntry, bool) {
	var out []propEntry
	seen := map[string]bool{}
	for _, f := range m.h.Fields() {
		if seen[f.Key] {
			continue
		}
		seen[f.Key] = true
		out = append(out, propEntry{key: f.Key, value: strings.Join(m.h.Values(f.Key), ",")})
	}
	return out, true
}

// validHeaderName accepts an HTTP token, optionally after one ':' (pseudo
// headers), like Envoy's header name check.
func validHeaderName(s string) bool {
	s = strings.TrimPrefix(s, ":")
	if s == "" {
		return false
	}
	for k := 0; k < len(s); k++ {
		c := s[k]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// protoMap is a protobuf map field.
type protoMap struct {
	m  protoreflect.Map
	fd protoreflect.FieldDescriptor
}

func (m protoMap) lookup(key string) (any, bool) {
	if m.fd.MapKey().Kind() != protoreflect.StringKind {
		return nil, false
	}
	v := m.m.Get(protoreflect.ValueOfString(key).MapKey())
	if !v.IsValid() {
		return nil, false
	}
	return protoScalar(m.fd.MapValue(), v), true
}

func (m protoMap) entries() ([]propEntry, bool) {
	type kv struct {
		k protoreflect.MapKey
		v protoreflect.Value
	}
	var all []kv
	m.m.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		all = append(all, kv{k, v})
		return true
	})
	sort.Slice(all, func(a, b int) bool { return all[a].k.String() < all[b].k.String() })
	out := make([]propEntry, len(all))
	for n, e := range all {
		out[n] = propEntry{key: protoScalar(m.fd.MapKey(), e.k.Value()), value: protoScalar(m.fd.MapValue(), e.v)}
	}
	return out, true
}

// resolveProperty walks path from v and encodes the result.
func resolveProperty(v any, path []string) ([]byte, Status) {
	for _, seg := range path {
		var s Status
		if v, s = selectProperty(v, seg); s != StatusOK {
			return nil, s
		}
	}
	return encodeProperty(v)
}

// selectProperty applies one path segment to a value.
func selectProperty(v any, seg string) (any, Status) {
	switch x := v.(type) {
	case propMap:
		if r, ok := x.lookup(seg); ok {
			return r, StatusOK
		}
	case protoreflect.Message:
		fd := x.Descriptor().Fields().ByName(protoreflect.Name(seg))
		if fd == nil {
			return nil, StatusNotFound
		}
		return protoField(fd, x.Get(fd)), StatusOK
	case []any:
		n, err := strconv.Atoi(seg)
		if err != nil || n < 0 || n >= len(x) {
			return nil, StatusNotFound
		}
		return x[n], StatusOK
	}
	return nil, StatusNotFound
}

// encodeProperty serialises a value in Envoy's encoding.
func encodeProperty(v any) ([]byte, Status) {
	switch x := v.(type) {
	case string:
		return []byte(x), StatusOK
	case []byte:
		return x, StatusOK
	case int64:
		return EncodeInt64(x), StatusOK
	case uint64:
		return EncodeUint64(x), StatusOK
	case float64:
		return EncodeFloat64(x), StatusOK
	case bool:
		return EncodeBool(x), StatusOK
	case time.Duration:
		return EncodeDuration(x), StatusOK
	case time.Time:
		return EncodeTimestamp(x), StatusOK
	case protoreflect.Message:
		if !x.IsValid() {
			return []byte{}, StatusOK
		}
		b, err := EncodeMessage(x.Interface())
		if err != nil {
			return nil, StatusSerializationFailure
		}
		return b, StatusOK
	case propMap:
		es, ok := x.entries()
		if !ok {
			return nil, StatusSerializationFailure
		}
		fields := make([]Field, len(es))
		for n, e := range es {
			k, s := encodeProperty(e.key)
			if s != StatusOK {
				return nil, s
			}
			val, s := encodeProperty(e.value)
			if s != StatusOK {
				return nil, s
			}
			fields[n] = Field{Key: string(k), Value: string(val)}
		}
		return SerializePairs(fields), StatusOK
	case []any:
		fields := make([]Field, len(x))
		for n, e := range x {
			k, s := encodeProperty(e)
			if s != StatusOK {
				return nil, s
			}
			fields[n].Key = string(k)
		}
		return SerializePairs(fields), StatusOK
	}
	return nil, StatusSerializationFailure
}

// protoField converts a field's value as CEL does.
func protoField(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch {
	case fd.IsMap():
		return protoMap{m: v.Map(), fd: fd}
	case fd.IsList():
		l := v.List()
		out := make([]any, l.Len())
		for n := range out {
			out[n] = protoScalar(fd, l.Get(n))
		}
		return out
	}
	return protoScalar(fd, v)
}

// protoScalar converts one (non-repeated) value.
func protoScalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return v.Bool()
	case protoreflect.EnumKind:
		return int64(v.Enum())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return v.Int()
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.Uint()
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return v.Float()
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		return v.Bytes()
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return unwrapMessage(v.Message())
	}
	return nil
}

// unwrapMessage turns the well-known types into plain values, like CEL.
func unwrapMessage(m protoreflect.Message) any {
	d := m.Descriptor()
	field := func(name string) (protoreflect.FieldDescriptor, protoreflect.Value) {
		fd := d.Fields().ByName(protoreflect.Name(name))
		return fd, m.Get(fd)
	}
	switch d.FullName() {
	case "google.protobuf.Struct":
		_, v := field("fields")
		return structEntries(v.Map())
	case "google.protobuf.Value":
		od := d.Oneofs().ByName("kind")
		fd := m.WhichOneof(od)
		if fd == nil || fd.Name() == "null_value" {
			return nil
		}
		return protoScalar(fd, m.Get(fd))
	case "google.protobuf.ListValue":
		fd, v := field("values")
		return protoField(fd, v)
	case "google.protobuf.Timestamp":
		_, s := field("seconds")
		_, n := field("nanos")
		return time.Unix(s.Int(), n.Int()).UTC()
	case "google.protobuf.Duration":
		_, s := field("seconds")
		_, n := field("nanos")
		return time.Duration(s.Int())*time.Second + time.Duration(n.Int())
	case "google.protobuf.BoolValue", "google.protobuf.Int32Value", "google.protobuf.Int64Value",
		"google.protobuf.UInt32Value", "google.protobuf.UInt64Value", "google.protobuf.FloatValue",
		"google.protobuf.DoubleValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
		fd, v := field("value")
		return protoScalar(fd, v)
	case "google.protobuf.Any":
		_, url := field("type_url")
		_, val := field("value")
		mt, err := protoregistry.GlobalTypes.FindMessageByURL(url.String())
		if err != nil {
			return m
		}
		inner := mt.New()
		if err := proto.Unmarshal(val.Bytes(), inner.Interface()); err != nil {
			return m
		}
		return unwrapMessage(inner)
	}
	return m
}

// structEntries lists a Struct's fields sorted by name.
func structEntries(fields protoreflect.Map) entryMap {
	var out entryMap
	fields.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		out = append(out, propEntry{key: k.String(), value: unwrapMessage(v.Message())})
		return true
	})
	sort.Slice(out, func(a, b int) bool { return out[a].key.(string) < out[b].key.(string) })
	return out
}

// ---------------------------------------------------------------------------
// StreamInfo.

// TLSInfo describes one side's TLS session for the connection.* and
// upstream.* TLS properties.
type TLSInfo struct {
	Version                     string
	SubjectLocalCertificate     string
	SubjectPeerCertificate      string
	URISanLocalCertificate      []string
	URISanPeerCertificate       []string
	DNSSanLocalCertificate      []string
	DNSSanPeerCertificate       []string
	SHA256PeerCertificateDigest string
	// PeerCertificatePresented makes connection.mtls true.
	PeerCertificatePresented bool
}

// StreamInfo is the data plane's Properties for a stream (or, with only the
// node and listener facts filled in, for a plugin): it answers the
// connection, source, destination, upstream, xds, node, metadata and
// filter_state properties and the request/response facts the host cannot
// derive from header maps, in Envoy's encodings (see the table at the top
// of this file). Zero values mean "unknown" and read NOT_FOUND unless noted.
//
// It also implements PropertySetter: filter-state writes land in
// FilterState, so one StreamInfo shared by every filter of a request shares
// the filter state between them, as in Envoy.
//
// Set the fields before the stream starts, or later through Update: the
// host reads them from callbacks that may run on other goroutines.
type StreamInfo struct {
	mu sync.RWMutex

	// Downstream connection.

	// ConnectionID is connection.id and connection_id; 0 is unknown, so
	// number connections from 1.
	ConnectionID       uint64
	SourceAddress      netip.AddrPort
	DestinationAddress netip.AddrPort
	// RequestedServerName is the SNI (connection.requested_server_name,
	// always answered).
	RequestedServerName              string
	DownstreamTLS                    *TLSInfo
	TerminationDetails               string
	DownstreamTransportFailureReason string

	// Request and response facts.

	StartTime time.Time
	// Protocol is "HTTP/1.0", "HTTP/1.1", "HTTP/2" or "HTTP/3".
	Protocol string
	// Duration is the request's duration once complete (request.duration).
	Duration time.Duration
	// BytesReceived and BytesSent are the body bytes (request.size without
	// a content-length, response.size; always answered).
	BytesReceived       int64
	BytesSent           int64
	ResponseCode        uint32
	ResponseCodeDetails string
	// ResponseFlags is Envoy's response flags bitmask (always answered).
	ResponseFlags  uint64
	BackendLatency time.Duration

	// Upstream.

	UpstreamAddress                netip.AddrPort
	UpstreamLocalAddress           netip.AddrPort
	UpstreamTLS                    *TLSInfo
	UpstreamLocality               *corev3.Locality
	UpstreamTransportFailureReason string
	// UpstreamRequestAttemptCount is always answered.
	UpstreamRequestAttemptCount uint64

	// xDS facts.

	Node                 *corev3.Node
	ClusterName          string
	ClusterMetadata      *corev3.Metadata
	RouteName            string
	RouteMetadata        *corev3.Metadata
	VirtualHostName      string
	VirtualHostMetadata  *corev3.Metadata
	UpstreamHostMetadata *corev3.Metadata
	// FilterChainName is always answered.
	FilterChainName  string
	ListenerMetadata *corev3.Metadata
	// ListenerDirection is always answered.
	ListenerDirection corev3.TrafficDirection
	// DynamicMetadata is "metadata".
	DynamicMetadata *corev3.Metadata

	// FilterState holds filter-state values by key: "filter_state.<key>",
	// and "wasm.<path>" values answer a user property <path>.
	FilterState map[string][]byte
}

var (
	_ Properties     = (*StreamInfo)(nil)
	_ PropertySetter = (*StreamInfo)(nil)
)

// Update changes the fields under the lock that GetProperty reads them with.
func (s *StreamInfo) Update(f func(*StreamInfo)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// FilterStateValue returns one filter-state value.
func (s *StreamInfo) FilterStateValue(key string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.FilterState[key]
	return v, ok
}

// SetProperty stores filter-state writes (path ["filter_state", key]);
// it refuses any other path.
func (s *StreamInfo) SetProperty(path []string, value []byte) bool {
	if len(path) != 2 || path[0] != "filter_state" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.FilterState == nil {
		s.FilterState = map[string][]byte{}
	}
	s.FilterState[path[1]] = append([]byte(nil), value...)
	return true
}

// GetProperty answers path in Envoy's encoding.
func (s *StreamInfo) GetProperty(path []string) ([]byte, bool) {
	if len(path) == 0 {
		return nil, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.top(path[0])
	if !ok {
		if fs, ok := s.FilterState[userPropertyPrefix+strings.Join(path, "\x00")]; ok {
			return fs, true
		}
		return nil, false
	}
	b, st := resolveProperty(v, path[1:])
	return b, st == StatusOK
}

// top returns the value of a top-level name.
func (s *StreamInfo) top(name string) (any, bool) {
	switch name {
	case "request":
		return lazyMap(s.request), true
	case "response":
		return lazyMap(s.response), true
	case "connection":
		return lazyMap(s.connection), true
	case "connection_id":
		return s.ConnectionID, s.ConnectionID != 0
	case "source":
		return peerMap(s.SourceAddress), true
	case "destination":
		return peerMap(s.DestinationAddress), true
	case "upstream":
		return lazyMap(s.upstream), true
	case "xds":
		return lazyMap(s.xds), true
	case "metadata":
		return messageOrMissing(s.DynamicMetadata)
	case "filter_state":
		return lazyMap(func(key string) (any, bool) {
			v, ok := s.FilterState[key]
			return v, ok
		}), true
	case "node", "cluster_name", "cluster_metadata", "listener_direction", "listener_metadata",
		"route_name", "route_metadata", "upstream_host_metadata":
		return s.xds(name)
	}
	return nil, false
}

func (s *StreamInfo) request(key string) (any, bool) {
	switch key {
	case "time":
		return s.StartTime, !s.StartTime.IsZero()
	case "protocol":
		return s.Protocol, s.Protocol != ""
	case "duration":
		return s.Duration, s.Duration > 0
	case "size":
		return s.BytesReceived, true
	}
	return nil, false
}

func (s *StreamInfo) response(key string) (any, bool) {
	switch key {
	case "code":
		return int64(s.ResponseCode), s.ResponseCode != 0
	case "code_details":
		return s.ResponseCodeDetails, s.ResponseCodeDetails != ""
	case "flags":
		return int64(s.ResponseFlags), true
	case "size":
		return s.BytesSent, true
	case "backend_latency":
		return s.BackendLatency, s.BackendLatency > 0
	}
	return nil, false
}

func (s *StreamInfo) connection(key string) (any, bool) {
	switch key {
	case "id":
		return s.ConnectionID, s.ConnectionID != 0
	case "mtls":
		return s.DownstreamTLS != nil && s.DownstreamTLS.PeerCertificatePresented, true
	case "requested_server_name":
		return s.RequestedServerName, true
	case "termination_details":
		return s.TerminationDetails, s.TerminationDetails != ""
	case "transport_failure_reason":
		return s.DownstreamTransportFailureReason, s.DownstreamTransportFailureReason != ""
	}
	return tlsField(s.DownstreamTLS, key)
}

func (s *StreamInfo) upstream(key string) (any, bool) {
	switch key {
	case "address":
		return s.UpstreamAddress.String(), s.UpstreamAddress.IsValid()
	case "port":
		return int64(s.UpstreamAddress.Port()), s.UpstreamAddress.IsValid()
	case "local_address":
		return s.UpstreamLocalAddress.String(), s.UpstreamLocalAddress.IsValid()
	case "locality":
		return messageOrMissing(s.UpstreamLocality)
	case "transport_failure_reason":
		return s.UpstreamTransportFailureReason, s.UpstreamAddress.IsValid() || s.UpstreamTransportFailureReason != ""
	case "request_attempt_count":
		return s.UpstreamRequestAttemptCount, true
	}
	return tlsField(s.UpstreamTLS, key)
}

func (s *StreamInfo) xds(key string) (any, bool) {
	switch key {
	case "node":
		return messageOrMissing(s.Node)
	case "cluster_name":
		return s.ClusterName, s.ClusterName != ""
	case "cluster_metadata":
		return messageOrMissing(s.ClusterMetadata)
	case "route_name":
		return s.RouteName, s.RouteName != ""
	case "route_metadata":
		return messageOrMissing(s.RouteMetadata)
	case "virtual_host_name":
		return s.VirtualHostName, s.VirtualHostName != ""
	case "virtual_host_metadata":
		return messageOrMissing(s.VirtualHostMetadata)
	case "upstream_host_metadata":
		return messageOrMissing(s.UpstreamHostMetadata)
	case "filter_chain_name":
		return s.FilterChainName, true
	case "listener_metadata":
		return messageOrMissing(s.ListenerMetadata)
	case "listener_direction":
		return int64(s.ListenerDirection), true
	}
	return nil, false
}

// peerMap answers source.* and destination.*.
func peerMap(a netip.AddrPort) lazyMap {
	return func(key string) (any, bool) {
		if !a.IsValid() {
			return nil, false
		}
		switch key {
		case "address":
			return a.String(), true
		case "port":
			return int64(a.Port()), true
		}
		return nil, false
	}
}

// tlsField answers the TLS properties shared by connection.* and
// upstream.*.
func tlsField(t *TLSInfo, key string) (any, bool) {
	if t == nil {
		return nil, false
	}
	first := func(l []string) (any, bool) {
		if len(l) == 0 {
			return nil, false
		}
		return l[0], true
	}
	switch key {
	case "tls_version":
		return t.Version, true
	case "subject_local_certificate":
		return t.SubjectLocalCertificate, true
	case "subject_peer_certificate":
		return t.SubjectPeerCertificate, true
	case "uri_san_local_certificate":
		return first(t.URISanLocalCertificate)
	case "uri_san_peer_certificate":
		return first(t.URISanPeerCertificate)
	case "dns_san_local_certificate":
		return first(t.DNSSanLocalCertificate)
	case "dns_san_peer_certificate":
		return first(t.DNSSanPeerCertificate)
	case "sha256_peer_certificate_digest":
		return t.SHA256PeerCertificateDigest, t.SHA256PeerCertificateDigest != ""
	}
	return nil, false
}

// messageOrMissing returns m as a property value, or missing for a nil
// message.
func messageOrMissing[M interface {
	proto.Message
	comparable
}](m M) (any, bool) {
	var zero M
	if m == zero {
		return nil, false
	}
	return unwrapMessage(m.ProtoReflect()), true
}
