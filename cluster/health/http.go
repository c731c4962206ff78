package health

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"

	"go.uber.org/zap"
)

// maxBody bounds how much of a response body a check reads.
const maxBody = 64 << 10

type httpState struct {
	transport *http.Transport
}

func (s *session) httpTransport() *http.Transport {
	if s.transport != nil {
		return s.transport
	}
	t := &http.Transport{
		Proxy:               nil,
		DisableCompression:  true,
		DisableKeepAlives:   !s.cfg.reuse,
		MaxIdleConnsPerHost: 1,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			tg := s.tg.cur.Load()
			return s.tg.c.opts.Dial(ctx, tg.Network, s.checkAddr(tg), s.cfg.h2)
		},
	}
	t.Protocols = new(http.Protocols)
	if s.cfg.h2 {
		t.Protocols.SetUnencryptedHTTP2(true)
	} else {
		t.Protocols.SetHTTP1(true)
	}
	s.transport = t
	return t
}

func (s *session) closeHTTP() {
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
}

// checkAddr applies alt_port.
func (s *session) checkAddr(t *Target) string {
	if s.cfg.altPort == 0 || t.Network != "tcp" {
		return t.Address
	}
	host, _, err := net.SplitHostPort(t.Address)
	if err != nil {
		return t.Address
	}
	return net.JoinHostPort(host, itoa(int(s.cfg.altPort)))
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}

func (s *session) checkHTTP(ctx context.Context, t *Target) result {
	cfg := s.cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	host := cfg.host
	if t.Host != "" {
		host = t.Host
	}
	if host == "" {
		host = s.tg.c.opts.Cluster
	}
	var body io.Reader
	if len(cfg.httpSend) > 0 {
		body = bytes.NewReader(cfg.httpSend)
	}
	req, err := http.NewRequestWithContext(ctx, cfg.method, "http://health-check.invalid/", body)
	if err != nil {
		return resultNetwork
	}
	u := *cfg.url
	u.Scheme, u.Host = "http", "health-check.invalid"
	req.URL = &u
	req.Host = host
	req.Header.Set("User-Agent", "Envoy/HC")
	for _, h := range cfg.add {
		if h.appendV {
			req.Header.Add(h.key, h.value)
		} else {
			req.Header.Set(h.key, h.value)
		}
	}
	for _, k := range cfg.remove {
		req.Header.Del(k)
		if k == "user-agent" {
			// An empty value keeps net/http from adding its own.
			req.Header.Set("User-Agent", "")
		}
	}
	resp, err := s.httpTransport().RoundTrip(req)
	if err != nil {
		s.tg.c.log.Debug("health check failed", zap.String("address", t.Address), zap.Error(err))
		return resultNetwork
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resultNetwork
	}
	switch {
	case inRanges(resp.StatusCode, cfg.expected):
		if len(cfg.httpReceive) > 0 && !bytes.Contains(b, cfg.httpReceive) {
			return resultActive
		}
		return resultSuccess
	case inRanges(resp.StatusCode, cfg.retriable):
		return resultRetriable
	}
	s.tg.c.log.Debug("health check failed", zap.String("address", t.Address), zap.Int("status", resp.StatusCode))
	return resultActive
}
