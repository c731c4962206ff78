package stats

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Tag is one name/value pair extracted from a stat name.
type Tag struct {
	Name  string
	Value string
}

// The tag names of Envoy's default tag specifiers.
const (
	TagClusterName                  = "envoy.cluster_name"
	TagListenerAddress              = "envoy.listener_address"
	TagHTTPConnManagerPrefix        = "envoy.http_conn_manager_prefix"
	TagHTTPUserAgent                = "envoy.http_user_agent"
	TagSSLCipher                    = "envoy.ssl_cipher"
	TagSSLCipherSuite               = "cipher_suite"
	TagSSLCurve                     = "envoy.ssl_curve"
	TagSSLSigalg                    = "envoy.ssl_sigalg"
	TagSSLVersion                   = "envoy.ssl_version"
	TagClientSSLPrefix              = "envoy.clientssl_prefix"
	TagMongoPrefix                  = "envoy.mongo_prefix"
	TagMongoCmd                     = "envoy.mongo_cmd"
	TagMongoCollection              = "envoy.mongo_collection"
	TagMongoCallsite                = "envoy.mongo_callsite"
	TagRatelimitPrefix              = "envoy.ratelimit_prefix"
	TagLocalHTTPRatelimitPrefix     = "envoy.local_http_ratelimit_prefix"
	TagLocalNetworkRatelimitPrefix  = "envoy.local_network_ratelimit_prefix"
	TagLocalListenerRatelimitPrefix = "envoy.local_listener_ratelimit_prefix"
	TagTCPPrefix                    = "envoy.tcp_prefix"
	TagUDPPrefix                    = "envoy.udp_prefix"
	TagFaultDownstreamCluster       = "envoy.fault_downstream_cluster"
	TagDynamoOperation              = "envoy.dynamo_operation"
	TagDynamoTable                  = "envoy.dynamo_table"
	TagDynamoPartitionID            = "envoy.dynamo_partition_id"
	TagGRPCBridgeService            = "envoy.grpc_bridge_service"
	TagGRPCBridgeMethod             = "envoy.grpc_bridge_method"
	TagVirtualHost                  = "envoy.virtual_host"
	TagVirtualCluster               = "envoy.virtual_cluster"
	TagResponseCode                 = "envoy.response_code"
	TagResponseCodeClass            = "envoy.response_code_class"
	TagRDSRouteConfig               = "envoy.rds_route_config"
	TagRoute                        = "envoy.route"
	TagWorkerID                     = "envoy.worker_id"
	TagThriftPrefix                 = "envoy.thrift_prefix"
	TagRedisPrefix                  = "envoy.redis_prefix"
	TagExtAuthzPrefix               = "envoy.ext_authz_prefix"
	TagDNSFilterPrefix              = "envoy.dns_filter_prefix"
)

// Pieces the default regexes are written with.
const (
	reTagValue = `[^\.]+`
	// An IPv4 address or a bracketed IPv6 address (':' already turned into
	// '_'), then '_' and the port: 0.0.0.0_10000, [__1]_8080.
	reAddress = `(?:(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[[a-fA-F_\d]+\])_\d+)`
	reCipher  = `[\w-]+`
)

type regexSpec struct {
	name, re, substr, negative string
}

