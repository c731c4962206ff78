package stats

import (
	"slices"
	"strings"
)

// stat is one row of an output: a counter or gauge value, or a histogram.
type stat struct {
	name   string // as shown
	value  uint64
	hist   *Histogram
	blk    *Block // a block's stat, at slot (counters then gauges)
	slot   int32
	kind   Kind
	custom bool // from a custom source: tags see CustomNamespace+"."+name
	used   bool
}

// snapshot reads the store and its sources once: scalars (counters and
// gauges) and histograms, each kept by the options and sorted by name. The
// store's stats come first when a source repeats a name.
func (s *Store) snapshot(o WriteOptions) (scalars, hists []stat) {
	s.mu.RLock()
	n := len(s.counters)
	for _, b := range s.blocks {
		n += len(b.counters) + len(b.extraC)
	}
	counters := make([]stat, 0, n)
	for _, c := range s.counters {
		counters = append(counters, stat{name: c.n.prefix, kind: KindCounter, value: c.Value(), used: c.Used()})
	}
	n = len(s.gauges)
	for _, b := range s.blocks {
		n += len(b.gauges) + len(b.extraG)
	}
	gauges := make([]stat, 0, n)
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
	scalars = make([]stat, 0, len(counters)+len(gauges))
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

// familyNames are a tag-extracted name and its Prometheus name, shared by
// the cached views of the blocks' stats (the same stat of every cluster).
type familyNames struct{ family, metric string }

// blockTags is the cached Prometheus view of one stat of a block.
type blockTags struct {
	names  *familyNames
	labels string
}

func (s *Store) extract(st stat) extracted {
	s.tagMu.Lock()
	defer s.tagMu.Unlock()
	if b := st.blk; b != nil {
		// A block's stats are cached in the block (and go with it).
		if b.tags == nil {
			b.tags = make([]blockTags, b.name.set.size())
		}
		t := &b.tags[st.slot]
		if t.names == nil {
			x := s.extractLocked(st.name, false)
			t.names = s.famNames[x.family]
			if t.names == nil {
				t.names = &familyNames{family: x.family, metric: x.metric}
				s.famNames[x.family] = t.names
			}
			t.labels = x.labels
			// The stats of a block mostly share their labels: keep one
			// copy of those of the first stat extracted.
			for i := range b.tags {
				if u := &b.tags[i]; u != t && u.names != nil {
					if u.labels == t.labels {
						t.labels = u.labels
					}
					break
				}
			}
		}
		return extracted{family: t.names.family, metric: t.names.metric, labels: t.labels}
	}
	key := st.name
	if st.custom {
		key = CustomNamespace + "." + st.name
	}
	if x, ok := s.tagCache[key]; ok {
		return *x
	}
	x := s.extractLocked(key, st.custom)
	s.tagCache[key] = &x
	return x
}

// extractLocked computes the Prometheus view of a name; s.tagMu is held.
func (s *Store) extractLocked(key string, custom bool) extracted {
	name, tags := s.opts.Tags.Extract(key)
	return extracted{family: name, metric: PrometheusName(name, custom), labels: formatLabels(tags)}
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
