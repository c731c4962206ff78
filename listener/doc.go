// Package listener owns sockets, TLS, original-destination recovery, the
// network filter chains (HTTP connection manager, TCP proxy) and the HTTP/1.1
// and HTTP/2 codecs of the data plane.
package listener
