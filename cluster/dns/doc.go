// Package dns resolves upstream host names for the STRICT_DNS and
// LOGICAL_DNS clusters with github.com/miekg/dns, the way Envoy's c-ares
// resolver does:
//
//   - servers from /etc/resolv.conf (nameserver, search, ndots, timeout,
//     attempts), or an explicit list (a cluster's dns_resolvers or the c-ares
//     typed_dns_resolver_config), optionally only as a fallback;
//   - /etc/hosts first, then DNS; IP literals answer themselves;
//   - search domains unless no_default_search_domain; a name with at least
//     ndots dots is tried as given first;
//   - UDP with a retry over TCP on truncation, or TCP only
//     (use_tcp_for_dns_lookups); every server tried in turn, tries rounds;
//   - address families by dns_lookup_family: V4_ONLY (A), V6_ONLY (AAAA),
//     AUTO (AAAA, then A if there is none), V4_PREFERRED (A, then AAAA), ALL
//     (both, IPv4 first);
//   - the TTL of an answer is the smallest TTL along its CNAME chain; hosts
//     file and literal answers have TTL 0.
//
// NXDOMAIN and empty answers are a successful, empty resolution (as Envoy
// treats ARES_ENOTFOUND and ARES_ENODATA); timeouts, SERVFAIL and REFUSED
// from every server are errors, so a cluster keeps its last good hosts.
//
// The hosts file is read once when the Resolver is created.
package dns
