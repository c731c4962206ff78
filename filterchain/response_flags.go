package filterchain

import "strings"

// ResponseFlags are Envoy's %RESPONSE_FLAGS%.
type ResponseFlags uint32

// The flags the data plane sets, with Envoy's short names.
const (
	FlagNoHealthyUpstream               ResponseFlags = 1 << iota // UH
	FlagUpstreamConnectionFailure                                 // UF
	FlagUpstreamOverflow                                          // UO
	FlagNoRouteFound                                              // NR
	FlagUpstreamRequestTimeout                                    // UT
	FlagLocalReset                                                // LR
	FlagUpstreamRemoteReset                                       // UR
	FlagUpstreamConnectionTermination                             // UC
	FlagDownstreamConnectionTermination                           // DC
	FlagStreamIdleTimeout                                         // SI
	FlagDownstreamProtocolError                                   // DPE
	FlagUpstreamRetryLimitExceeded                                // URX
	FlagNoClusterFound                                            // NC
	FlagDurationTimeout                                           // DT
	FlagUnauthorizedExternalService                               // UAEX
	FlagRateLimited                                               // RL
	FlagFaultInjected                                             // FI
	FlagUpstreamProtocolError                                     // UPE
	FlagOverloadManager                                           // OM
)

var flagNames = []struct {
	f    ResponseFlags
	name string
}{
	{FlagNoHealthyUpstream, "UH"},
	{FlagUpstreamConnectionFailure, "UF"},
	{FlagUpstreamOverflow, "UO"},
	{FlagNoRouteFound, "NR"},
	{FlagUpstreamRequestTimeout, "UT"},
	{FlagLocalReset, "LR"},
	{FlagUpstreamRemoteReset, "UR"},
	{FlagUpstreamConnectionTermination, "UC"},
	{FlagDownstreamConnectionTermination, "DC"},
	{FlagStreamIdleTimeout, "SI"},
	{FlagDownstreamProtocolError, "DPE"},
	{FlagUpstreamRetryLimitExceeded, "URX"},
	{FlagNoClusterFound, "NC"},
	{FlagDurationTimeout, "DT"},
	{FlagUnauthorizedExternalService, "UAEX"},
	{FlagRateLimited, "RL"},
	{FlagFaultInjected, "FI"},
	{FlagUpstreamProtocolError, "UPE"},
	{FlagOverloadManager, "OM"},
}

// String renders the flags as Envoy does: comma-separated short names, or
// "-" when none is set.
func (f ResponseFlags) String() string {
	if f == 0 {
		return "-"
	}
	var parts []string
	for _, n := range flagNames {
		if f&n.f != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, ",")
}
