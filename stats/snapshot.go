package stats

import (
	"slices"
	"strings"
)

// stat is one row of an output: a counter or gauge value, or a histogram.
type stat struct {
	name   string // as shown
	kind   Kind
	value  uint64
	hist   *Histogram
	custom bool // from a custom source: tags see CustomNamespace+"."+name
	used   bool
	blk    *Block // a block's stat, at slot (counters then gauges)
	slot   int32
}

// snapshot reads the store and its sources once: scalars (counters and
// gauges) and histograms, each kept by the options and sorted by name. The
// store's stats come first when a source repeats a name.
func (s *Store) snapshot(o WriteOptions) (scalars, hists []stat) {
	s.mu.RLock()
	counters := make([]stat, 0, len(s.counters))
	for _, c := range s.counters {
		counters = append(counters, stat{name: c.n.prefix, kind: KindCounter, value: c.Value(), used: c.Used()})
	}
	gauges := make([]stat, 0, len(s.gauges))
	for _, g := range s.gauges {
		gauges = append(gauges, stat{name: g.n.prefix, kind: KindGauge, value: g.Value(), used: g.Used()})
	}
	for _, b := range s.blocks {
		b.collect(&counters, &gauges)
	}
	histograms := make([]*Histogram, 0, len(s.histograms))
	for _, h := range s.histograms {
		histograms = append(histograms, h)
	}
	sources := slices.Clone(s.sources)
	s.mu.RUnlock()

	seen := make(map[string]bool, len(counters)+len(gauges)+len(histograms))
	add := func(st stat, used bool) {
		if !o.wants(st.kind) || !o.keep(st.name, used) {
			return
		}
		key := st.name
		if st.kind == KindHistogram {
			key = "\x00h" + key // histograms have their own name space
		}
		if seen[key] {
			return
		}
		seen[key] = true
		if st.kind == KindHistogram {
			hists = append(hists, st)
		} else {
			scalars = append(scalars, st)
		}
	}
	for _, st := range counters {
		add(st, st.used)
	}
	for _, st := range gauges {
		add(st, st.used)
	}
	for _, h := range histograms {
		add(stat{name: h.name, kind: KindHistogram, hist: h}, h.Used())
	}
	for _, e := range sources {
		e.src.Collect(func(name string, kind Kind, value uint64) {
			if kind != KindCounter && kind != KindGauge {
				return
			}
			// A source has no used flag: a zero value counts as unused.
			add(stat{name: name, kind: kind, value: value, custom: e.custom}, value != 0)
		})
		if hs, ok := e.src.(HistogramSource); ok {
			hs.CollectHistograms(func(name string, h *Histogram) {
				if h == nil {
					return
				}
				add(stat{name: name, kind: KindHistogram, hist: h, custom: e.custom}, h.Used())
			})
		}
	}
	byName := func(a, b stat) int { return strings.Compare(a.name, b.name) }
	slices.SortFunc(scalars, byName)
	slices.SortFunc(hists, byName)
	return scalars, hists
}

// extracted is the Prometheus view of a stat name, cached per name.
type extracted struct {
	family string // tag-extracted name, the grouping and sorting key
	metric string // Prometheus metric name; "" when it cannot be exported
	labels string // formatted labels without braces: a="x",b="y"
}

func (s *Store) extract(st stat) *extracted {
	s.tagMu.Lock()
	defer s.tagMu.Unlock()
	if b := st.blk; b != nil {
		// A block's stats are cached in the block (and go with it).
		if b.tags == nil {
			b.tags = make([]extracted, b.name.set.size())
		}
		x := &b.tags[st.slot]
		if x.family == "" {
			*x = s.extractLocked(st.name, false, true)
			// The stats of a block mostly share their labels: keep one
			// copy of those of the first stat extracted.
			for i := range b.tags {
				if y := &b.tags[i]; y != x && y.family != "" {
					if y.labels == x.labels {
						x.labels = y.labels
					}
					break
				}
			}
		}
		return x
	}
	key := st.name
	if st.custom {
		key = CustomNamespace + "." + st.name
	}
	if x, ok := s.tagCache[key]; ok {
		return x
	}
	x := s.extractLocked(key, st.custom, false)
	s.tagCache[key] = &x
	return &x
}

// extractLocked computes the Prometheus view of a name; s.tagMu is held.
// With intern, family and metric names are shared with the other stats that
// have them (the same stat of every cluster).
func (s *Store) extractLocked(key string, custom, intern bool) extracted {
	name, tags := s.opts.Tags.Extract(key)
	x := extracted{family: name, metric: PrometheusName(name, custom), labels: formatLabels(tags)}
	if intern {
		x.family = s.intern(x.family)
		if x.metric != "" {
			x.metric = s.intern(x.metric)
		}
	}
	return x
}

func (s *Store) intern(v string) string {
	if w, ok := s.interned[v]; ok {
		return w
	}
	s.interned[v] = v
	return v
}

// PrometheusName turns a tag-extracted stat name into a Prometheus metric
// name as Envoy does: "envoy_" then the name with every character outside
// [a-zA-Z0-9_] replaced by "_". When custom is true the name is looked up in
// the custom stat namespace: a leading "wasmcustom." is dropped instead of
// adding "envoy_", and a name that then is empty or starts with a digit
// cannot be exported ("" is returned).
func PrometheusName(extractedName string, custom bool) string {
	if custom {
		if rest, ok := strings.CutPrefix(extractedName, CustomNamespace+"."); ok {
			n := sanitizeProm(rest)
			if n == "" || n[0] >= '0' && n[0] <= '9' {
				return ""
			}
			return n
		}
	}
	return "envoy_" + sanitizeProm(extractedName)
}

func sanitizeProm(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !isWordByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

// formatLabels prints tags as Prometheus labels: names sanitized, values
// with \, newline and " escaped.
func formatLabels(tags []Tag) string {
	var b strings.Builder
	for i, t := range tags {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(sanitizeProm(t.Name))
		b.WriteString(`="`)
		b.WriteString(escapeLabelValue(t.Value))
		b.WriteByte('"')
	}
	return b.String()
}

func escapeLabelValue(v string) string {
	if !strings.ContainsAny(v, "\\\n\"") {
		return v
	}
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(v)
}

// compareTokens orders dotted names token by token, as Envoy's symbol table
// does ("cluster.x" before "cluster_manager.y").
func compareTokens(a, b string) int {
	for {
		ai := strings.IndexByte(a, '.')
		bi := strings.IndexByte(b, '.')
		at, bt := a, b
		if ai >= 0 {
			at = a[:ai]
		}
		if bi >= 0 {
			bt = b[:bi]
		}
		if c := strings.Compare(at, bt); c != 0 {
			return c
		}
		switch {
		case ai < 0 && bi < 0:
			return 0
		case ai < 0:
			return -1
		case bi < 0:
			return 1
		}
		a, b = a[ai+1:], b[bi+1:]
	}
}
