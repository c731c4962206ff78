package wasm

import (
	"context"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func logFuncs() []hostFunc {
	return []hostFunc{
		proxyFunc("proxy_log", 3, hostLog),
		proxyFunc("proxy_get_log_level", 1, hostGetLogLevel, ABI021),
	}
}

// zapLevel maps a Proxy-Wasm log level to zap's; ok is false for an unknown
// level.
func zapLevel(l LogLevel) (zapcore.Level, bool) {
	switch l {
	case LogTrace, LogDebug:
		return zapcore.DebugLevel, true
	case LogInfo:
		return zapcore.InfoLevel, true
	case LogWarn:
		return zapcore.WarnLevel, true
	case LogError:
		return zapcore.ErrorLevel, true
	case LogCritical:
		return zapcore.DPanicLevel, true
	}
	return 0, false
}

// proxy_log(level, message_data, message_size)
func hostLog(_ context.Context, i *instance, st []uint64) Status {
	lvl, ok := zapLevel(LogLevel(u32(st, 0)))
	if !ok {
		return StatusBadArgument
	}
	size := u32(st, 2)
	msg, ok := i.read(u32(st, 1), size)
	if !ok {
		return StatusInvalidMemoryAccess
	}
	i.guestLog(lvl, msg, LogLevel(u32(st, 0)) == LogTrace)
	return StatusOK
}

// guestLog writes a guest's log line with its plugin, root id and vm id,
// the text unchanged (truncated past maxLogMessageBytes).
func (i *instance) guestLog(lvl zapcore.Level, msg []byte, trace bool) {
	if !i.vm.rt.levelEnabled(lvl) {
		return
	}
	truncated := 0
	if len(msg) > maxLogMessageBytes {
		truncated = len(msg) - maxLogMessageBytes
		msg = msg[:maxLogMessageBytes]
	}
	fields := make([]zap.Field, 0, 6)
	if c := i.effective; c != nil && c.plugin != nil {
		fields = append(fields,
			zap.String("plugin", c.plugin.cfg.Name),
			zap.String("root_id", c.plugin.cfg.RootID))
	}
	fields = append(fields, zap.String("vm_id", i.vm.cfg.ID))
	if trace {
		fields = append(fields, zap.Bool("trace", true))
	}
	if truncated > 0 {
		fields = append(fields, zap.Int("truncated_bytes", truncated))
	}
	// A critical guest line must not panic the host in development mode.
	if lvl == zapcore.DPanicLevel {
		lvl = zapcore.ErrorLevel
		fields = append(fields, zap.Bool("critical", true))
	}
	if ce := i.vm.rt.log.Check(lvl, string(msg)); ce != nil {
		ce.Write(fields...)
	}
}

// proxy_get_log_level(return_level)
func hostGetLogLevel(_ context.Context, i *instance, st []uint64) Status {
	lvl := LogCritical
	for _, l := range []LogLevel{LogTrace, LogDebug, LogInfo, LogWarn, LogError} {
		z, _ := zapLevel(l)
		if i.vm.rt.levelEnabled(z) {
			lvl = l
			break
		}
	}
	if !i.writeU32(u32(st, 0), uint32(lvl)) {
		return StatusInvalidMemoryAccess
	}
	return StatusOK
}
