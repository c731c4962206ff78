package stats

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// OptionsFromProto compiles the bootstrap's stats_config into store Options:
// stats_tags (regex, fixed_value, or a default tag name with no regex),
// use_all_default_tags, allow_default_tag_overrides, stats_matcher and
// histogram_bucket_settings. histogram_bucket_settings[].bins only shapes
// Prometheus native histograms, which wasmesh does not serve, and is ignored.
// A nil cfg gives the defaults. Errors name the field.
//
// Regexes are RE2 (Go's regexp): a custom tag regex using look-around, which
// Envoy's std::regex accepts, is reported as invalid.
func OptionsFromProto(cfg *metricsv3.StatsConfig) (Options, error) {
	var o Options
	if cfg == nil {
		o.Tags = DefaultTagProducer()
		return o, nil
	}
	tags, err := tagProducerFromProto(cfg)
	if err != nil {
		return o, err
	}
	o.Tags = tags
	if m := cfg.GetStatsMatcher(); m != nil {
		accept, err := compileStatsMatcher(m)
		if err != nil {
			return o, err
		}
		o.Accept = accept
	}
	if hb := cfg.GetHistogramBucketSettings(); len(hb) > 0 {
		type rule struct {
			match   func(string) bool
			buckets []float64
		}
		var rules []rule
		for i, s := range hb {
			path := fmt.Sprintf("stats_config.histogram_bucket_settings[%d]", i)
			m, err := compileStringMatcher(s.GetMatch(), path+".match")
			if err != nil {
				return o, err
			}
			if len(s.GetBuckets()) == 0 {
				return o, fmt.Errorf("stats: %s.buckets: must not be empty", path)
			}
			for j, b := range s.GetBuckets() {
				if !(b > 0) {
					return o, fmt.Errorf("stats: %s.buckets[%d]: %v is not > 0", path, j, b)
				}
			}
			rules = append(rules, rule{m, slices.Clone(s.GetBuckets())})
		}
		o.Buckets = func(name string) []float64 {
			for _, r := range rules {
				if r.match(name) {
					return r.buckets
				}
			}
			return nil
		}
	}
	return o, nil
}

func tagProducerFromProto(cfg *metricsv3.StatsConfig) (*TagProducer, error) {
	p := &TagProducer{}
	if cfg.GetUseAllDefaultTags() == nil || cfg.GetUseAllDefaultTags().GetValue() {
		if err := p.addDefaults(""); err != nil {
			return nil, err
		}
	}
	override := cfg.GetAllowDefaultTagOverrides().GetValue()
	for i, ts := range cfg.GetStatsTags() {
		path := fmt.Sprintf("stats_config.stats_tags[%d]", i)
		name := ts.GetTagName()
		if name == "" {
			return nil, fmt.Errorf("stats: %s.tag_name: must not be empty", path)
		}
		if override {
			p.all = slices.DeleteFunc(p.all, func(x extractor) bool { return x.tagName() == name })
		}
		switch v := ts.GetTagValue().(type) {
		case *metricsv3.TagSpecifier_FixedValue:
			p.all = append(p.all, &fixedExtractor{name: name, value: v.FixedValue})
		case *metricsv3.TagSpecifier_Regex:
			if v.Regex == "" {
				if err := addDefaultNamed(p, name, path); err != nil {
					return nil, err
				}
				continue
			}
			x, err := newRegexExtractor(name, v.Regex, "", "")
			if err != nil {
				return nil, fmt.Errorf("stats: %s.regex: %w", path, err)
			}
			p.all = append(p.all, x)
		default:
			if err := addDefaultNamed(p, name, path); err != nil {
				return nil, err
			}
		}
	}
	p.index()
	return p, nil
}

func addDefaultNamed(p *TagProducer, name, path string) error {
	before := len(p.all)
	if err := p.addDefaults(name); err != nil {
		return err
	}
	if len(p.all) == before {
		return fmt.Errorf("stats: %s: no regex specified and no default regex for tag name %q", path, name)
	}
	return nil
}

func compileStatsMatcher(m *metricsv3.StatsMatcher) (func(string) bool, error) {
	switch v := m.GetStatsMatcher().(type) {
	case *metricsv3.StatsMatcher_RejectAll:
		if v.RejectAll {
			return func(string) bool { return false }, nil
		}
		return nil, nil
	case *metricsv3.StatsMatcher_InclusionList:
		match, err := compileList(v.InclusionList, "stats_config.stats_matcher.inclusion_list")
		if err != nil {
			return nil, err
		}
		return match, nil
	case *metricsv3.StatsMatcher_ExclusionList:
		match, err := compileList(v.ExclusionList, "stats_config.stats_matcher.exclusion_list")
		if err != nil {
			return nil, err
		}
		return func(name string) bool { return !match(name) }, nil
	}
	return nil, nil
}

func compileList(l *matcherv3.ListStringMatcher, path string) (func(string) bool, error) {
	var ms []func(string) bool
	for i, p := range l.GetPatterns() {
		m, err := compileStringMatcher(p, fmt.Sprintf("%s.patterns[%d]", path, i))
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return func(name string) bool {
		for _, m := range ms {
			if m(name) {
				return true
			}
		}
		return false
	}, nil
}

// compileStringMatcher compiles an envoy.type.matcher.v3.StringMatcher.
func compileStringMatcher(m *matcherv3.StringMatcher, path string) (func(string) bool, error) {
	if m == nil {
		return nil, fmt.Errorf("stats: %s: required", path)
	}
	fold := m.GetIgnoreCase()
	norm := func(s string) string {
		if fold {
			return strings.ToLower(s)
		}
		return s
	}
	switch v := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		want := norm(v.Exact)
		return func(s string) bool { return norm(s) == want }, nil
	case *matcherv3.StringMatcher_Prefix:
		want := norm(v.Prefix)
		return func(s string) bool { return strings.HasPrefix(norm(s), want) }, nil
	case *matcherv3.StringMatcher_Suffix:
		want := norm(v.Suffix)
		return func(s string) bool { return strings.HasSuffix(norm(s), want) }, nil
	case *matcherv3.StringMatcher_Contains:
		want := norm(v.Contains)
		return func(s string) bool { return strings.Contains(norm(s), want) }, nil
	case *matcherv3.StringMatcher_SafeRegex:
		if fold {
			return nil, fmt.Errorf("stats: %s.ignore_case: not supported with safe_regex", path)
		}
		re, err := regexp.Compile(`^(?:` + v.SafeRegex.GetRegex() + `)$`)
		if err != nil {
			return nil, fmt.Errorf("stats: %s.safe_regex.regex: invalid regex: %w", path, err)
		}
		return re.MatchString, nil
	case *matcherv3.StringMatcher_Custom:
		return nil, fmt.Errorf("stats: %s.custom: not supported", path)
	}
	return nil, fmt.Errorf("stats: %s: no match pattern", path)
}
