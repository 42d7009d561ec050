package hist

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"testing"
)

func TestIndexBoundsRoundTrip(t *testing.T) {
	for _, m := range []uint{1, 4, 6, 7} {
		prev := -1
		for _, v := range []uint64{0, 1, 2, 3, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<20 + 12345, 1 << 40, math.MaxUint64 / 3, math.MaxUint64} {
			i := Index(v, m)
			lo, hi := Bounds(i, m)
			if v < lo || v > hi {
				t.Fatalf("m=%d v=%d: bucket %d is [%d, %d]", m, v, i, lo, hi)
			}
			if i < prev {
				t.Fatalf("m=%d: index not monotonic at %d", m, v)
			}
			prev = i
			// Relative width within 2^-m of the value.
			if hi > lo && float64(hi-lo+1)/float64(lo) > math.Pow(2, -float64(m))+1e-12 {
				t.Fatalf("m=%d v=%d: bucket [%d, %d] too wide", m, v, lo, hi)
			}
		}
		// Consecutive buckets tile the numbers.
		for i := 0; i < 5000; i++ {
			_, hi := Bounds(i, m)
			lo2, _ := Bounds(i+1, m)
			if lo2 != hi+1 {
				t.Fatalf("m=%d: buckets %d and %d leave a gap: %d then %d", m, i, i+1, hi, lo2)
			}
		}
	}
}

func TestQuantilesWithinError(t *testing.T) {
	m, err := MBits(DefaultError)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	h := New(m)
	vals := make([]uint64, 100000)
	for i := range vals {
		vals[i] = uint64(rng.ExpFloat64()*2e6) + 1000 // ns, around 2 ms
		h.Record(vals[i])
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 0.9999} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if rel := math.Abs(float64(got)-float64(exact)) / float64(exact); rel > DefaultError {
			t.Errorf("q=%g: %d, exact %d, error %.4f", q, got, exact, rel)
		}
	}
	if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] || h.Count() != uint64(len(vals)) {
		t.Errorf("min %d max %d count %d", h.Min(), h.Max(), h.Count())
	}
}

func TestMerge(t *testing.T) {
	a, b, all := New(6), New(6), New(6)
	for i := uint64(0); i < 10000; i++ {
		v := i * i
		all.Record(v)
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if a.Count() != all.Count() || a.Sum() != all.Sum() || a.Min() != all.Min() || a.Max() != all.Max() {
		t.Fatalf("merged %d/%g/%d/%d, want %d/%g/%d/%d", a.Count(), a.Sum(), a.Min(), a.Max(), all.Count(), all.Sum(), all.Min(), all.Max())
	}
	ab, ob := a.Buckets(), all.Buckets()
	if len(ab) != len(ob) {
		t.Fatalf("%d buckets, want %d", len(ab), len(ob))
	}
	for i := range ab {
		if ab[i] != ob[i] {
			t.Fatalf("bucket %d: %+v, want %+v", i, ab[i], ob[i])
		}
	}
	if err := a.Merge(New(5)); err == nil {
		t.Fatal("merged histograms of different precision")
	}
	empty := New(6)
	if empty.Quantile(0.5) != 0 || empty.Min() != 0 || empty.Mean() != 0 {
		t.Fatal("empty histogram")
	}
	if _, err := MBits(0); err == nil {
		t.Fatal("MBits(0)")
	}
	if m, _ := MBits(0.01); m != 6 {
		t.Fatalf("MBits(0.01) = %d", m)
	}
}

// An exact histogram answers exactly while its values are few, merges
// exactly, and becomes an ordinary one past its limit.
func TestExact(t *testing.T) {
	a, b := NewExact(6, 3), NewExact(6, 3)
	a.RecordN(65536, 3)
	a.Record(66048) // same log-linear bucket as 65536
	b.Record(4096)
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	want := []Bucket{{4096, 4096, 1}, {65536, 65536, 3}, {66048, 66048, 1}}
	if got := a.Buckets(); !a.Exact() || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("exact buckets %v, want %v", got, want)
	}
	if a.Quantile(0.5) != 65536 || a.Quantile(1) != 66048 || a.Quantile(0) != 4096 {
		t.Errorf("quantiles %d %d %d", a.Quantile(0), a.Quantile(0.5), a.Quantile(1))
	}
	if a.CountAtMost(65536) != 4 || a.CountAtMost(65535) != 1 {
		t.Errorf("CountAtMost(65536) = %d, (65535) = %d", a.CountAtMost(65536), a.CountAtMost(65535))
	}
	a.Record(512)
	if a.Exact() {
		t.Fatal("still exact with 4 distinct values, limit 3")
	}
	if a.Count() != 6 || len(a.Buckets()) != 3 || a.CountAtMost(65536) != 2 {
		t.Errorf("past the limit: %d values, buckets %v", a.Count(), a.Buckets())
	}
	c, d := NewExact(6, 3), New(6)
	c.Record(1)
	d.Record(2)
	if c.Merge(d); c.Exact() {
		t.Error("exact after merging an inexact histogram")
	}
}

func BenchmarkRecord(b *testing.B) {
	h := New(6)
	v := uint64(12345)
	for i := 0; i < b.N; i++ {
		h.Record(v)
		v = v*6364136223846793005 + 1442695040888963407>>40&0xfffffff
	}
}
