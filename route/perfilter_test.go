package route

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const sv = "type.googleapis.com/google.protobuf.StringValue"

func svAny(s string) string { return `{"@type": "` + sv + `", value: "` + s + `"}` }

func fc(inner string) string {
	return `{"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", ` + inner + `}`
}

func configValue(a *anypb.Any) string {
	if a == nil {
		return "<nil>"
	}
	var s wrapperspb.StringValue
	if err := a.UnmarshalTo(&s); err != nil {
		return "?" + a.GetTypeUrl()
	}
	return s.GetValue()
}

func TestPerFilterConfig(t *testing.T) {
	tbl := mustCompile(t, `
typed_per_filter_config:
  f.config: `+svAny("rc")+`
  f.all: `+svAny("rc-all")+`
virtual_hosts:
- name: vh
  domains: ["*"]
  typed_per_filter_config:
    f.all: `+svAny("vh-all")+`
    f.disabled-at-vh: `+fc("disabled: true")+`
    f.fallback: `+svAny("vh-fallback")+`
  routes:
  - name: r
    match: {prefix: /r}
    route: {cluster: c}
    typed_per_filter_config:
      f.all: `+svAny("route-all")+`
      f.disabled-at-vh: `+fc(`config: `+svAny("route-enables"))+`
      f.fallback: `+fc("config: {}")+`
      f.optional: `+fc(`is_optional: true, config: `+svAny("opt"))+`
      f.off: `+fc("disabled: true")+`
  - name: plain
    match: {prefix: /}
    route:
      weighted_clusters:
        clusters:
        - name: a
          weight: 1
          typed_per_filter_config:
            f.config: `+fc("disabled: true")+`
            f.all: `+svAny("wc-all")+`
`)
	r := tbl.VirtualHosts()[0].Routes()[0]
	plain := tbl.VirtualHosts()[0].Routes()[1]
	type got struct {
		cfg                          string
		explicit, disabled, optional bool
	}
	view := func(o FilterOverride) got { return got{configValue(o.Config), o.Explicit, o.Disabled, o.Optional} }
	cases := []struct {
		route *Route
		name  string
		want  got
	}{
		{r, "f.all", got{"route-all", true, false, false}},
		{r, "f.config", got{"rc", true, false, false}},
		{r, "f.disabled-at-vh", got{"route-enables", true, false, false}},
		{r, "f.fallback", got{"vh-fallback", true, false, false}}, // enabled at the route, config from the virtual host
		{r, "f.optional", got{"opt", true, false, true}},
		{r, "f.off", got{"<nil>", true, true, false}},
		{r, "f.none", got{"<nil>", false, false, false}},
		{plain, "f.all", got{"vh-all", true, false, false}},
		{plain, "f.disabled-at-vh", got{"<nil>", true, true, false}},
	}
	for _, c := range cases {
		if g := view(c.route.FilterOverride(c.name)); g != c.want {
			t.Errorf("%s %s: %+v, want %+v", c.route.Name, c.name, g, c.want)
		}
	}
	if !reflect.DeepEqual(r.FilterNames(), []string{"f.all", "f.config", "f.disabled-at-vh", "f.fallback", "f.off", "f.optional"}) {
		t.Errorf("FilterNames %q", r.FilterNames())
	}

	// The weighted cluster is the most specific level of a match.
	m := tbl.Match(req("h", "/x"), RequestInfo{})
	if g := view(m.FilterOverride("f.config")); g != (got{"rc", true, true, false}) {
		t.Errorf("weighted cluster disables: %+v", g)
	}
	if g := view(m.FilterOverride("f.all")); g != (got{"wc-all", true, false, false}) {
		t.Errorf("weighted cluster config: %+v", g)
	}

	// Enabled combines the override with the http_filters entry's flag.
	if !(FilterOverride{}).Enabled(false) || (FilterOverride{}).Enabled(true) {
		t.Errorf("no override keeps the chain's flag")
	}
	if !r.FilterOverride("f.disabled-at-vh").Enabled(true) || r.FilterOverride("f.off").Enabled(false) {
		t.Errorf("explicit entries replace the chain's flag")
	}

	// PerFilterConfig re-wraps the resolved entry as a FilterConfig.
	raw, ok := r.PerFilterConfig("f.fallback")
	var w routev3.FilterConfig
	if !ok || raw.UnmarshalTo(&w) != nil || w.GetDisabled() || configValue(w.GetConfig()) != "vh-fallback" {
		t.Errorf("PerFilterConfig: %v %v", raw, ok)
	}
	raw, ok = r.PerFilterConfig("f.off")
	if !ok || raw.UnmarshalTo(&w) != nil || !w.GetDisabled() {
		t.Errorf("PerFilterConfig disabled: %v", raw)
	}
	if _, ok := r.PerFilterConfig("f.none"); ok {
		t.Errorf("PerFilterConfig of an unconfigured filter")
	}
}

func TestPerFilterConfigValidation(t *testing.T) {
	known := func(name string, cfg *anypb.Any) error {
		if cfg.GetTypeUrl() != sv {
			return ErrUnknownFilterConfig
		}
		if configValue(cfg) == "bad" {
			return errors.New("bad config")
		}
		return nil
	}
	y := func(entry string) string {
		return `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route: {cluster: c}
    typed_per_filter_config:
      f: ` + entry + `
`
	}
	unknown := `{"@type": "type.googleapis.com/google.protobuf.Int32Value", value: 1}`
	cases := []struct{ entry, want string }{
		{svAny("ok"), ""},
		{svAny("bad"), `routes[0].typed_per_filter_config["f"]: bad config`},
		{unknown, `routes[0].typed_per_filter_config["f"]: no filter implementation for this config type`},
		{fc(`is_optional: true, config: ` + unknown), ""},
		{fc(`config: ` + unknown), `typed_per_filter_config["f"].config: no filter implementation`},
		{fc(`is_optional: true`), `typed_per_filter_config["f"].config: empty route/virtual host per filter configuration for f filter`},
		{fc(`config: ` + svAny("bad")), `typed_per_filter_config["f"].config: bad config`},
	}
	for _, c := range cases {
		tbl, err := Compile(parseRC(t, y(c.entry)), CompileOptions{ValidateFilterConfig: known})
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.entry, err)
				continue
			}
			o := tbl.VirtualHosts()[0].Routes()[0].FilterOverride("f")
			if !o.Explicit || o.Disabled {
				t.Errorf("%s: %+v", c.entry, o)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got  %v\n want %q", c.entry, err, c.want)
		}
	}
}
