package route

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/wasmesh/wasmesh/header"
)

// FormatCommand is one %COMMAND%, %COMMAND(arg)% or %COMMAND(arg):N%
// substitution in a header value (Envoy's substitution format).
type FormatCommand struct {
	// Name is the command, e.g. "DOWNSTREAM_REMOTE_ADDRESS" or "REQ".
	Name string
	// Arg is the text between the parentheses, "" when there are none.
	Arg string
	// MaxLen is the :N truncation, 0 when absent. The package truncates;
	// a Formatter need not.
	MaxLen int
}

func (c FormatCommand) String() string {
	s := "%" + c.Name
	if c.Arg != "" {
		s += "(" + c.Arg + ")"
	}
	if c.MaxLen > 0 {
		s += ":" + strconv.Itoa(c.MaxLen)
	}
	return s + "%"
}

// Formatter expands format commands for one request. The caller supplies
// it, because the values (addresses, times, upstream host, request and
// response headers) live in the stream, not in the route table. A command
// without a value expands to "", as Envoy's header formatter omits empty
// values.
type Formatter interface {
	Format(cmd *FormatCommand) string
}

// FormatterFunc adapts a function to Formatter.
type FormatterFunc func(cmd *FormatCommand) string

// Format calls f.
func (f FormatterFunc) Format(cmd *FormatCommand) string { return f(cmd) }

// formatString is a header value split into literals and commands.
type formatString struct {
	literal string // the whole value when cmds is empty
	parts   []formatPart
}

type formatPart struct {
	lit string
	cmd *FormatCommand
}

func (s *formatString) static() bool { return s.parts == nil }

func (s *formatString) expand(f Formatter) string {
	if s.parts == nil {
		return s.literal
	}
	var b strings.Builder
	for i := range s.parts {
		p := &s.parts[i]
		if p.cmd == nil {
			b.WriteString(p.lit)
			continue
		}
		if f == nil {
			continue
		}
		v := f.Format(p.cmd)
		if p.cmd.MaxLen > 0 && len(v) > p.cmd.MaxLen {
			v = v[:p.cmd.MaxLen]
		}
		b.WriteString(v)
	}
	return b.String()
}

// parseFormat splits a header value into literals and %COMMAND% parts as
// Envoy's substitution format parser does: "%%" is a literal "%", a
// command is %NAME%, %NAME(args)% or %NAME(args):N% with NAME made of
// A-Z, 0-9 and "_", and anything else after a "%" is an error.
func parseFormat(v string) (formatString, error) {
	if !strings.Contains(v, "%") {
		return formatString{literal: v}, nil
	}
	var parts []formatPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, formatPart{lit: lit.String()})
			lit.Reset()
		}
	}
	hasCmd := false
	for i := 0; i < len(v); {
		ch := v[i]
		if ch != '%' {
			lit.WriteByte(ch)
			i++
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			lit.WriteByte('%')
			i += 2
			continue
		}
		cmd, n, ok := parseCommand(v[i:])
		if !ok {
			return formatString{}, fmt.Errorf("invalid header value %q: no valid command at position %d (write a literal %% as %%%%)", v, i)
		}
		flush()
		parts = append(parts, formatPart{cmd: cmd})
		hasCmd = true
		i += n
	}
	flush()
	if !hasCmd {
		return formatString{literal: lit.String() + joinLits(parts)}, nil
	}
	return formatString{parts: parts}, nil
}

func joinLits(parts []formatPart) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.lit)
	}
	return b.String()
}

// parseCommand parses one command at the start of s (which begins with
// "%"), returning it and its length.
func parseCommand(s string) (*FormatCommand, int, bool) {
	i := 1
	for i < len(s) && (s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9' || s[i] == '_') {
		i++
	}
	if i == 1 {
		return nil, 0, false
	}
	cmd := &FormatCommand{Name: s[1:i]}
	if i < len(s) && s[i] == '(' {
		end := strings.IndexByte(s[i:], ')')
		if end < 0 {
			return nil, 0, false
		}
		cmd.Arg = s[i+1 : i+end]
		i += end + 1
	}
	if i < len(s) && s[i] == ':' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 {
			return nil, 0, false
		}
		n, err := strconv.Atoi(s[i+1 : j])
		if err != nil {
			return nil, 0, false
		}
		cmd.MaxLen = n
		i = j
	}
	if i >= len(s) || s[i] != '%' {
		return nil, 0, false
	}
	return cmd, i + 1, true
}

// AppendAction is how a header to add meets an existing header of the same
// name (envoy.config.core.v3.HeaderValueOption.HeaderAppendAction).
type AppendAction uint8

