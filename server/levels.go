package server

import (
	"fmt"
	"strings"

	"go.uber.org/zap/zapcore"
)

// Envoy's log levels mapped onto zap. trace and debug both map to zap's
// debug; critical maps to error with a marker; off disables logging.
const levelOff = zapcore.FatalLevel + 1

// ParseLevel maps an Envoy level name to a zap level.
func ParseLevel(s string) (zapcore.Level, error) {
	switch strings.ToLower(s) {
	case "trace", "debug":
		return zapcore.DebugLevel, nil
	case "info":
		return zapcore.InfoLevel, nil
	case "warning", "warn":
		return zapcore.WarnLevel, nil
	case "error":
		return zapcore.ErrorLevel, nil
	case "critical":
		return zapcore.DPanicLevel, nil
	case "off":
		return levelOff, nil
	}
	return 0, fmt.Errorf("unknown log level %q (trace, debug, info, warning, error, critical, off)", s)
}

// LevelName is the Envoy name of a zap level.
func LevelName(l zapcore.Level) string {
	switch {
	case l <= zapcore.DebugLevel:
		return "debug"
	case l == zapcore.InfoLevel:
		return "info"
	case l == zapcore.WarnLevel:
		return "warning"
	case l == zapcore.ErrorLevel:
		return "error"
	case l >= levelOff:
		return "off"
	}
	return "critical"
}

// Components are Envoy's logger names that wasmesh uses.
var Components = []string{"admin", "config", "connection", "conn_handler", "dns", "filter", "forward_proxy", "grpc", "hc", "http", "http2", "init", "main", "misc", "pool", "router", "runtime", "upstream", "wasm"}

// ParseComponentLevels parses "comp:level,comp:level".
func ParseComponentLevels(s string) (map[string]zapcore.Level, error) {
	out := map[string]zapcore.Level{}
	if s == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		comp, lvl, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || comp == "" {
			return nil, fmt.Errorf("%q is not component:level", part)
		}
		l, err := ParseLevel(lvl)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", comp, err)
		}
		out[comp] = l
	}
	return out, nil
}
