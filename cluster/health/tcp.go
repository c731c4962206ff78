package health

import (
	"bytes"
	"context"
	"time"
)

func (s *session) checkTCP(ctx context.Context, t *Target) result {
	cfg := s.cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	conn, err := s.tg.c.opts.Dial(ctx, t.Network, s.checkAddr(t), false)
	if err != nil {
		return resultNetwork
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if len(cfg.send) > 0 {
		if _, err := conn.Write(cfg.send); err != nil {
			return resultNetwork
		}
	}
	if len(cfg.receive) == 0 {
		return resultSuccess
	}
	// Every block must appear, in order, not necessarily adjacent.
	var got []byte
	buf := make([]byte, 4096)
	for {
		if matchBlocks(got, cfg.receive) {
			return resultSuccess
		}
		if len(got) > maxBody {
			return resultActive
		}
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if matchBlocks(got, cfg.receive) {
				return resultSuccess
			}
			return resultNetwork
		}
	}
}

func matchBlocks(data []byte, blocks [][]byte) bool {
	for _, b := range blocks {
		i := bytes.Index(data, b)
		if i < 0 {
			return false
		}
		data = data[i+len(b):]
	}
	return true
}
