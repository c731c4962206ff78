package stats

import (
	"slices"
	"strings"
	"testing"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Cases from Envoy's test/common/stats/tag_extractor_impl_test.cc
// (DefaultTagExtractors), with the results of the current default
// specifiers, plus the names the data plane uses.
var tagCases = []struct {
	name      string
	extracted string
	tags      []Tag
}{
	{"cluster.ratelimit.upstream_rq_timeout", "cluster.upstream_rq_timeout",
		[]Tag{{TagClusterName, "ratelimit"}}},
	{"listener.[__1]_0.ssl.ciphers.AES256-SHA", "listener.ssl.ciphers",
		[]Tag{{TagSSLCipher, "AES256-SHA"}, {TagListenerAddress, "[__1]_0"}}},
	{"cluster.ratelimit.ssl.ciphers.ECDHE-RSA-AES128-GCM-SHA256", "cluster.ssl.ciphers",
		[]Tag{{TagSSLCipherSuite, "ECDHE-RSA-AES128-GCM-SHA256"}, {TagClusterName, "ratelimit"}}},
	{"listener.[2001_0db8_85a3_0000_0000_8a2e_0370_7334]_3543.ssl.ciphers.AES256-SHA", "listener.ssl.ciphers",
		[]Tag{{TagSSLCipher, "AES256-SHA"}, {TagListenerAddress, "[2001_0db8_85a3_0000_0000_8a2e_0370_7334]_3543"}}},
	{"listener.127.0.0.1_0.ssl.ciphers.AES256-SHA", "listener.ssl.ciphers",
		[]Tag{{TagSSLCipher, "AES256-SHA"}, {TagListenerAddress, "127.0.0.1_0"}}},
	{"mongo.mongo_filter.op_reply", "mongo.op_reply",
		[]Tag{{TagMongoPrefix, "mongo_filter"}}},
	{"mongo.mongo_filter.cmd.foo_cmd.reply_size", "mongo.cmd.reply_size",
		[]Tag{{TagMongoCmd, "foo_cmd"}, {TagMongoPrefix, "mongo_filter"}}},
	{"mongo.mongo_filter.collection.bar_collection.query.multi_get", "mongo.collection.query.multi_get",
		[]Tag{{TagMongoCollection, "bar_collection"}, {TagMongoPrefix, "mongo_filter"}}},
	{"mongo.mongo_filter.collection.bar_collection.callsite.baz_callsite.query.scatter_get",
		"mongo.collection.callsite.query.scatter_get",
		[]Tag{{TagMongoCallsite, "baz_callsite"}, {TagMongoCollection, "bar_collection"}, {TagMongoPrefix, "mongo_filter"}}},
	{"ratelimit.foo_ratelimiter.over_limit", "ratelimit.over_limit",
		[]Tag{{TagRatelimitPrefix, "foo_ratelimiter"}}},
	{"http.egress_dynamodb_iad.downstream_cx_total", "http.downstream_cx_total",
		[]Tag{{TagHTTPConnManagerPrefix, "egress_dynamodb_iad"}}},
	{"http.egress_dynamodb_iad.dynamodb.operation.Query.upstream_rq_time", "http.dynamodb.operation.upstream_rq_time",
		[]Tag{{TagDynamoOperation, "Query"}, {TagHTTPConnManagerPrefix, "egress_dynamodb_iad"}}},
	{"http.egress_dynamodb_iad.dynamodb.table.bar_table.upstream_rq_time", "http.dynamodb.table.upstream_rq_time",
		[]Tag{{TagDynamoTable, "bar_table"}, {TagHTTPConnManagerPrefix, "egress_dynamodb_iad"}}},
	{"http.egress_dynamodb_iad.dynamodb.table.bar_table.capacity.Query.__partition_id=ABC1234", "http.dynamodb.table.capacity",
		[]Tag{{TagDynamoPartitionID, "ABC1234"}, {TagDynamoOperation, "Query"}, {TagDynamoTable, "bar_table"},
			{TagHTTPConnManagerPrefix, "egress_dynamodb_iad"}}},
	{"cluster.grpc_cluster.grpc.grpc_service_1.grpc_method_1.success", "cluster.grpc.success",
		[]Tag{{TagGRPCBridgeMethod, "grpc_method_1"}, {TagGRPCBridgeService, "grpc_service_1"}, {TagClusterName, "grpc_cluster"}}},
	{"vhost.vhost_1.vcluster.vcluster_1.upstream_rq_2xx", "vhost.vcluster.upstream_rq_xx",
		[]Tag{{TagResponseCodeClass, "2"}, {TagVirtualCluster, "vcluster_1"}, {TagVirtualHost, "vhost_1"}}},
	{"vhost.vhost_1.vcluster.vcluster_1.upstream_rq_200", "vhost.vcluster.upstream_rq",
		[]Tag{{TagResponseCode, "200"}, {TagVirtualCluster, "vcluster_1"}, {TagVirtualHost, "vhost_1"}}},
	{"listener.127.0.0.1_3012.http.http_prefix.downstream_rq_5xx", "listener.http.downstream_rq_xx",
		[]Tag{{TagResponseCodeClass, "5"}, {TagHTTPConnManagerPrefix, "http_prefix"}, {TagListenerAddress, "127.0.0.1_3012"}}},
	{"http.egress_dynamodb_iad.user_agent.ios.downstream_cx_total", "http.user_agent.downstream_cx_total",
		[]Tag{{TagHTTPUserAgent, "ios"}, {TagHTTPConnManagerPrefix, "egress_dynamodb_iad"}}},
	{"auth.clientssl.clientssl_prefix.auth_ip_allowlist", "auth.clientssl.auth_ip_allowlist",
		[]Tag{{TagClientSSLPrefix, "clientssl_prefix"}}},
	{"tcp.tcp_prefix.downstream_flow_control_resumed_reading_total", "tcp.downstream_flow_control_resumed_reading_total",
		[]Tag{{TagTCPPrefix, "tcp_prefix"}}},
	{"http.fault_connection_manager.fault.fault_cluster.aborts_injected", "http.fault.aborts_injected",
		[]Tag{{TagFaultDownstreamCluster, "fault_cluster"}, {TagHTTPConnManagerPrefix, "fault_connection_manager"}}},
	{"http.rds_connection_manager.rds.route_config.123.update_success", "http.rds.update_success",
		[]Tag{{TagRDSRouteConfig, "route_config.123"}, {TagHTTPConnManagerPrefix, "rds_connection_manager"}}},
	{"listener_manager.worker_123.dispatcher.loop_duration_us", "listener_manager.worker_dispatcher.loop_duration_us",
		[]Tag{{TagWorkerID, "123"}}},

	// The data plane's own names.
	{"cluster.backend.upstream_rq_total", "cluster.upstream_rq_total",
		[]Tag{{TagClusterName, "backend"}}},
	{"cluster.backend.upstream_rq_503", "cluster.upstream_rq",
		[]Tag{{TagResponseCode, "503"}, {TagClusterName, "backend"}}},
	{"cluster.backend.upstream_rq_2xx", "cluster.upstream_rq_xx",
		[]Tag{{TagResponseCodeClass, "2"}, {TagClusterName, "backend"}}},
	{"cluster.backend.membership_healthy", "cluster.membership_healthy",
		[]Tag{{TagClusterName, "backend"}}},
	{"cluster.backend.ssl.curves.X25519", "cluster.ssl.curves",
		[]Tag{{TagSSLCurve, "X25519"}, {TagClusterName, "backend"}}},
	{"listener.127.0.0.1_443.ssl.versions.TLSv1.3", "listener.ssl.versions",
		[]Tag{{TagSSLVersion, "TLSv1.3"}, {TagListenerAddress, "127.0.0.1_443"}}},
	{"http.ingress_http.downstream_rq_total", "http.downstream_rq_total",
		[]Tag{{TagHTTPConnManagerPrefix, "ingress_http"}}},
	{"http.ingress_http.downstream_rq_4xx", "http.downstream_rq_xx",
		[]Tag{{TagResponseCodeClass, "4"}, {TagHTTPConnManagerPrefix, "ingress_http"}}},
	{"listener.0.0.0.0_10000.downstream_cx_total", "listener.downstream_cx_total",
		[]Tag{{TagListenerAddress, "0.0.0.0_10000"}}},
	{"listener.0.0.0.0_10000.worker_0.downstream_cx_total", "listener.worker_downstream_cx_total",
		[]Tag{{TagWorkerID, "0"}, {TagListenerAddress, "0.0.0.0_10000"}}},
	{"listener.my_stat_prefix.downstream_cx_total", "listener.downstream_cx_total",
		[]Tag{{TagListenerAddress, "my_stat_prefix"}}},
	{"listener.admin.downstream_cx_total", "listener.admin.downstream_cx_total", nil},
	{"server.worker_3.watchdog_miss", "server.worker_watchdog_miss",
		[]Tag{{TagWorkerID, "3"}}},
	{"server.live", "server.live", nil},
	{"vhost.vh.route.r1.upstream_rq_completed", "vhost.route.upstream_rq_completed",
		[]Tag{{TagVirtualHost, "vh"}, {TagRoute, "r1"}}},
	{"cluster.backend.ext_authz.authz.ok", "cluster.ext_authz.ok",
		[]Tag{{TagClusterName, "backend"}, {TagExtAuthzPrefix, "authz"}}},
	{"cluster.backend", "cluster.backend", nil}, // "cluster.$.**" needs a stat after the name
	{"", "", nil},
}

func TestDefaultTagExtraction(t *testing.T) {
	p := DefaultTagProducer()
	for _, tc := range tagCases {
		t.Run(tc.name, func(t *testing.T) {
			got, tags := p.Extract(tc.name)
			if got != tc.extracted {
				t.Errorf("Extract(%q) name = %q, want %q", tc.name, got, tc.extracted)
			}
			if !slices.Equal(tags, tc.tags) {
				t.Errorf("Extract(%q) tags = %v, want %v", tc.name, tags, tc.tags)
			}
		})
	}
}

// Envoy checks that the default extractors give the same result in reverse
// order: they must not depend on one another.
func TestDefaultTagExtractionOrderInvariant(t *testing.T) {
	fwd := DefaultTagProducer()
	rev := &TagProducer{all: slices.Clone(fwd.all)}
	slices.Reverse(rev.all)
	rev.index()
	for _, tc := range tagCases {
		gotF, tagsF := fwd.Extract(tc.name)
		gotR, tagsR := rev.Extract(tc.name)
		sortTags := func(ts []Tag) {
			slices.SortFunc(ts, func(a, b Tag) int { return strings.Compare(a.Name+"="+a.Value, b.Name+"="+b.Value) })
		}
		sortTags(tagsF)
		sortTags(tagsR)
		if gotF != gotR || !slices.Equal(tagsF, tagsR) {
			t.Errorf("%q: forward %q %v, reverse %q %v", tc.name, gotF, tagsF, gotR, tagsR)
		}
	}
}

// Name → Prometheus series, from Envoy's prometheus_stats_test.cc
// (MetricName, SanitizeMetricName, CustomNamespace...) and the data plane's
// names.
func TestPrometheusConversion(t *testing.T) {
	cases := []struct {
		name   string
		custom bool
		want   string // metric{labels}; "" when not exported
	}{
		{"vulture.eats-liver", false, `envoy_vulture_eats_liver{}`},
		{"An.artist.plays-violin@019street", false, `envoy_An_artist_plays_violin_019street{}`},
		{"3.artists.play-violin@019street", false, `envoy_3_artists_play_violin_019street{}`},
		{"vulture.eats-liver", true, `vulture_eats_liver{}`},
		{"1234abcd.eats-liver", true, ``},
		{"cluster.backend.upstream_rq_total", false, `envoy_cluster_upstream_rq_total{envoy_cluster_name="backend"}`},
		{"cluster.backend.upstream_rq_2xx", false, `envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="backend"}`},
		{"cluster.backend.upstream_rq_503", false, `envoy_cluster_upstream_rq{envoy_response_code="503",envoy_cluster_name="backend"}`},
		{"cluster.outbound|80||web.default.svc.cluster.local.upstream_cx_active", false,
			`envoy_cluster_default_svc_cluster_local_upstream_cx_active{envoy_cluster_name="outbound|80||web"}`},
		{"http.ingress_http.downstream_rq_total", false, `envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="ingress_http"}`},
		{"listener.0.0.0.0_10000.downstream_cx_total", false, `envoy_listener_downstream_cx_total{envoy_listener_address="0.0.0.0_10000"}`},
		{"listener.[__1]_10000.downstream_cx_total", false, `envoy_listener_downstream_cx_total{envoy_listener_address="[__1]_10000"}`},
		{"listener.admin.downstream_cx_total", false, `envoy_listener_admin_downstream_cx_total{}`},
		{"server.live", false, `envoy_server_live{}`},
		{"wasm.envoy.wasm.runtime.v8.active", false, `envoy_wasm_envoy_wasm_runtime_v8_active{}`},
		{"my_filter_requests", true, `my_filter_requests{}`},
		{"example.requests_rq_200", true, `example_requests_rq{envoy_response_code="200"}`},
	}
	s := New(Options{})
	for _, tc := range cases {
		x := s.extract(stat{name: tc.name, custom: tc.custom})
		got := ""
		if x.metric != "" {
			got = x.metric + "{" + x.labels + "}"
		}
		if got != tc.want {
			t.Errorf("%q (custom %v) = %s, want %s", tc.name, tc.custom, got, tc.want)
		}
	}
}

func TestFormatLabelsEscapes(t *testing.T) {
	// Envoy's FormattedTags case.
	got := formatLabels([]Tag{{"a.tag-name", "a.tag-value"}, {"another_tag_name", "another_tag-value"},
		{"replace_problematic", "val\"ue with\\ some\n issues"}})
	want := `a_tag_name="a.tag-value",another_tag_name="another_tag-value",replace_problematic="val\"ue with\\ some\n issues"`
	if got != want {
		t.Errorf("formatLabels = %s\nwant %s", got, want)
	}
}

func TestRegexPrefix(t *testing.T) {
	// Envoy's ExtractRegexPrefix cases.
	for re, want := range map[string]string{
		`^prefix(foo).`:           "",
		`^prefix\.foo`:            "prefix",
		`^prefix_optional(?=\.)`:  "prefix_optional",
		`^notACompleteToken`:      "",
		`^onlyToken$`:             "onlyToken",
		`(prefix)`:                "",
		`^(prefix)`:               "",
		`prefix(foo)`:             "",
		`^cluster\.((.+?)\.)`:     "cluster",
		`^(?:listener|cluster)\.`: "",
	} {
		if got := regexPrefix(re); got != want {
			t.Errorf("regexPrefix(%q) = %q, want %q", re, got, want)
		}
	}
}

func TestTagProducerFromProto(t *testing.T) {
	cfg := &metricsv3.StatsConfig{
		UseAllDefaultTags: wrapperspb.Bool(false),
		StatsTags: []*metricsv3.TagSpecifier{
			{TagName: "envoy.cluster_name"}, // the default regex for this name
			{TagName: "mesh", TagValue: &metricsv3.TagSpecifier_FixedValue{FixedValue: "default"}},
			{TagName: "service", TagValue: &metricsv3.TagSpecifier_Regex{Regex: `^svc\.((.+?)\.)`}},
		},
	}
	o, err := OptionsFromProto(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, extracted string
		tags            []Tag
	}{
		{"cluster.backend.upstream_rq_200", "cluster.upstream_rq_200",
			[]Tag{{"mesh", "default"}, {TagClusterName, "backend"}}},
		{"svc.web.requests", "svc.requests", []Tag{{"mesh", "default"}, {"service", "web"}}},
		{"http.ingress.downstream_rq_total", "http.ingress.downstream_rq_total", []Tag{{"mesh", "default"}}},
	} {
		got, tags := o.Tags.Extract(tc.name)
		if got != tc.extracted || !slices.Equal(tags, tc.tags) {
			t.Errorf("Extract(%q) = %q %v, want %q %v", tc.name, got, tags, tc.extracted, tc.tags)
		}
	}
}

func TestOptionsFromProtoErrors(t *testing.T) {
	cases := []struct {
		cfg  *metricsv3.StatsConfig
		want string
	}{
		{&metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{{TagName: "x", TagValue: &metricsv3.TagSpecifier_Regex{Regex: `^a(?=\.)`}}}},
			"stats_config.stats_tags[0].regex: tag \"x\": invalid regex"},
		{&metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{{TagName: "x", TagValue: &metricsv3.TagSpecifier_Regex{Regex: `^abc`}}}},
			"stats_config.stats_tags[0].regex: tag \"x\": regex \"^abc\" has no capture group"},
		{&metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{{TagName: "nope"}}},
			"stats_config.stats_tags[0]: no regex specified and no default regex for tag name \"nope\""},
		{&metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{{TagName: ""}}},
			"stats_config.stats_tags[0].tag_name: must not be empty"},
		{&metricsv3.StatsConfig{HistogramBucketSettings: []*metricsv3.HistogramBucketSettings{{Buckets: []float64{1}}}},
			"stats_config.histogram_bucket_settings[0].match: required"},
	}
	for _, tc := range cases {
		_, err := OptionsFromProto(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OptionsFromProto(%v) error = %v, want it to contain %q", tc.cfg, err, tc.want)
		}
	}
}

