// Package reqtarget parses an HTTP request target (the request line's
// target, HTTP/2's :path) into a url.URL exactly as url.ParseRequestURI
// does, with a fast path for the common origin-form that needs no
// unescaping: one allocation instead of the parser's work.
package reqtarget
