package server

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Logging owns the process's zap logger and the per-component levels that
// --log-level, --component-log-level and the admin /logging endpoint set.
// Components are Envoy's logger names; each gets its own atomic level.
type Logging struct {
	root   *zap.Logger
	mu     sync.Mutex
	levels map[string]zap.AtomicLevel
	def    zapcore.Level
	sink   zapcore.WriteSyncer
	closer func()
	enc    zapcore.Encoder
}

// NewLogging builds the logger from the options. Lines go to --log-path or
// stderr; --log-format starting with '{' selects JSON, anything else a
// console line (Envoy's spdlog patterns are not interpreted beyond that).
func NewLogging(o *Options) (*Logging, error) {
	def, err := ParseLevel(o.LogLevel)
	if err != nil {
		return nil, err
	}
	comp, err := ParseComponentLevels(o.ComponentLogLevel)
	if err != nil {
		return nil, err
	}
	l := &Logging{levels: map[string]zap.AtomicLevel{}, def: def, closer: func() {}}
	if o.LogPath != "" {
		f, err := os.OpenFile(o.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--log-path: %w", err)
		}
		l.sink = zapcore.AddSync(f)
		l.closer = func() { f.Close() }
	} else {
		l.sink = zapcore.Lock(os.Stderr)
	}
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "time"
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	ec.NameKey = "component"
	if strings.HasPrefix(strings.TrimSpace(o.LogFormat), "{") {
		l.enc = zapcore.NewJSONEncoder(ec)
	} else {
		ec.EncodeLevel = zapcore.LowercaseLevelEncoder
		l.enc = zapcore.NewConsoleEncoder(ec)
	}
	for _, c := range Components {
		lvl := def
		if v, ok := comp[c]; ok {
			lvl = v
		}
		l.levels[c] = zap.NewAtomicLevelAt(lvl)
	}
	for c, v := range comp {
		if _, ok := l.levels[c]; !ok {
			return nil, fmt.Errorf("--component-log-level: unknown component %q", c)
		}
		_ = v
	}
	l.root = zap.New(zapcore.NewNopCore())
	return l, nil
}

// Logger returns the logger of a component (Envoy's logger name).
func (l *Logging) Logger(component string) *zap.Logger {
	l.mu.Lock()
	lvl, ok := l.levels[component]
	if !ok {
		lvl = zap.NewAtomicLevelAt(l.def)
		l.levels[component] = lvl
	}
	l.mu.Unlock()
	core := zapcore.NewCore(l.enc.Clone(), l.sink, lvl)
	return zap.New(core).Named(component)
}

// Level returns the atomic level of a component.
func (l *Logging) Level(component string) (zap.AtomicLevel, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lvl, ok := l.levels[component]
	return lvl, ok
}

// SetAll sets every component's level (admin POST /logging?level=).
func (l *Logging) SetAll(lvl zapcore.Level) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.levels {
		a.SetLevel(lvl)
	}
}

// Set sets one component's level; false if the component is unknown.
func (l *Logging) Set(component string, lvl zapcore.Level) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.levels[component]
	if ok {
		a.SetLevel(lvl)
	}
	return ok
}

// Levels lists components and their level names, sorted (GET /logging).
func (l *Logging) Levels() [][2]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([][2]string, 0, len(l.levels))
	for c, a := range l.levels {
		out = append(out, [2]string{c, LevelName(a.Level())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// Close flushes and closes the log file.
func (l *Logging) Close() {
	_ = l.sink.Sync()
	l.closer()
}