func TestAllowDefaultTagOverrides(t *testing.T) {
	o, err := OptionsFromProto(&metricsv3.StatsConfig{
		AllowDefaultTagOverrides: wrapperspb.Bool(true),
		StatsTags: []*metricsv3.TagSpecifier{{TagName: TagClusterName,
			TagValue: &metricsv3.TagSpecifier_Regex{Regex: `^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)`}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, tags := o.Tags.Extract("cluster.outbound|80||web.default.svc.cluster.local.upstream_cx_active")
	want := []Tag{{TagClusterName, "outbound|80||web.default.svc.cluster.local"}}
	if got != "cluster.upstream_cx_active" || !slices.Equal(tags, want) {
		t.Errorf("got %q %v, want cluster.upstream_cx_active %v", got, tags, want)
	}
}

// FuzzTagExtract checks the extractor's invariants on any name: no panic,
// the result is deterministic, every tag value is a piece of the name, and
// the extracted name is the name with pieces cut out.
func FuzzTagExtract(f *testing.F) {
	for _, tc := range tagCases {
		f.Add(tc.name)
	}
	f.Add("cluster..upstream_rq_200")
	f.Add("....")
	f.Add("listener.1.2.3.4_5.worker_6.http.x.downstream_rq_7xx")
	p := DefaultTagProducer()
	f.Fuzz(func(t *testing.T, name string) {
		got, tags := p.Extract(name)
		again, tags2 := p.Extract(name)
		if got != again || !slices.Equal(tags, tags2) {
			t.Fatalf("not deterministic: %q", name)
		}
		if len(got) > len(name) {
			t.Fatalf("extracted %q longer than %q", got, name)
		}
		if !isSubsequence(got, name) {
			t.Fatalf("extracted %q is not %q with pieces cut", got, name)
		}
		for _, tg := range tags {
			if !strings.Contains(name, tg.Value) {
				t.Fatalf("tag %v not in %q", tg, name)
			}
		}
		_ = PrometheusName(got, false)
		_ = formatLabels(tags)
	})
}

func isSubsequence(sub, s string) bool {
	i := 0
	for j := 0; j < len(s) && i < len(sub); j++ {
		if s[j] == sub[i] {
			i++
		}
	}
	return i == len(sub)
}

func TestStatsMatcherAndBucketsFromProto(t *testing.T) {
	prefix := func(p string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}}
	}
	o, err := OptionsFromProto(&metricsv3.StatsConfig{
		StatsMatcher: &metricsv3.StatsMatcher{StatsMatcher: &metricsv3.StatsMatcher_ExclusionList{
			ExclusionList: &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{
				prefix("cluster.xds_cluster."),
				{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `.*_rq_\d+`}}},
			}}}},
		HistogramBucketSettings: []*metricsv3.HistogramBucketSettings{
			{Match: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "_BYTES"}, IgnoreCase: true},
				Buckets: []float64{100, 1000}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"cluster.xds_cluster.upstream_rq_total": false,
		"cluster.backend.upstream_rq_200":       false,
		"cluster.backend.upstream_rq_total":     true,
	} {
		if got := o.Accept(name); got != want {
			t.Errorf("Accept(%q) = %v, want %v", name, got, want)
		}
	}
	if b := o.Buckets("http.x.rq_bytes"); !slices.Equal(b, []float64{100, 1000}) {
		t.Errorf("Buckets(rq_bytes) = %v", b)
	}
	if b := o.Buckets("http.x.rq_time"); b != nil {
		t.Errorf("Buckets(rq_time) = %v, want nil (defaults)", b)
	}

	reject, err := OptionsFromProto(&metricsv3.StatsConfig{StatsMatcher: &metricsv3.StatsMatcher{
		StatsMatcher: &metricsv3.StatsMatcher_RejectAll{RejectAll: true}}})
	if err != nil || reject.Accept("server.live") {
		t.Errorf("reject_all: %v", err)
	}
}