const (
	// AppendIfExistsOrAdd adds another field with the same name.
	AppendIfExistsOrAdd AppendAction = iota
	// AddIfAbsent adds the field only when the header is absent.
	AddIfAbsent
	// OverwriteIfExistsOrAdd replaces every existing value, or adds.
	OverwriteIfExistsOrAdd
	// OverwriteIfExists replaces every existing value, and adds nothing
	// when the header is absent.
	OverwriteIfExists
)

// HeaderMutation is one level's headers_to_add and headers_to_remove
// (Envoy's HeaderParser). The zero value and nil do nothing.
type HeaderMutation struct {
	remove []string
	add    []headerToAdd
}

type headerToAdd struct {
	key       string
	value     formatString
	action    AppendAction
	keepEmpty bool
}

func (c *errs) headerMutation(path, addField, removeField string, add []*corev3.HeaderValueOption, remove []string, opts *CompileOptions) *HeaderMutation {
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	m := &HeaderMutation{}
	for i, o := range add {
		p := idx(path, addField, i)
		c.only(p, o, "header", "append", "append_action", "keep_empty_value")
		c.only(at(p, "header"), o.GetHeader(), "key", "value")
		key := header.Lower(o.GetHeader().GetKey())
		if !modifiable(key) {
			c.errf(at(p, "header.key"), ":-prefixed or host headers may not be modified")
			continue
		}
		e := headerToAdd{key: key, keepEmpty: o.GetKeepEmptyValue()}
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			e.action = AppendIfExistsOrAdd
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			e.action = AddIfAbsent
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			e.action = OverwriteIfExistsOrAdd
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			e.action = OverwriteIfExists
		default:
			c.errf(at(p, "append_action"), "unknown append action %v", o.GetAppendAction())
		}
		if o.GetAppend() != nil {
			if o.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
				c.errf(p, "both append and append_action are set")
			}
			if o.GetAppend().GetValue() {
				e.action = AppendIfExistsOrAdd
			} else {
				e.action = OverwriteIfExistsOrAdd
			}
		}
		fs, err := parseFormat(o.GetHeader().GetValue())
		if err != nil {
			c.add(at(p, "header.value"), err)
			continue
		}
		if opts.CheckFormatCommand != nil {
			for _, part := range fs.parts {
				if part.cmd == nil {
					continue
				}
				if err := opts.CheckFormatCommand(*part.cmd); err != nil {
					c.add(at(p, "header.value"), fmt.Errorf("%s: %w", part.cmd, err))
				}
			}
		}
		e.value = fs
		m.add = append(m.add, e)
	}
	for i, name := range remove {
		p := idx(path, removeField, i)
		name = header.Lower(name)
		if name == "" {
			c.add(p, errors.New("empty header name"))
			continue
		}
		if !modifiable(name) {
			c.errf(p, ":-prefixed or host headers may not be removed")
			continue
		}
		m.remove = append(m.remove, name)
	}
	return m
}

func modifiable(key string) bool {
	return key != "" && key[0] != ':' && key != "host"
}

// Apply removes headers_to_remove, then evaluates every header to add
// against the headers as they are after removal, then sets the overwrites,
// then adds the appends (Envoy's HeaderParser::evaluateHeaders). f expands
// format commands; nil expands them to "".
func (m *HeaderMutation) Apply(h *header.Map, f Formatter) {
	if m == nil {
		return
	}
	for _, k := range m.remove {
		h.Del(k)
	}
	if len(m.add) == 0 {
		return
	}
	type kv struct{ k, v string }
	var stack [8]kv
	overwrite := stack[:0]
	var appendList []kv
	for i := range m.add {
		e := &m.add[i]
		v := e.value.expand(f)
		if v == "" && !e.keepEmpty {
			continue
		}
		switch e.action {
		case AppendIfExistsOrAdd:
			appendList = append(appendList, kv{e.key, v})
		case AddIfAbsent:
			if _, ok := h.Get(e.key); !ok {
				appendList = append(appendList, kv{e.key, v})
			}
		case OverwriteIfExists:
			if _, ok := h.Get(e.key); !ok {
				continue
			}
			overwrite = append(overwrite, kv{e.key, v})
		case OverwriteIfExistsOrAdd:
			overwrite = append(overwrite, kv{e.key, v})
		}
	}
	for _, e := range overwrite {
		h.Set(e.k, e.v)
	}
	for _, e := range appendList {
		h.Add(e.k, e.v)
	}
}

// Empty reports whether the mutation does nothing.
func (m *HeaderMutation) Empty() bool { return m == nil || len(m.add) == 0 && len(m.remove) == 0 }