// defaultRegexSpecs are Envoy's default regex tag specifiers, in Envoy's
// order. In each, the first group is cut from the name and the second (or
// the first, if there is one group) is the tag value; substr is a cheap
// pre-check.
func defaultRegexSpecs() []regexSpec {
	return []regexSpec{
		// *_rq(_<code>)
		{TagResponseCode, `_rq(_(\d{3}))$`, "_rq_", ""},
		// *_rq_(<class>)xx
		{TagResponseCodeClass, `_rq_((\d))xx$`, "_rq_", ""},
		// http.<prefix>.dynamodb.table.<table>.capacity.<op>(.__partition_id=<id>)
		{TagDynamoPartitionID, `^http\.` + reTagValue + `\.dynamodb\.table\.` + reTagValue + `\.capacity\.` + reTagValue + `(\.__partition_id=(\w{7}))$`, ".dynamodb.table.", ""},
		// http.<prefix>.dynamodb.operation.(<op>.)* or ...capacity.(<op>)
		{TagDynamoOperation, `^http\.` + reTagValue + `\.dynamodb.(?:operation|table\.` + reTagValue + `\.capacity)(\.(` + reTagValue + `))(?:\.|$)`, ".dynamodb.", ""},
		// http.<prefix>.dynamodb.(table|error).(<table>.)*
		{TagDynamoTable, `^http\.` + reTagValue + `\.dynamodb.(?:table|error)\.((` + reTagValue + `)\.)`, ".dynamodb.", ""},
		// listener.<address>.ssl.ciphers.(<cipher>)
		{TagSSLCipher, `^listener\..*?\.ssl\.ciphers(\.(` + reCipher + `))$`, ".ssl.ciphers.", ""},
		// (listener|cluster).<name>.ssl.curves.(<curve>)
		{TagSSLCurve, `^(?:listener|cluster)\..*?\.ssl\.curves(\.(` + reCipher + `))$`, ".ssl.curves.", ""},
		// (listener|cluster).<name>.ssl.sigalgs.(<algorithm>)
		{TagSSLSigalg, `^(?:listener|cluster)\..*?\.ssl\.sigalgs(\.(` + reCipher + `))$`, ".ssl.sigalgs.", ""},
		// (listener|cluster).<name>.ssl.versions.(<version>)
		{TagSSLVersion, `^(?:listener|cluster)\..*?\.ssl\.versions(\.(TLSv\d\.\d))$`, ".ssl.versions.", ""},
		// cluster.<name>.ssl.ciphers.(<cipher>)
		{TagSSLCipherSuite, `^cluster\.` + reTagValue + `\.ssl\.ciphers(\.(` + reCipher + `))$`, ".ssl.ciphers.", ""},
		// listener.<address>.http.(<prefix>.)*
		{TagHTTPConnManagerPrefix, `^listener\..*?\.http\.((` + reTagValue + `)\.)`, ".http.", ""},
		// (listener.<address>.|server.|listener_manager.)worker_(<id>.)*
		{TagWorkerID, `^(?:listener\.(?:` + reAddress + `|` + reTagValue + `)\.|server\.|listener_manager\.)worker_((\d+)\.)`, "", ""},
		// listener.(<address>.)*, except the admin listener
		{TagListenerAddress, `^listener\.((` + reAddress + `|` + reTagValue + `)\.)`, "", "admin"},
		// http.<prefix>.rds.(<route_config>.)<stat>; route config names may hold dots
		{TagRDSRouteConfig, `^http\.` + reTagValue + `\.rds\.(([\w.-]+)\.)\w+?$`, ".rds.", ""},
	}
}

type tokenSpec struct{ name, pattern string }

// defaultTokenSpecs are Envoy's default tokenized tag specifiers, in Envoy's
// order: '.'-separated tokens where "*" is any one token, "**" any run of
// tokens (at least one at the end of the pattern) and "$" the tag value, cut
// from the name with one adjacent dot.
func defaultTokenSpecs() []tokenSpec {
	return []tokenSpec{
		{TagMongoCallsite, "mongo.*.collection.*.callsite.$.query.**"},
		{TagMongoCollection, "mongo.*.collection.$.**.query.*"},
		{TagMongoCmd, "mongo.*.cmd.$.**"},
		{TagGRPCBridgeMethod, "cluster.*.grpc.*.$.**"},
		{TagHTTPUserAgent, "http.*.user_agent.$.**"},
		{TagVirtualCluster, "vhost.*.vcluster.$.**"},
		{TagFaultDownstreamCluster, "http.*.fault.$.**"},
		{TagGRPCBridgeService, "cluster.*.grpc.$.**"},
		{TagTCPPrefix, "tcp.$.**"},
		{TagUDPPrefix, "udp.$.**"},
		{TagClientSSLPrefix, "auth.clientssl.$.**"},
		{TagRatelimitPrefix, "ratelimit.$.**"},
		{TagClusterName, "cluster.$.**"},
		{TagExtAuthzPrefix, "cluster.*.ext_authz.$.**"},
		{TagExtAuthzPrefix, "http.*.ext_authz.$.**"},
		{TagHTTPConnManagerPrefix, "http.$.**"},
		{TagVirtualHost, "vhost.$.**"},
		{TagMongoPrefix, "mongo.$.**"},
		{TagRoute, "vhost.*.route.$.**"},
		{TagThriftPrefix, "thrift.$.**"},
		{TagRedisPrefix, "redis.$.**"},
		{TagLocalHTTPRatelimitPrefix, "$.http_local_rate_limit.**"},
		{TagLocalNetworkRatelimitPrefix, "local_rate_limit.$.**"},
		{TagLocalListenerRatelimitPrefix, "listener_local_ratelimit.$.**"},
		{TagDNSFilterPrefix, "dns_filter.$.**"},
	}
}

