package stats

import (
	"math"
	"slices"
	"testing"
)

func TestBinOf(t *testing.T) {
	cases := []struct {
		v    uint64
		e    int
		m    uint64
		l, w float64
	}{
		{1, 0, 10, 1, 0.1},
		{9, 0, 90, 9, 0.1},
		{10, 1, 10, 10, 1},
		{11, 1, 11, 11, 1},
		{99, 1, 99, 99, 1},
		{100, 2, 10, 100, 10},
		{109, 2, 10, 100, 10},
		{250, 2, 25, 250, 10},
		{999, 2, 99, 990, 10},
		{1000, 3, 10, 1000, 100},
		{3600000, 6, 36, 3600000, 100000},
		{1e19 - 1, 18, 99, 99e17, 1e17},
		{1e19, 19, 10, 1e19, 1e18},
		{math.MaxUint64, 19, 18, 18e18, 1e18},
	}
	for _, tc := range cases {
		e, m := binOf(tc.v)
		l, w := binBounds(e, m)
		if e != tc.e || m != tc.m || l != tc.l || w != tc.w {
			t.Errorf("binOf(%d) = %d,%d [%v+%v), want %d,%d [%v+%v)", tc.v, e, m, l, w, tc.e, tc.m, tc.l, tc.w)
		}
	}
	// Every power of ten and its neighbours lands in the right decade.
	for e := 1; e < 20; e++ {
		p := pow10(e)
		if got, _ := binOf(p); got != e {
			t.Errorf("binOf(10^%d) decade %d", e, got)
		}
		if got, _ := binOf(p - 1); got != e-1 {
			t.Errorf("binOf(10^%d-1) decade %d", e, got)
		}
	}
}

// The expected quantiles are Envoy's own output for the same samples
// (admin /stats lines collected from running Envoys).
func TestQuantilesLikeEnvoy(t *testing.T) {
	cases := []struct {
		samples []uint64
		want    []float64 // at Quantiles()
	}{
		// "P0(nan,11) P25(nan,11.25) P50(nan,11.5) ... P100(nan,12)"
		{repeat(11, 1000), []float64{11, 11.25, 11.5, 11.75, 11.9, 11.95, 11.99, 11.995, 11.999, 12}},
		// "P0(nan,3) P25(nan,3.025) P50(nan,3.05) ... P100(nan,3.1)"
		{repeat(3, 100), []float64{3, 3.025, 3.05, 3.075, 3.09, 3.095, 3.099, 3.0995, 3.0999, 3.1}},
		// "P0(nan,0) ... P100(nan,0)"
		{repeat(0, 10), []float64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tc := range cases {
		h := NewHistogram("h", Milliseconds, nil)
		for _, v := range tc.samples {
			h.Record(v)
		}
		got := h.Cumulative().Quantiles
		for i := range got {
			if math.Abs(got[i]-tc.want[i]) > 1e-9 {
				t.Errorf("samples %d×%d: q%v = %v, want %v", len(tc.samples), tc.samples[0], Quantiles()[i], got[i], tc.want[i])
			}
		}
	}
}

func repeat(v uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestQuantilesSpread(t *testing.T) {
	h := NewHistogram("h", Unspecified, nil)
	for v := uint64(1); v <= 100; v++ {
		h.Record(v)
	}
	q := h.Cumulative().Quantiles
	if q[0] != 1 || q[len(q)-1] != 110 {
		t.Errorf("P0=%v P100=%v, want 1 and 110 (bin [100,110))", q[0], q[len(q)-1])
	}
	if q[2] < 49 || q[2] > 52 {
		t.Errorf("P50=%v, want about 50", q[2])
	}
	if !slices.IsSorted(q) {
		t.Errorf("quantiles not monotonic: %v", q)
	}
}

func TestHistogramBucketsExact(t *testing.T) {
	h := NewHistogram("h", Milliseconds, nil)
	for _, v := range []uint64{0, 1, 1, 5, 6, 250, 251, 3600000, 3600001} {
		h.Record(v)
	}
	s := h.Cumulative()
	if s.Count != 9 || s.Sum != 0+1+1+5+6+250+251+3600000+3600001 {
		t.Fatalf("count %d sum %v", s.Count, s.Sum)
	}
	want := map[float64]uint64{0.5: 1, 1: 3, 5: 4, 10: 5, 250: 6, 500: 7, 3600000: 8}
	for i, b := range s.Bounds {
		if w, ok := want[b]; ok && s.Buckets[i] != w {
			t.Errorf("le=%v: %d, want %d", b, s.Buckets[i], w)
		}
	}
	if d := s.Disjoint(); d[0] != 1 || d[1] != 2 || d[2] != 1 {
		t.Errorf("disjoint %v", d)
	}
}

func TestHistogramCustomBuckets(t *testing.T) {
	h := NewHistogram("h", Bytes, []float64{100, 10, 10})
	h.Record(10)
	h.Record(11)
	h.Record(1000)
	s := h.Cumulative()
	if !slices.Equal(s.Bounds, []float64{10, 100}) || !slices.Equal(s.Buckets, []uint64{1, 2}) || s.Count != 3 {
		t.Errorf("bounds %v buckets %v count %d", s.Bounds, s.Buckets, s.Count)
	}
}

func TestHistogramInterval(t *testing.T) {
	h := NewHistogram("h", Milliseconds, nil)
	if in := h.Interval(); in.Count != 0 || !math.IsNaN(in.Quantiles[0]) {
		t.Fatalf("interval before any flush: %+v", in)
	}
	h.Record(10)
	h.Record(20)
	h.Flush()
	if in := h.Interval(); in.Count != 2 || in.Sum != 30 || in.Quantiles[0] != 10 {
		t.Fatalf("first interval: %+v", in)
	}
	h.Record(500)
	h.Flush()
	in, cu := h.Interval(), h.Cumulative()
	if in.Count != 1 || in.Sum != 500 || in.Quantiles[0] != 500 {
		t.Errorf("second interval: %+v", in)
	}
	if cu.Count != 3 || cu.Sum != 530 {
		t.Errorf("cumulative: %+v", cu)
	}
	h.Flush()
	if in := h.Interval(); in.Count != 0 || !math.IsNaN(in.Quantiles[5]) {
		t.Errorf("empty interval: %+v", in)
	}
}
