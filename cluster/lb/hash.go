package lb

import (
	"encoding/binary"

	"github.com/wasmesh/wasmesh/internal/xxhash"
)

// XXHash64 is XXH64 of b with the given seed (Envoy's HashUtil::xxHash64).
func XXHash64(b []byte, seed uint64) uint64 { return xxhash.Sum64(b, seed) }

// MurmurSeed is the seed Envoy passes to MurmurHash2 for the ring
// (libstdc++'s std::hash seed).
const MurmurSeed = 0xc70f6907

// MurmurHash2 is the 64-bit MurmurHash2 variant of libstdc++'s _Hash_bytes,
// which Envoy's ring hash uses with hash_function MURMUR_HASH_2.
func MurmurHash2(b []byte, seed uint64) uint64 {
	const mul uint64 = 0xc6a4a7935bd1e995
	shift := func(v uint64) uint64 { return v ^ (v >> 47) }
	n := uint64(len(b))
	h := seed ^ (n * mul)
	for len(b) >= 8 {
		d := shift(binary.LittleEndian.Uint64(b)*mul) * mul
		h ^= d
		h *= mul
		b = b[8:]
	}
	if len(b) > 0 {
		var d uint64
		for i := len(b) - 1; i >= 0; i-- {
			d = d<<8 | uint64(b[i])
		}
		h ^= d
		h *= mul
	}
	h = shift(h) * mul
	return shift(h)
}
