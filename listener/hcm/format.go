package hcm

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/header"
)

// DefaultAccessLogFormat is Envoy's default access log line.
const DefaultAccessLogFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"` + "\n"

// formatPart is a literal or a command of a compiled format string.
type formatPart struct {
	lit    string
	cmd    string // START_TIME, REQ, ...
	arg    string // REQ's header (with ?alt), START_TIME's strftime
	alt    string
	maxLen int
	isCmd  bool
}

// Format is a compiled Envoy substitution format string.
type Format struct {
	parts []formatPart
	json  map[string]*Format // json_format
	keys  []string
}

// knownCommands are the commands the formatter evaluates.
var knownCommands = map[string]bool{
	"START_TIME": true, "REQ": true, "RESP": true, "TRAILER": true, "RESPONSE_CODE": true,
	"RESPONSE_FLAGS": true, "RESPONSE_CODE_DETAILS": true, "BYTES_SENT": true, "BYTES_RECEIVED": true,
	"DURATION": true, "UPSTREAM_HOST": true, "UPSTREAM_CLUSTER": true, "DOWNSTREAM_REMOTE_ADDRESS": true,
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": true, "DOWNSTREAM_LOCAL_ADDRESS": true,
	"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": true, "PROTOCOL": true, "ROUTE_NAME": true,
	"REQUESTED_SERVER_NAME": true, "HOSTNAME": true, "UPSTREAM_TRANSPORT_FAILURE_REASON": true,
	"REQUEST_DURATION": true, "RESPONSE_DURATION": true, "CONNECTION_ID": true,
	"DOWNSTREAM_PEER_URI_SAN": true, "UPSTREAM_REQUEST_ATTEMPT_COUNT": true, "FILTER_STATE": true,
}

// numericCommands produce numbers in json_format.
var numericCommands = map[string]bool{
	"RESPONSE_CODE": true, "BYTES_SENT": true, "BYTES_RECEIVED": true, "DURATION": true,
	"REQUEST_DURATION": true, "RESPONSE_DURATION": true, "CONNECTION_ID": true,
	"UPSTREAM_REQUEST_ATTEMPT_COUNT": true,
}

// CompileFormat parses a format string; unknown commands are errors.
func CompileFormat(s string) (*Format, error) {
	f := &Format{}
	for len(s) > 0 {
		i := strings.IndexByte(s, '%')
		if i < 0 {
			f.parts = append(f.parts, formatPart{lit: s})
			break
		}
		if i > 0 {
			f.parts = append(f.parts, formatPart{lit: s[:i]})
		}
		s = s[i+1:]
		if strings.HasPrefix(s, "%") {
			f.parts = append(f.parts, formatPart{lit: "%"})
			s = s[1:]
			continue
		}
		j := strings.IndexByte(s, '%')
		if j < 0 {
			return nil, fmt.Errorf("unterminated %% command at %q", s)
		}
		// A command's argument may hold '%' (START_TIME's strftime): when a
		// '(' comes first, the command ends at the first '%' after ')'.
		if k := strings.IndexByte(s, '('); k >= 0 && k < j {
			end := strings.IndexByte(s[k:], ')')
			if end < 0 {
				return nil, fmt.Errorf("command %q: missing ')'", s)
			}
			next := strings.IndexByte(s[k+end:], '%')
			if next < 0 {
				return nil, fmt.Errorf("unterminated %% command at %q", s)
			}
			j = k + end + next
		}
		p, err := parseCommand(s[:j])
		if err != nil {
			return nil, err
		}
		f.parts = append(f.parts, p)
		s = s[j+1:]
	}
	return f, nil
}

func parseCommand(c string) (formatPart, error) {
	p := formatPart{isCmd: true}
	name, rest := c, ""
	if k := strings.IndexByte(c, '('); k >= 0 {
		name = c[:k]
		end := strings.LastIndexByte(c, ')')
		if end < k {
			return p, fmt.Errorf("command %q: missing ')'", c)
		}
		rest = c[k+1 : end]
		if tail := c[end+1:]; tail != "" {
			if !strings.HasPrefix(tail, ":") {
				return p, fmt.Errorf("command %q: bad length suffix", c)
			}
			n, err := strconv.Atoi(tail[1:])
			if err != nil || n < 0 {
				return p, fmt.Errorf("command %q: bad length suffix", c)
			}
			p.maxLen = n
		}
	}
	if !knownCommands[name] {
		return p, fmt.Errorf("unknown command %%%s%%", c)
	}
	p.cmd = name
	if main, alt, ok := strings.Cut(rest, "?"); ok {
		p.arg, p.alt = strings.ToLower(main), strings.ToLower(alt)
	} else if name == "START_TIME" {
		p.arg = rest
	} else {
		p.arg = strings.ToLower(rest)
	}
	return p, nil
}

// logEntry is what a format is evaluated against.
type logEntry struct {
	info     *filterchain.StreamInfo
	req      *header.Map
	resp     *header.Map
	trailers *header.Map
	end      time.Time
}

