package hcm

import (
	"net/http"
	"time"

	"go.uber.org/zap"
)

// NewServer returns the http.Server that serves connections for the
// manager: HTTP/1.1, HTTP/2 over TLS (ALPN) and cleartext HTTP/2 with prior
// knowledge, as codec_type allows, with the manager's timeouts and header
// limits. The listener feeds it connections (Serve on its own net.Listener).
func (m *Manager) NewServer(log *zap.Logger) *http.Server {
	p := new(http.Protocols)
	switch m.Codec {
	case CodecHTTP1:
		p.SetHTTP1(true)
	case CodecHTTP2:
		p.SetHTTP2(true)
		p.SetUnencryptedHTTP2(true)
	default:
		p.SetHTTP1(true)
		p.SetHTTP2(true)
		p.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:           m,
		Protocols:         p,
		ReadHeaderTimeout: m.RequestHeadersTimeout,
		IdleTimeout:       m.IdleTimeout,
		MaxHeaderBytes:    int(m.MaxRequestHeadersKB) * 1024,
		ErrorLog:          zap.NewStdLog(log),
	}
	if srv.ReadHeaderTimeout == 0 {
		srv.ReadHeaderTimeout = 60 * time.Second
	}
	return srv
}
