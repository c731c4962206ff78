package hcm

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/wasmesh/wasmesh/filterchain"
	"github.com/wasmesh/wasmesh/filterchain/router"
	"github.com/wasmesh/wasmesh/route"
)

// upgradeType is the lower-case Upgrade header of an HTTP/1.1 upgrade
// request ("websocket"), or "".
func upgradeType(r *http.Request) string {
	if r.ProtoMajor != 1 {
		return ""
	}
	up := r.Header.Get("Upgrade")
	if up == "" {
		return ""
	}
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return strings.ToLower(up)
			}
		}
	}
	return ""
}

func (s *stream) routeAllowsUpgrade(match *route.Match) bool {
	t := upgradeType(s.r)
	if match.Route != nil && match.Route.Action != nil {
		if v, ok := match.Route.Action.Upgrades[t]; ok {
			return v
		}
	}
	return s.m.upgrades[t]
}

// proxyUpgrade forwards an upgrade request; on 101 Switching Protocols it
// hijacks the downstream connection and copies bytes both ways.
func (s *stream) proxyUpgrade(term *router.Config, req *router.Request, filters []filterchain.Filter, match *route.Match) {
	if !s.routeAllowsUpgrade(match) {
		s.SendLocalReply(filterchain.LocalReply{Status: http.StatusForbidden, Details: "upgrade_failed", GRPCStatus: -1})
		s.finishLocal(filters, match)
		return
	}
	resp, lr := term.Forward(req)
	if lr != nil {
		s.SendLocalReply(*lr)
		s.finishLocal(filters, match)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		s.respond(filters, &filterchain.Plan{}, match, resp)
		return
	}
	upstream, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		s.SendLocalReply(filterchain.LocalReply{Status: http.StatusBadGateway, Details: "upgrade_failed", GRPCStatus: -1})
		s.finishLocal(filters, match)
		return
	}
	hj, ok := s.w.(http.Hijacker)
	if !ok {
		s.SendLocalReply(filterchain.LocalReply{Status: http.StatusInternalServerError, Details: "upgrade_failed", GRPCStatus: -1})
		s.finishLocal(filters, match)
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	s.fs.Info.ResponseCode = http.StatusSwitchingProtocols
	s.headersSent = true
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\n")
	resp.Header.Write(brw)
	fmt.Fprintf(brw, "\r\n")
	brw.Flush()
	var wg sync.WaitGroup
	wg.Add(2)
	var sent, received int64
	go func() {
		defer wg.Done()
		received, _ = io.Copy(upstream, bufferedConn{brw.Reader, conn})
		if cw, ok := upstream.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			upstream.Close()
		}
	}()
	go func() {
		defer wg.Done()
		sent, _ = io.Copy(conn, upstream)
		conn.Close()
	}()
	wg.Wait()
	s.fs.Info.BytesSent += uint64(sent)
	s.fs.Info.BytesReceived += uint64(received)
}

// bufferedConn reads what the server already buffered, then the connection.
type bufferedConn struct {
	r *bufio.Reader
	c io.Reader
}

func (b bufferedConn) Read(p []byte) (int, error) {
	if b.r.Buffered() > 0 {
		return b.r.Read(p)
	}
	return b.c.Read(p)
}
