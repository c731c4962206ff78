package stats

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

// quantileLabels are the labels Envoy prints for Quantiles().
func quantileLabels() []string {
	return []string{"0", "25", "50", "75", "90", "95", "99", "99.5", "99.9", "100"}
}

// WriteText writes the admin /stats text format: "name: value" lines for
// counters and gauges sorted by name, then one line per histogram:
//
//	cluster.backend.upstream_rq_time: P0(nan,1) P25(nan,1.025) ... P100(nan,1.1)
//
// with the last flush interval's quantile first and the cumulative one
// second, "No recorded values" for an unused histogram, or
// "B0.5(interval,cumulative) B1(...)" buckets with histogram_buckets.
func (s *Store) WriteText(w io.Writer, o WriteOptions) error {
	scalars, hists := s.snapshot(o)
	bw := bufio.NewWriter(w)
	for _, st := range scalars {
		bw.WriteString(st.name)
		bw.WriteString(": ")
		bw.WriteString(strconv.FormatUint(st.value, 10))
		bw.WriteByte('\n')
	}
	for _, st := range hists {
		bw.WriteString(st.name)
		bw.WriteString(": ")
		h := st.hist
		if !h.Used() {
			bw.WriteString("No recorded values\n")
			continue
		}
		in, cu := h.Interval(), h.Cumulative()
		switch o.Histograms {
		case HistogramsCumulative, HistogramsDisjoint:
			ib, cb := in.Buckets, cu.Buckets
			if o.Histograms == HistogramsDisjoint {
				ib, cb = in.Disjoint(), cu.Disjoint()
			}
			for i, b := range cu.Bounds {
				if i > 0 {
					bw.WriteByte(' ')
				}
				fmt.Fprintf(bw, "B%s(%d,%d)", strconv.FormatFloat(b, 'g', 6, 64), ib[i], cb[i])
			}
		default:
			for i, l := range quantileLabels() {
				if i > 0 {
					bw.WriteByte(' ')
				}
				fmt.Fprintf(bw, "P%s(%s,%s)", l, formatFloat(in.Quantiles[i]), formatFloat(cu.Quantiles[i]))
			}
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// WriteJSON writes the admin /stats?format=json shape:
//
//	{"stats":[{"name":"a","value":1},...,{"histograms":{"supported_quantiles":[0,25,...],
//	  "computed_quantiles":[{"name":"h","values":[{"cumulative":1,"interval":null},...]}]}}]}
//
// With histogram_buckets=cumulative or disjoint the histograms element is a
// list of {"name","buckets":[{"upper_bound","interval","cumulative"}]}. The
// histograms element is left out when no histogram is listed.
func (s *Store) WriteJSON(w io.Writer, o WriteOptions) error {
	scalars, hists := s.snapshot(o)
	bw := bufio.NewWriter(w)
	bw.WriteString(`{"stats":[`)
	for i, st := range scalars {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString(`{"name":`)
		bw.WriteString(jsonString(st.name))
		bw.WriteString(`,"value":`)
		bw.WriteString(strconv.FormatUint(st.value, 10))
		bw.WriteByte('}')
	}
	if len(hists) > 0 {
		if len(scalars) > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString(`{"histograms":`)
		switch o.Histograms {
		case HistogramsCumulative, HistogramsDisjoint:
			bw.WriteByte('[')
			for i, st := range hists {
				if i > 0 {
					bw.WriteByte(',')
				}
				in, cu := st.hist.Interval(), st.hist.Cumulative()
				ib, cb := in.Buckets, cu.Buckets
				if o.Histograms == HistogramsDisjoint {
					ib, cb = in.Disjoint(), cu.Disjoint()
				}
				bw.WriteString(`{"name":`)
				bw.WriteString(jsonString(st.name))
				bw.WriteString(`,"buckets":[`)
				for j, b := range cu.Bounds {
					if j > 0 {
						bw.WriteByte(',')
					}
					fmt.Fprintf(bw, `{"upper_bound":%s,"interval":%d,"cumulative":%d}`, jsonFloat(b), ib[j], cb[j])
				}
				bw.WriteString(`]}`)
			}
			bw.WriteByte(']')
		default:
			bw.WriteString(`{"supported_quantiles":[`)
			for i, l := range quantileLabels() {
				if i > 0 {
					bw.WriteByte(',')
				}
				bw.WriteString(l)
			}
			bw.WriteString(`],"computed_quantiles":[`)
			for i, st := range hists {
				if i > 0 {
					bw.WriteByte(',')
				}
				in, cu := st.hist.Interval(), st.hist.Cumulative()
				bw.WriteString(`{"name":`)
				bw.WriteString(jsonString(st.name))
				bw.WriteString(`,"values":[`)
				for j := range cu.Quantiles {
					if j > 0 {
						bw.WriteByte(',')
					}
					fmt.Fprintf(bw, `{"cumulative":%s,"interval":%s}`, jsonFloat(cu.Quantiles[j]), jsonFloat(in.Quantiles[j]))
				}
				bw.WriteString(`]}`)
			}
			bw.WriteString(`]}`)
		}
		bw.WriteByte('}')
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

// WritePrometheus writes the /stats/prometheus text exposition format with
// Envoy's conversion: names tag-extracted and prefixed "envoy_", labels from
// the tags, counters then gauges then histograms, families sorted by their
// tag-extracted name and the members of a family by their full stat name:
//
//	# TYPE envoy_cluster_upstream_rq_total counter
//	envoy_cluster_upstream_rq_total{envoy_cluster_name="backend"} 7
//
// Histograms are classic histograms over Envoy's buckets (_bucket with le,
// _sum, _count), or summaries of the last flush interval with
// histogram_buckets=summary. Filter and usedonly apply to the full stat name.
func (s *Store) WritePrometheus(w io.Writer, o WriteOptions) error {
	if o.Histograms == HistogramsDisjoint {
		return fmt.Errorf("stats: histogram_buckets=disjoint is not supported for prometheus")
	}
	scalars, hists := s.snapshot(o)
	bw := bufio.NewWriter(w)

	counters := make([]stat, 0, len(scalars))
	var gauges []stat
	for _, st := range scalars {
		if st.kind == KindCounter {
			counters = append(counters, st)
		} else {
			gauges = append(gauges, st)
		}
	}
	for _, group := range [][]stat{counters, gauges} {
		for _, f := range s.families(group) {
			fmt.Fprintf(bw, "# TYPE %s %s\n", f.metric, f.kind)
			for _, m := range f.members {
				fmt.Fprintf(bw, "%s{%s} %d\n", f.metric, m.labels, m.st.value)
			}
		}
	}
	for _, f := range s.families(hists) {
		summary := o.Histograms == HistogramsSummary
		if summary {
			fmt.Fprintf(bw, "# TYPE %s summary\n", f.metric)
		} else {
			fmt.Fprintf(bw, "# TYPE %s histogram\n", f.metric)
		}
		for _, m := range f.members {
			labels := m.labels
			sep := ""
			if labels != "" {
				sep = ","
			}
			if summary {
				in := m.st.hist.Interval()
				for i, q := range Quantiles() {
					fmt.Fprintf(bw, "%s{%s%squantile=\"%s\"} %s\n", f.metric, labels, sep, formatFloat(q), formatG32(in.Quantiles[i]))
				}
				fmt.Fprintf(bw, "%s_sum{%s} %s\n", f.metric, labels, formatG32(in.Sum))
				fmt.Fprintf(bw, "%s_count{%s} %d\n", f.metric, labels, in.Count)
				continue
			}
			cu := m.st.hist.Cumulative()
			for i, b := range cu.Bounds {
				fmt.Fprintf(bw, "%s_bucket{%s%sle=\"%s\"} %d\n", f.metric, labels, sep, formatG32(b), cu.Buckets[i])
			}
			fmt.Fprintf(bw, "%s_bucket{%s%sle=\"+Inf\"} %d\n", f.metric, labels, sep, cu.Count)
			fmt.Fprintf(bw, "%s_sum{%s} %s\n", f.metric, labels, formatG32(cu.Sum))
			fmt.Fprintf(bw, "%s_count{%s} %d\n", f.metric, labels, cu.Count)
		}
	}
	return bw.Flush()
}

type member struct {
	st     stat
	labels string
}

type family struct {
	metric  string
	kind    Kind
	key     string // tag-extracted name of the first member
	members []member
}

// families groups stats of one kind by Prometheus metric name, sorted as
// Envoy sorts them. Stats that cannot be exported are dropped.
func (s *Store) families(stats []stat) []*family {
	byMetric := map[string]*family{}
	var out []*family
	for _, st := range stats {
		x := s.extract(st)
		if x.metric == "" {
			continue
		}
		f := byMetric[x.metric]
		if f == nil {
			f = &family{metric: x.metric, kind: st.kind, key: x.family}
			byMetric[x.metric] = f
			out = append(out, f)
		} else if compareTokens(x.family, f.key) < 0 {
			f.key = x.family
		}
		f.members = append(f.members, member{st, x.labels})
	}
	slices.SortFunc(out, func(a, b *family) int {
		if c := compareTokens(a.key, b.key); c != 0 {
			return c
		}
		return compareStrings(a.metric, b.metric)
	})
	for _, f := range out {
		slices.SortFunc(f.members, func(a, b member) int { return compareTokens(a.st.name, b.st.name) })
	}
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// formatFloat prints a float as the shortest text that reads back to it,
// fixed-point between 1e-4 and 1e16 and "nan" for NaN, like the {} format
// Envoy uses in its text output.
func formatFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	case v == 0:
		return "0"
	}
	if a := math.Abs(v); a < 1e-4 || a >= 1e16 {
		return strconv.FormatFloat(v, 'e', -1, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// formatG32 is printf's %.32g, which Envoy's Prometheus output uses for bucket
// bounds, sums and quantile values.
func formatG32(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return strconv.FormatFloat(v, 'g', 32, 64)
}

// jsonString quotes s for JSON.
func jsonString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// jsonFloat prints a float for JSON, null for NaN and infinities.
func jsonFloat(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "null"
	}
	return formatFloat(v)
}
