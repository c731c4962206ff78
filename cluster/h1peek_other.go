//go:build !linux

package cluster

import "syscall"

// socketPeeker cannot look at a socket on this platform: a connection the
// upstream closed while idle is found when a request fails on it.
type socketPeeker struct{}

func newSocketPeeker(syscall.RawConn) *socketPeeker { return &socketPeeker{} }

func (*socketPeeker) check() int { return peekIdle }
