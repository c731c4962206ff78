package wasm

import (
	"fmt"
	"strings"
)

// ABIVersion is the Proxy-Wasm ABI a module was built for, detected from its
// proxy_abi_version_* export.
type ABIVersion int

// The ABI versions the host speaks.
const (
	ABIUnknown ABIVersion = iota
	ABI010
	ABI020
	ABI021
)

func (v ABIVersion) String() string {
	switch v {
	case ABI010:
		return "0.1.0"
	case ABI020:
		return "0.2.0"
	case ABI021:
		return "0.2.1"
	}
	return "unknown"
}

// abiMarkers maps the marker export to its version, newest first.
var abiMarkers = []struct {
	export  string
	version ABIVersion
}{
	{"proxy_abi_version_0_2_1", ABI021},
	{"proxy_abi_version_0_2_0", ABI020},
	{"proxy_abi_version_0_1_0", ABI010},
}

// detectABI returns the newest ABI version the module's exports advertise.
func detectABI(exports map[string]bool) (ABIVersion, error) {
	for _, m := range abiMarkers {
		if exports[m.export] {
			return m.version, nil
		}
	}
	return ABIUnknown, fmt.Errorf("module exports no Proxy-Wasm ABI marker (one of %s)", abiMarkerNames())
}

func abiMarkerNames() string {
	names := make([]string, len(abiMarkers))
	for i, m := range abiMarkers {
		names[i] = m.export
	}
	return strings.Join(names, ", ")
}

// Status is proxy_status_t, the result of every host function.
type Status uint32

// Status codes of the spec.
const (
	StatusOK                   Status = 0
	StatusNotFound             Status = 1
	StatusBadArgument          Status = 2
	StatusSerializationFailure Status = 3
	StatusParseFailure         Status = 4
	StatusBadExpression        Status = 5
	StatusInvalidMemoryAccess  Status = 6
	StatusEmpty                Status = 7
	StatusCASMismatch          Status = 8
	StatusResultMismatch       Status = 9
	StatusInternalFailure      Status = 10
	StatusBrokenConnection     Status = 11
	StatusUnimplemented        Status = 12
)

// Action is what a stream callback asks the host to do next.
type Action uint32

// Actions of the spec; Envoy also accepts the StopAll variants.
const (
	ActionContinue                     Action = 0
	ActionPause                        Action = 1
	ActionEndStream                    Action = 2
	ActionStopAllIterationAndBuffer    Action = 3
	ActionStopAllIterationAndWatermark Action = 4
)

// BufferType is proxy_buffer_type_t.
type BufferType uint32

// Buffer types of the spec.
const (
	BufferHTTPRequestBody          BufferType = 0
	BufferHTTPResponseBody         BufferType = 1
	BufferDownstreamData           BufferType = 2
	BufferUpstreamData             BufferType = 3
	BufferHTTPCallResponseBody     BufferType = 4
	BufferGRPCReceive              BufferType = 5
	BufferVMConfiguration          BufferType = 6
	BufferPluginConfiguration      BufferType = 7
	BufferForeignFunctionArguments BufferType = 8
)

// MapType is proxy_map_type_t.
type MapType uint32

// Map types of the spec.
const (
	MapHTTPRequestHeaders       MapType = 0
	MapHTTPRequestTrailers      MapType = 1
	MapHTTPResponseHeaders      MapType = 2
	MapHTTPResponseTrailers     MapType = 3
	MapGRPCInitialMetadata      MapType = 4
	MapGRPCTrailingMetadata     MapType = 5
	MapHTTPCallResponseHeaders  MapType = 6
	MapHTTPCallResponseTrailers MapType = 7
)

// StreamType is proxy_stream_type_t.
type StreamType uint32

// Stream types of the spec.
const (
	StreamHTTPRequest  StreamType = 0
	StreamHTTPResponse StreamType = 1
	StreamDownstream   StreamType = 2
	StreamUpstream     StreamType = 3
)

// PeerType is proxy_peer_type_t, passed to the connection-close callbacks.
type PeerType uint32

// Peer types of the spec.
const (
	PeerUnknown PeerType = 0
	PeerLocal   PeerType = 1
	PeerRemote  PeerType = 2
)

// MetricType is proxy_metric_type_t.
type MetricType uint32

// Metric types of the spec.
const (
	MetricCounter   MetricType = 0
	MetricGauge     MetricType = 1
	MetricHistogram MetricType = 2
)

// LogLevel is proxy_log_level_t.
type LogLevel uint32

// Log levels of the spec.
const (
	LogTrace    LogLevel = 0
	LogDebug    LogLevel = 1
	LogInfo     LogLevel = 2
	LogWarn     LogLevel = 3
	LogError    LogLevel = 4
	LogCritical LogLevel = 5
)

// Size caps on what a guest can make the host hold.
const (
	maxSerializedPairsBytes = 1 << 20 // 1 MiB
	maxSerializedPairs      = 1024
	maxRandomBytes          = 64 << 10 // 64 KiB
	maxLogMessageBytes      = 64 << 10 // longer log lines are truncated
)