// Write formats e into w.
func (f *Format) Write(w io.Writer, e *logEntry) {
	if f.json != nil {
		obj := make(map[string]any, len(f.keys))
		for _, k := range f.keys {
			sub := f.json[k]
			v := sub.String(e)
			// A value that is one numeric command is a JSON number, as
			// Envoy writes it.
			if len(sub.parts) == 1 && sub.parts[0].isCmd && numericCommands[sub.parts[0].cmd] {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					obj[k] = n
					continue
				}
			}
			obj[k] = v
		}
		b, _ := json.Marshal(obj)
		w.Write(append(b, '\n'))
		return
	}
	io.WriteString(w, f.String(e))
}

// String formats e.
func (f *Format) String(e *logEntry) string {
	var b strings.Builder
	for _, p := range f.parts {
		if !p.isCmd {
			b.WriteString(p.lit)
			continue
		}
		v := evalCommand(p, e)
		if p.maxLen > 0 && len(v) > p.maxLen {
			v = v[:p.maxLen]
		}
		b.WriteString(v)
	}
	return b.String()
}

func headerOr(h *header.Map, k, alt string) string {
	if v, ok := h.Get(k); ok {
		return v
	}
	if alt != "" {
		if v, ok := h.Get(alt); ok {
			return v
		}
	}
	return "-"
}

func evalCommand(p formatPart, e *logEntry) string {
	info := e.info
	switch p.cmd {
	case "START_TIME":
		return strftime(info.StartTime.UTC(), p.arg)
	case "REQ":
		return headerOr(e.req, p.arg, p.alt)
	case "RESP":
		return headerOr(e.resp, p.arg, p.alt)
	case "TRAILER":
		return headerOr(e.trailers, p.arg, p.alt)
	case "RESPONSE_CODE":
		return strconv.Itoa(info.ResponseCode)
	case "RESPONSE_FLAGS":
		return info.ResponseFlags.String()
	case "RESPONSE_CODE_DETAILS":
		return dash(info.ResponseCodeDetails)
	case "BYTES_SENT":
		return strconv.FormatUint(info.BytesSent, 10)
	case "BYTES_RECEIVED":
		return strconv.FormatUint(info.BytesReceived, 10)
	case "DURATION", "REQUEST_DURATION", "RESPONSE_DURATION":
		return strconv.FormatInt(e.end.Sub(info.StartTime).Milliseconds(), 10)
	case "UPSTREAM_HOST":
		return dash(info.UpstreamHost)
	case "UPSTREAM_CLUSTER":
		return dash(info.ClusterName)
	case "DOWNSTREAM_REMOTE_ADDRESS":
		return addrString(info.DownstreamRemote.String(), info.DownstreamRemote.IsValid())
	case "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":
		return addrString(info.DownstreamRemote.Addr().String(), info.DownstreamRemote.IsValid())
	case "DOWNSTREAM_LOCAL_ADDRESS":
		return addrString(info.DownstreamLocal.String(), info.DownstreamLocal.IsValid())
	case "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":
		return addrString(info.DownstreamLocal.Addr().String(), info.DownstreamLocal.IsValid())
	case "PROTOCOL":
		return dash(info.Protocol)
	case "ROUTE_NAME":
		return dash(info.RouteName)
	case "REQUESTED_SERVER_NAME":
		return dash(info.RequestedServerName)
	case "CONNECTION_ID":
		return strconv.FormatUint(info.ConnectionID, 10)
	case "UPSTREAM_REQUEST_ATTEMPT_COUNT":
		return strconv.Itoa(info.Attempts)
	case "FILTER_STATE":
		if v, ok := info.FilterState[p.arg]; ok {
			return string(v)
		}
	}
	return "-"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func addrString(s string, ok bool) string {
	if !ok {
		return "-"
	}
	return s
}

// strftime renders Envoy's START_TIME formats; the default is
// %Y-%m-%dT%H:%M:%E3SZ.
func strftime(t time.Time, f string) string {
	if f == "" {
		return t.Format("2006-01-02T15:04:05.000Z")
	}
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 >= len(f) {
			b.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'Y':
			b.WriteString(t.Format("2006"))
		case 'm':
			b.WriteString(t.Format("01"))
		case 'd':
			b.WriteString(t.Format("02"))
		case 'H':
			b.WriteString(t.Format("15"))
		case 'M':
			b.WriteString(t.Format("04"))
		case 'S':
			b.WriteString(t.Format("05"))
		case 's':
			b.WriteString(strconv.FormatInt(t.Unix(), 10))
		case 'z':
			b.WriteString(t.Format("-0700"))
		case 'E':
			// %E3S, %E6S, %E9S: seconds with fractions.
			if i+2 < len(f) && f[i+2] == 'S' {
				n := int(f[i+1] - '0')
				b.WriteString(t.Format("05"))
				if n > 0 && n <= 9 {
					b.WriteString(t.Format("." + strings.Repeat("0", n)))
				}
				i += 2
			}
		case 'f':
			b.WriteString(fmt.Sprintf("%09d", t.Nanosecond()))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(f[i])
		}
	}
	return b.String()
}
