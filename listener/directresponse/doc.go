// Package directresponse is envoy.filters.network.direct_response: the
// terminal network filter that writes a fixed response to each new
// connection and closes it once written.
package directresponse
