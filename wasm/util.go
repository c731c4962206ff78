package wasm

import (
	"crypto/sha256"
	"encoding/hex"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
