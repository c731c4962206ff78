// Package lb holds the load balancing algorithms of Envoy's upstream side,
// free of any cluster, socket or configuration type: a Balancer is built over
// a fixed slice of hosts and picks an index into it.
//
// Policies (Envoy's lb_policy):
//
//   - ROUND_ROBIN: equal weights take turns from an atomic counter; unequal
//     weights follow a precomputed smooth weighted round-robin schedule (the
//     interleaving nginx uses, same proportions as Envoy's EDF scheduler).
//     The starting point is random, as in Envoy.
//   - LEAST_REQUEST: equal weights use the power of choice_count (default two)
//     random choices and keep the host with the fewest active requests.
//     Unequal weights draw the choices in proportion to weight and compare
//     active^bias / weight (active_request_bias, default 1.0), so an idle
//     cluster gets exactly the weight proportions and a loaded one balances
//     load per unit of weight. (Envoy uses an EDF schedule of
//     weight / (active+1)^bias; both favour heavy, idle hosts.)
//   - RANDOM: a uniformly random host. Like Envoy, endpoint weights are not
//     used by this policy.
//   - RING_HASH: Ketama-style ring as Envoy builds it: each host contributes
//     scale*normalized_weight points hashed from "<key>_<i>", with scale =
//     min(ceil(min_weight*min_ring_size)/min_weight, max_ring_size) and the
//     hash xxHash64 (seed 0) or MurmurHash2-64 (libstdc++'s, seed
//     0xc70f6907) by hash_function. A request hash picks the first point at
//     or after it, wrapping around. Same keys and hash give the same ring as
//     Envoy.
//   - MAGLEV: Envoy's weighted Maglev table (default 65537 entries, a prime),
//     hosts sorted by key, offset = xxHash64(key) % M, skip =
//     xxHash64(key, seed 1) % (M-1) + 1.
//
// The key of a host for the hashing policies is its "envoy.lb" hash_key
// metadata, else its address "ip:port" (or its hostname with
// use_hostname_for_hashing), as in Envoy. Without a request hash the hashing
// policies pick a random point.
//
// Priority levels are computed by ComputeLoad with Envoy's arithmetic:
// integer health per level = min(100, overprovisioning * healthy / total),
// load distributed from the highest priority down, degraded hosts after
// healthy ones, per-level panic when normalized total health is below 100
// and the level's healthy share is below the panic threshold, and total panic
// (load by host count) when every level panics.
//
// Picks do not allocate and are safe for concurrent use. Randomness comes
// from a Rand function (math/rand/v2's runtime source by default; tests pass
// a seeded one).
package lb
