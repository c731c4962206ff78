package cluster

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/wasmesh/wasmesh/header"
)

// The HTTP/1.1 response head parser of the lean upstream client.

// maxH1HeadBytes bounds a response head (status line, headers and the
// blank line), and so the 1xx heads before it, one at a time.
const maxH1HeadBytes = 1 << 20

// max1xx bounds the informational responses skipped before the final
// one, as net/http does.
const max1xx = 5

var (
	errH1MalformedStatus = errors.New("malformed HTTP status line")
	errH1MalformedHeader = errors.New("malformed HTTP response header")
	errH1HeadTooLarge    = errors.New("HTTP response head too large")
)

// h1Head is a parsed response head.
type h1Head struct {
	proto        string // "HTTP/1.1"
	major, minor int
	status       string // "200 OK"
	code         int
	header       http.Header
	// fields, when the caller asked for the head as a header map, hold
	// the fields instead of header: ":status" first, then the response's
	// fields in order, with lower-case names.
	fields *header.Map
}

// findHeadEnd returns the length of the head in b, through the blank line
// ("\r\n\r\n" or a bare "\n\n"), or -1 when b does not hold all of it.
func findHeadEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		// b[i] ends a line; the head ends when the next line is empty.
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return -1
}

// parseH1Head parses one complete response head (as found by
// findHeadEnd) into out (see h1Head.fields), or, when out is nil, into
// hd.header with http.Header's canonical names; names and values share one
// string copy of the head.
func parseH1Head(b []byte, hd *h1Head, out *header.Map) error {
	lines := 0
	for _, c := range b {
		if c == '\n' {
			lines++
		}
	}
	s := string(b)
	line, rest := cutLine(s)
	*hd = h1Head{}
	if err := parseStatusLine(line, hd); err != nil {
		return err
	}
	if out != nil {
		return parseH1Fields(rest, max(lines-2, 0), hd, out)
	}
	var m header.Map
	if err := parseH1Fields(rest, max(lines-2, 0), hd, &m); err != nil {
		return err
	}
	hd.header, hd.fields = responseHeaderOfFields(&m), nil
	return nil
}

// parseH1Fields parses the field lines of a head into out, after
// ":status"; n is about how many there are. The map gets room for a few
// more (the router and the connection manager add some).
func parseH1Fields(rest string, n int, hd *h1Head, out *header.Map) error {
	fields := make([]header.Field, 1, n+5)
	fields[0] = header.Field{Key: ":status", Value: hd.status[:3]}
	var line string
	for {
		line, rest = cutLine(rest)
		if line == "" {
			out.Adopt(fields)
			hd.fields = out
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			// obs-fold: a continuation of the previous field's value.
			last := &fields[len(fields)-1]
			if len(fields) == 1 {
				return fmt.Errorf("%w: continuation line %q", errH1MalformedHeader, clip(line))
			}
			v := trimOWS(line)
			switch {
			case !validFieldValue(v):
				return fmt.Errorf("%w: field %q has an invalid value", errH1MalformedHeader, last.Key)
			case last.Value == "":
				last.Value = v
			case v != "":
				last.Value += " " + v
			}
			continue
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return fmt.Errorf("%w: %q", errH1MalformedHeader, clip(line))
		}
		key, ok := lowerKey(line[:colon])
		if !ok {
			return fmt.Errorf("%w: field name %q", errH1MalformedHeader, clip(line[:colon]))
		}
		v := trimOWS(line[colon+1:])
		if !validFieldValue(v) {
			return fmt.Errorf("%w: field %q has an invalid value", errH1MalformedHeader, key)
		}
		fields = append(fields, header.Field{Key: key, Value: v})
	}
}

// lowerKey validates a field name and returns it in lower case: the name
// itself when it already is, a shared constant for common names, else a
// new string.
func lowerKey(k string) (string, bool) {
	lower := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !isTokenChar(c) {
			return "", false
		}
		if 'A' <= c && c <= 'Z' {
			lower = false
		}
	}
	if lower {
		return k, true
	}
	var buf [64]byte
	b := buf[:0]
	if len(k) > len(buf) {
		b = make([]byte, 0, len(k))
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return header.Intern(b), true
}

// cutLine splits off the first line of s, without its "\r\n" or "\n".
func cutLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}

func parseStatusLine(line string, hd *h1Head) error {
	proto, status, ok := strings.Cut(line, " ")
	if !ok {
		return fmt.Errorf("%w: %q", errH1MalformedStatus, clip(line))
	}
	switch proto {
	case "HTTP/1.1":
		hd.major, hd.minor = 1, 1
	case "HTTP/1.0":
		hd.major, hd.minor = 1, 0
	default:
		major, minor, ok := http.ParseHTTPVersion(proto)
		if !ok || major != 1 {
			return fmt.Errorf("%w: version %q", errH1MalformedStatus, clip(proto))
		}
		hd.major, hd.minor = major, minor
	}
	hd.proto = proto
	status = strings.TrimLeft(status, " ")
	if len(status) < 3 || len(status) > 3 && status[3] != ' ' {
		return fmt.Errorf("%w: %q", errH1MalformedStatus, clip(line))
	}
	code := 0
	for i := 0; i < 3; i++ {
		d := status[i]
		if d < '0' || d > '9' {
			return fmt.Errorf("%w: %q", errH1MalformedStatus, clip(line))
		}
		code = code*10 + int(d-'0')
	}
	if code < 100 {
		return fmt.Errorf("%w: %q", errH1MalformedStatus, clip(line))
	}
	for i := 3; i < len(status); i++ {
		if c := status[i]; c < ' ' && c != '\t' || c == 0x7f {
			return fmt.Errorf("%w: %q", errH1MalformedStatus, clip(line))
		}
	}
	hd.code, hd.status = code, status
	return nil
}

func isTokenChar(c byte) bool {
	return c < 0x80 && tokenTable[c]
}

var tokenTable = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validFieldValue reports whether v has no control characters other than
// horizontal tab (what net/http accepts in a header value).
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// clip shortens what an error quotes from the wire.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// hasToken reports whether a comma-separated field value list holds tok
// (case-insensitive).
func hasToken(vv []string, tok string) bool {
	for _, v := range vv {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(trimOWS(t), tok) {
				return true
			}
		}
	}
	return false
}
