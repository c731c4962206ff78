package reqtarget

import (
	"net/url"
	"strings"
)

// Parse is url.ParseRequestURI for a request target (a :path), without
// its work for the common origin-form made of characters that need no
// escaping ("/a/b?c=d"); anything else goes through url.ParseRequestURI.
func Parse(path string) (*url.URL, error) {
	if path == "" || path[0] != '/' {
		return url.ParseRequestURI(path)
	}
	p, q, hasQuery := strings.Cut(path, "?")
	for i := 0; i < len(p); i++ {
		if !plainPathByte(p[i]) {
			return url.ParseRequestURI(path)
		}
	}
	for i := 0; i < len(q); i++ {
		if c := q[i]; c < 0x21 || c == 0x7f {
			return url.ParseRequestURI(path)
		}
	}
	return &url.URL{Path: p, RawQuery: q, ForceQuery: hasQuery && q == ""}, nil
}

// plainPathByte reports whether c stands for itself in a path: url's
// unescaped path characters, so Path and its escaped form are the same.
func plainPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', '~', '$', '&', '+', ',', '/', ':', ';', '=', '@':
		return true
	}
	return false
}
