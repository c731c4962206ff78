// Package rawupstream is a test and benchmark upstream: an HTTP/1.1
// server on 127.0.0.1 that answers every body-less request with the same
// bytes, read and written raw, so that what a benchmark measures is the
// proxy side, not the server.
package rawupstream
