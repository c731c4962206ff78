package lb

import (
	"cmp"
	"slices"
)

type maglev struct {
	table []uint32
	rand  func() uint64
}

func (c *Config) tableSize() uint64 {
	if c.TableSize == 0 {
		return DefaultMaglevTableSize
	}
	return c.TableSize
}

type maglevEntry struct {
	key          string
	host         uint32
	offset, skip uint64
	weight       float64
	target       float64
	next         uint64
}

func newMaglev(c Config, hosts []Host, r func() uint64) *maglev {
	m := c.tableSize()
	var sum float64
	for _, h := range hosts {
		sum += float64(max(h.Weight(), 1))
	}
	entries := make([]maglevEntry, len(hosts))
	var maxW float64
	for i, h := range hosts {
		k := h.HashKey()
		w := float64(max(h.Weight(), 1)) / sum
		maxW = max(maxW, w)
		entries[i] = maglevEntry{
			key:    k,
			host:   uint32(i),
			offset: XXHash64([]byte(k), 0) % m,
			skip:   XXHash64([]byte(k), 1)%(m-1) + 1,
			weight: w,
		}
	}
	// A stable order makes the table independent of the input order.
	slices.SortStableFunc(entries, func(a, b maglevEntry) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.weight, b.weight)
	})
	const unset = ^uint32(0)
	table := make([]uint32, m)
	for i := range table {
		table[i] = unset
	}
	var filled uint64
	for iter := 1.0; filled < m; iter++ {
		for i := range entries {
			if filled >= m {
				break
			}
			e := &entries[i]
			if iter*e.weight < e.target {
				continue
			}
			e.target += maxW
			pos := (e.offset + e.skip*e.next) % m
			for table[pos] != unset {
				e.next++
				pos = (e.offset + e.skip*e.next) % m
			}
			table[pos] = e.host
			e.next++
			filled++
		}
	}
	return &maglev{table: table, rand: r}
}

func (b *maglev) Pick(hash uint64, hasHash bool, attempt uint32) int {
	if !hasHash {
		hash = b.rand()
	}
	if attempt > 0 {
		hash ^= ^uint64(0) - uint64(attempt) + 1
	}
	return int(b.table[hash%uint64(len(b.table))])
}
