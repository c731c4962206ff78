package cluster

// Results of socketPeeker.check.
const (
	peekIdle = iota // nothing to read: the connection is idle and open
	peekData        // bytes are waiting
	peekEnd         // the peer closed or reset the connection
)
