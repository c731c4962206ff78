package lb

import (
	"fmt"
	"math/rand/v2"
	"sync"
)

// Host is what a balancer reads from an endpoint.
type Host interface {
	// Weight is the endpoint's load_balancing_weight, at least 1.
	Weight() uint32
	// HashKey is the key the hashing policies hash.
	HashKey() string
	// ActiveRequests is the number of requests in flight to the host.
	ActiveRequests() int64
}

// Policy is a load balancing algorithm.
type Policy uint8

// The policies.
const (
	RoundRobin Policy = iota
	LeastRequest
	Random
	RingHash
	Maglev
)

func (p Policy) String() string {
	switch p {
	case RoundRobin:
		return "ROUND_ROBIN"
	case LeastRequest:
		return "LEAST_REQUEST"
	case Random:
		return "RANDOM"
	case RingHash:
		return "RING_HASH"
	case Maglev:
		return "MAGLEV"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// HashFunction is the ring hash's point hash.
type HashFunction uint8

// The ring hash functions.
const (
	XXHash HashFunction = iota
	Murmur2
)

// Envoy's defaults.
const (
	DefaultChoiceCount     = 2
	DefaultMinRingSize     = 1024
	DefaultMaxRingSize     = 8 * 1024 * 1024
	DefaultMaglevTableSize = 65537
	// MaxMaglevTableSize is the API's upper bound for table_size.
	MaxMaglevTableSize = 5000011
)

// Config selects and parameterises a policy. The zero value is round robin.
type Config struct {
	Policy Policy

	// ChoiceCount is LEAST_REQUEST's number of random choices (default 2).
	ChoiceCount uint32
	// ActiveRequestBias is LEAST_REQUEST's active_request_bias (default 1).
	ActiveRequestBias float64
	// HasActiveRequestBias says ActiveRequestBias was set (0 is meaningful).
	HasActiveRequestBias bool

	// MinRingSize and MaxRingSize bound the ring (defaults 1024 and 8M).
	MinRingSize, MaxRingSize uint64
	// Hash is the ring point hash.
	Hash HashFunction

	// TableSize is Maglev's table size, a prime (default 65537).
	TableSize uint64

	// Rand is the random source, safe for concurrent use; nil uses
	// math/rand/v2's runtime source.
	Rand func() uint64
}

// Balancer picks hosts among the slice it was built with.
type Balancer interface {
	// Pick returns an index into the hosts, or -1 when there is none. hash
	// is the request hash for the hashing policies when hasHash is set.
	// attempt > 0 asks for another host for the same request (Envoy's
	// host selection retries); the hashing policies move off the first
	// choice deterministically, the others just pick again.
	Pick(hash uint64, hasHash bool, attempt uint32) int
}

func (c *Config) rand() func() uint64 {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Uint64
}

// New builds the configured balancer over hosts. The slice is not retained
// beyond what the policy needs (least request keeps it to read active
// request counts); callers must not modify it afterwards.
func New(c Config, hosts []Host) Balancer {
	if len(hosts) == 0 {
		return empty{}
	}
	r := c.rand()
	switch c.Policy {
	case LeastRequest:
		return newLeastRequest(c, hosts, r)
	case Random:
		return &random{n: uint64(len(hosts)), rand: r}
	case RingHash:
		return newRing(c, hosts, r)
	case Maglev:
		return newMaglev(c, hosts, r)
	}
	return newRoundRobin(hosts, r)
}

type empty struct{}

func (empty) Pick(uint64, bool, uint32) int { return -1 }

type random struct {
	n    uint64
	rand func() uint64
}

func (b *random) Pick(uint64, bool, uint32) int { return int(b.rand() % b.n) }

// NewSeeded returns a deterministic random source for tests and
// reproducible simulations, safe for concurrent use.
func NewSeeded(seed uint64) func() uint64 {
	var mu sync.Mutex
	src := rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	return func() uint64 {
		mu.Lock()
		v := src.Uint64()
		mu.Unlock()
		return v
	}
}

// Validate checks the numeric parameters as Envoy does at config time.
func (c *Config) Validate() error {
	if c.Policy == RingHash {
		minR, maxR := c.ringSizes()
		if minR > maxR {
			return fmt.Errorf("minimum_ring_size (%d) > maximum_ring_size (%d)", minR, maxR)
		}
	}
	if c.Policy == Maglev {
		if c.tableSize() > MaxMaglevTableSize {
			return fmt.Errorf("table_size %d is above %d", c.tableSize(), MaxMaglevTableSize)
		}
		if !isPrime(c.tableSize()) {
			return fmt.Errorf("table_size %d is not a prime number", c.tableSize())
		}
	}
	if c.Policy == LeastRequest && c.ChoiceCount == 1 {
		return fmt.Errorf("choice_count must be at least 2")
	}
	return nil
}

func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for i := uint64(2); i*i <= n; i++ {
		if n%i == 0 {
			return false
		}
	}
	return true
}
