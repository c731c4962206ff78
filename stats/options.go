package stats

import (
	"fmt"
	"net/url"
	"regexp"
)

// Type selects which stats an output lists (the admin ?type= parameter).
type Type uint8

// The stat types of ?type=.
const (
	TypeAll Type = iota
	TypeCounters
	TypeGauges
	TypeHistograms
)

// HistogramMode selects how histograms are printed (?histogram_buckets=).
type HistogramMode uint8

// The histogram modes.
const (
	// HistogramsDefault: quantiles in text and JSON, classic buckets in
	// Prometheus (Envoy's default, "unset").
	HistogramsDefault HistogramMode = iota
	// HistogramsCumulative: buckets with counts of samples <= bound.
	HistogramsCumulative
	// HistogramsDisjoint: buckets with counts of samples in each bucket
	// (text and JSON only).
	HistogramsDisjoint
	// HistogramsSummary: quantiles everywhere; in Prometheus a summary of
	// the last flush interval.
	HistogramsSummary
)

// WriteOptions filter and shape the outputs. The zero value lists everything
// in Envoy's default shape.
type WriteOptions struct {
	// Filter keeps the stats whose name it matches anywhere (RE2, as
	// Envoy's ?filter=). Custom-source stats are matched on the name shown.
	Filter *regexp.Regexp
	// UsedOnly keeps the stats that were ever written (?usedonly).
	UsedOnly bool
	// Type keeps one kind of stat (?type=).
	Type Type
	// Histograms chooses the histogram rendering (?histogram_buckets=).
	Histograms HistogramMode
}

// ParseQuery reads the admin /stats query parameters Envoy defines:
// filter=<regex>, usedonly, type=All|Counters|Gauges|Histograms and
// histogram_buckets=cumulative|disjoint|summary|none. Other parameters
// (format, ...) are the caller's.
func ParseQuery(q url.Values) (WriteOptions, error) {
	var o WriteOptions
	if q.Has("usedonly") {
		o.UsedOnly = true
	}
	if f := q.Get("filter"); f != "" {
		re, err := regexp.Compile(f)
		if err != nil {
			return o, fmt.Errorf("stats: invalid re2 regex in filter=%q: %w", f, err)
		}
		o.Filter = re
	}
	switch t := q.Get("type"); t {
	case "", "All":
	case "Counters":
		o.Type = TypeCounters
	case "Gauges":
		o.Type = TypeGauges
	case "Histograms":
		o.Type = TypeHistograms
	default:
		return o, fmt.Errorf("stats: invalid type=%q: want All, Counters, Gauges or Histograms", t)
	}
	switch h := q.Get("histogram_buckets"); h {
	case "", "none":
	case "cumulative":
		o.Histograms = HistogramsCumulative
	case "disjoint":
		o.Histograms = HistogramsDisjoint
	case "summary":
		o.Histograms = HistogramsSummary
	default:
		return o, fmt.Errorf("stats: invalid histogram_buckets=%q: want cumulative, disjoint, summary or none", h)
	}
	return o, nil
}

func (o WriteOptions) wants(k Kind) bool {
	switch o.Type {
	case TypeCounters:
		return k == KindCounter
	case TypeGauges:
		return k == KindGauge
	case TypeHistograms:
		return k == KindHistogram
	}
	return true
}

func (o WriteOptions) keep(name string, used bool) bool {
	if o.UsedOnly && !used {
		return false
	}
	return o.Filter == nil || o.Filter.MatchString(name)
}