// extractor finds one tag in a stat name.
type extractor interface {
	tagName() string
	// prefix is the first token a name must have for the extractor to
	// apply; "" means every name.
	prefix() string
	// extract returns the tag value and the byte span to cut from name.
	extract(name string, toks []span) (value string, cut span, ok bool)
}

type span struct{ start, end int }

// regexExtractor is a tag specifier given by a regular expression (RE2
// syntax, as Go's regexp).
type regexExtractor struct {
	name, substr, negative, pfx string
	re                          *regexp.Regexp
}

func newRegexExtractor(name, re, substr, negative string) (*regexExtractor, error) {
	if name == "" {
		return nil, fmt.Errorf("tag_name cannot be empty")
	}
	if re == "" {
		return nil, fmt.Errorf("tag %q: empty regex", name)
	}
	compiled, err := regexp.Compile(re)
	if err != nil {
		return nil, fmt.Errorf("tag %q: invalid regex %q: %w", name, re, err)
	}
	if compiled.NumSubexp() < 1 {
		return nil, fmt.Errorf("tag %q: regex %q has no capture group", name, re)
	}
	return &regexExtractor{name: name, substr: substr, negative: negative, pfx: regexPrefix(re), re: compiled}, nil
}

// regexPrefix returns the literal first token a regex anchors on
// ("^cluster\." gives "cluster"), or "" when it does not start with one.
func regexPrefix(re string) string {
	if !strings.HasPrefix(re, "^") {
		return ""
	}
	i := 1
	for i < len(re) && isWordByte(re[i]) {
		i++
	}
	if i == 1 {
		return ""
	}
	rest := re[i:]
	if strings.HasPrefix(rest, `\.`) || strings.HasPrefix(rest, `(?=\.)`) || rest == "$" {
		return re[1:i]
	}
	return ""
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func (x *regexExtractor) tagName() string { return x.name }
func (x *regexExtractor) prefix() string  { return x.pfx }

func (x *regexExtractor) extract(name string, _ []span) (string, span, bool) {
	if x.substr != "" && !strings.Contains(name, x.substr) {
		return "", span{}, false
	}
	loc := x.re.FindStringSubmatchIndex(name)
	if loc == nil || loc[2] < 0 || loc[2] == loc[3] {
		return "", span{}, false
	}
	cut := span{loc[2], loc[3]}
	value := name[loc[2]:loc[3]]
	if len(loc) >= 6 && loc[4] >= 0 && loc[4] < loc[5] {
		value = name[loc[4]:loc[5]]
	}
	if x.negative != "" && value == x.negative {
		return "", span{}, false
	}
	return value, cut, true
}

// tokenExtractor is one of Envoy's tokenized tag specifiers.
type tokenExtractor struct {
	name    string
	pattern []string
	value   int // index of "$" in pattern
	pfx     string
}

func newTokenExtractor(name, pattern string) (*tokenExtractor, error) {
	toks := strings.Split(pattern, ".")
	v := slices.Index(toks, "$")
	if v < 0 {
		return nil, fmt.Errorf("tag %q: pattern %q has no $", name, pattern)
	}
	x := &tokenExtractor{name: name, pattern: toks, value: v}
	if t := toks[0]; t != "$" && t != "*" && t != "**" {
		x.pfx = t
	}
	return x, nil
}

func (x *tokenExtractor) tagName() string { return x.name }
func (x *tokenExtractor) prefix() string  { return x.pfx }

func (x *tokenExtractor) extract(name string, toks []span) (string, span, bool) {
	at := -1
	if !x.match(name, toks, 0, 0, &at) || at < 0 {
		return "", span{}, false
	}
	t := toks[at]
	cut := t
	switch {
	case at < len(toks)-1:
		cut.end++ // the dot after the value
	case t.start > 0:
		cut.start-- // the dot before a final value
	}
	return name[t.start:t.end], cut, true
}

// match reports whether toks[ti:] matches pattern[pi:], recording in *at the
// token matched by "$".
func (x *tokenExtractor) match(name string, toks []span, ti, pi int, at *int) bool {
	for ; ti < len(toks) && pi < len(x.pattern); ti, pi = ti+1, pi+1 {
		p := x.pattern[pi]
		switch {
		case pi == x.value:
			*at = ti
		case p == "**":
			if pi == len(x.pattern)-1 {
				return true // a final ** takes the (non-empty) rest
			}
			for k := ti; k < len(toks); k++ {
				if x.match(name, toks, k, pi+1, at) {
					return true
				}
			}
			return false
		case p == "*":
		case p != name[toks[ti].start:toks[ti].end]:
			return false
		}
	}
	return ti == len(toks) && pi == len(x.pattern)
}

// fixedExtractor adds a tag with a fixed value to every stat
// (stats_tags[].fixed_value).
type fixedExtractor struct{ name, value string }

func (x *fixedExtractor) tagName() string { return x.name }
func (x *fixedExtractor) prefix() string  { return "" }
func (x *fixedExtractor) extract(string, []span) (string, span, bool) {
	return x.value, span{}, true
}

// TagProducer turns a stat name into its tag-extracted name and tags, as
// Envoy's TagProducerImpl: every extractor runs on the original name (only
// those whose first token matches, plus those without one), each match
// contributes a tag and a span to cut, and the cut spans are removed at the
// end. When several extractors share a tag name only the first match counts.
// A TagProducer is immutable and safe for concurrent use.
type TagProducer struct {
	all      []extractor
	unprefix []extractor
	byPrefix map[string][]extractor
	shared   map[string]bool // tag names with more than one extractor
}

// DefaultTagProducer returns a producer with Envoy's default tag specifiers.
func DefaultTagProducer() *TagProducer {
	p := &TagProducer{}
	if err := p.addDefaults(""); err != nil {
		panic(err) // the defaults are constants; a failure is a bug here
	}
	p.index()
	return p
}

// addDefaults adds the default specifiers, or only those named only.
func (p *TagProducer) addDefaults(only string) error {
	for _, s := range defaultRegexSpecs() {
		if only != "" && s.name != only {
			continue
		}
		x, err := newRegexExtractor(s.name, s.re, s.substr, s.negative)
		if err != nil {
			return err
		}
		p.all = append(p.all, x)
	}
	for _, s := range defaultTokenSpecs() {
		if only != "" && s.name != only {
			continue
		}
		x, err := newTokenExtractor(s.name, s.pattern)
		if err != nil {
			return err
		}
		p.all = append(p.all, x)
	}
	return nil
}

func (p *TagProducer) index() {
	p.unprefix = nil
	p.byPrefix = map[string][]extractor{}
	p.shared = map[string]bool{}
	seen := map[string]bool{}
	for _, x := range p.all {
		if seen[x.tagName()] {
			p.shared[x.tagName()] = true
		}
		seen[x.tagName()] = true
		if pf := x.prefix(); pf == "" {
			p.unprefix = append(p.unprefix, x)
		} else {
			p.byPrefix[pf] = append(p.byPrefix[pf], x)
		}
	}
}

// Extract returns name with the tag values cut out, and the tags in
// extraction order (extractors without a prefix token first), which is the
// order Envoy prints Prometheus labels in.
func (p *TagProducer) Extract(name string) (string, []Tag) {
	toks := tokenize(name)
	var tags []Tag
	var cuts []span
	var done map[string]bool
	run := func(x extractor) {
		n := x.tagName()
		if p.shared[n] && done[n] {
			return
		}
		v, cut, ok := x.extract(name, toks)
		if !ok {
			return
		}
		tags = append(tags, Tag{Name: n, Value: v})
		if cut.end > cut.start {
			cuts = append(cuts, cut)
		}
		if p.shared[n] {
			if done == nil {
				done = map[string]bool{}
			}
			done[n] = true
		}
	}
	for _, x := range p.unprefix {
		run(x)
	}
	if dot := strings.IndexByte(name, '.'); dot >= 0 {
		for _, x := range p.byPrefix[name[:dot]] {
			run(x)
		}
	}
	return cutSpans(name, cuts), tags
}

func tokenize(name string) []span {
	toks := make([]span, 0, 8)
	start := 0
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			toks = append(toks, span{start, i})
			start = i + 1
		}
	}
	return append(toks, span{start, len(name)})
}

// cutSpans removes the union of the spans from s.
func cutSpans(s string, cuts []span) string {
	if len(cuts) == 0 {
		return s
	}
	slices.SortFunc(cuts, func(a, b span) int { return a.start - b.start })
	var b strings.Builder
	b.Grow(len(s))
	pos := 0
	for _, c := range cuts {
		if c.start > pos {
			b.WriteString(s[pos:c.start])
		}
		pos = max(pos, c.end)
	}
	if pos < len(s) {
		b.WriteString(s[pos:])
	}
	return b.String()
}
