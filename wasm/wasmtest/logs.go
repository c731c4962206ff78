package wasmtest

import (
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
)

// LogEntry is one recorded log line.
type LogEntry struct {
	Level   zapcore.Level
	Message string
	// Fields holds the line's fields and its logger's context (component,
	// vm_id, plugin, root_id, instance, error...), errors as strings.
	Fields map[string]any
	Time   time.Time
}

// Plugin is the line's plugin name ("" for a host line outside a plugin).
func (e LogEntry) Plugin() string { return e.String("plugin") }

// String returns a string field ("" when absent or not a string).
func (e LogEntry) String(key string) string {
	s, _ := e.Fields[key].(string)
	return s
}

// Logs is a list of log lines, oldest first.
type Logs []LogEntry

// Filter keeps the lines keep accepts.
func (l Logs) Filter(keep func(LogEntry) bool) Logs {
	var out Logs
	for _, e := range l {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// Plugin keeps the lines of one plugin.
func (l Logs) Plugin(name string) Logs {
	return l.Filter(func(e LogEntry) bool { return e.Plugin() == name })
}

// Level keeps the lines logged at exactly lvl.
func (l Logs) Level(lvl zapcore.Level) Logs {
	return l.Filter(func(e LogEntry) bool { return e.Level == lvl })
}

// AtLeast keeps the lines logged at lvl or above.
func (l Logs) AtLeast(lvl zapcore.Level) Logs {
	return l.Filter(func(e LogEntry) bool { return e.Level >= lvl })
}

// Containing keeps the lines whose message contains substr.
func (l Logs) Containing(substr string) Logs {
	return l.Filter(func(e LogEntry) bool { return strings.Contains(e.Message, substr) })
}

// Message keeps the lines whose message is exactly msg.
func (l Logs) Message(msg string) Logs {
	return l.Filter(func(e LogEntry) bool { return e.Message == msg })
}

// Messages returns the messages.
func (l Logs) Messages() []string {
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = e.Message
	}
	return out
}

// String is one line per entry, for failure messages.
func (l Logs) String() string {
	var b strings.Builder
	for _, e := range l {
		fmt.Fprintf(&b, "%s %q", e.Level.CapitalString(), truncate(e.Message, 200))
		for _, k := range []string{"plugin", "kind", "error"} {
			if v, ok := e.Fields[k]; ok {
				fmt.Fprintf(&b, " %s=%v", k, v)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("...(%d bytes)", len(s))
}

// Logs returns every line recorded so far (host and guests).
func (h *Harness) Logs() Logs {
	all := h.logs.All()
	out := make(Logs, len(all))
	for i, e := range all {
		out[i] = LogEntry{Level: e.Level, Message: e.Message, Fields: e.ContextMap(), Time: e.Time}
	}
	return out
}

// PluginLogs returns the lines of the harness's plugin: its guest's log
// lines and the host's lines about it.
func (h *Harness) PluginLogs() Logs { return h.Logs().Plugin(h.name) }

// FindLog waits up to timeout for a line whose message contains substr and
// reports whether one came.
func (h *Harness) FindLog(substr string, timeout time.Duration) (LogEntry, bool) {
	var found LogEntry
	ok := poll(timeout, func() bool {
		for _, e := range h.logs.FilterMessageSnippet(substr).All() {
			found = LogEntry{Level: e.Level, Message: e.Message, Fields: e.ContextMap(), Time: e.Time}
			return true
		}
		return false
	})
	return found, ok
}

// WaitLog waits up to timeout for a line whose message contains substr and
// fails the test (from the test's goroutine only) when none comes.
func (h *Harness) WaitLog(substr string, timeout time.Duration) LogEntry {
	h.t.Helper()
	e, ok := h.FindLog(substr, timeout)
	if !ok {
		h.t.Fatalf("wasmtest: no log line containing %q after %v; lines:\n%s", substr, timeout, h.Logs())
	}
	return e
}
