package listener

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that stopped listeners leave no goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Client transports in tests keep idle connections of their own.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}
