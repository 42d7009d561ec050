// Package hist is a log-linear histogram (HDR / H2 style): values below
// 2^(m+1) have buckets of width one; above that, each power of two is cut
// into 2^m buckets, so a value read back as its bucket's midpoint is off by
// at most 2^-(m+1) of itself. Histograms of the same precision merge by
// adding counts. Buckets are counts per bucket, not cumulative; exports
// accumulate them.
package hist

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// DefaultError is the relative error the default precision guarantees.
const DefaultError = 0.01

// MBits returns the sub-bucket bits m that keep the relative error of a
// value read back at or under maxErr (2^-(m+1) <= maxErr).
func MBits(maxErr float64) (int, error) {
	if !(maxErr > 0 && maxErr < 0.5) {
		return 0, fmt.Errorf("relative error %g: want a value in (0, 0.5)", maxErr)
	}
	m := int(math.Ceil(math.Log2(1/maxErr))) - 1
	return max(m, 1), nil
}

// Histogram counts uint64 values. The zero value is unusable; use New.
// A Histogram is not safe for concurrent use.
type Histogram struct {
	m      uint
	offset int      // index of counts[0]
	counts []uint64 // buckets offset .. offset+len(counts)-1
	count  uint64
	sum    float64 // values can overflow a uint64 sum; a float keeps 53 bits
	min    uint64
	max    uint64
	// exact counts each distinct value while there are at most exactLimit
	// of them (see NewExact); nil otherwise.
	exact      map[uint64]uint64
	exactLimit int
}

// New returns an empty histogram with 2^m sub-buckets per power of two.
func New(m int) *Histogram {
	return &Histogram{m: uint(m), min: math.MaxUint64}
}

// NewExact returns a histogram that also counts each distinct value exactly
// while there are at most limit of them: quantiles, buckets and counts are
// then exact. Sizes of block requests, which are few whole sectors, are
// such values. Past limit distinct values it is an ordinary histogram.
func NewExact(m, limit int) *Histogram {
	h := New(m)
	h.exact, h.exactLimit = map[uint64]uint64{}, limit
	return h
}

// Exact reports whether the histogram still counts values exactly.
func (h *Histogram) Exact() bool { return h.exact != nil }

// M is the histogram's sub-bucket bits.
func (h *Histogram) M() int { return int(h.m) }

// Index returns the bucket of v for m sub-bucket bits.
func Index(v uint64, m uint) int {
	if v < 2<<m {
		return int(v)
	}
	g := uint(bits.Len64(v)) - m - 1 // >= 1: the power of two above the linear range
	return int((uint64(g)+1)<<m + v>>g - 1<<m)
}

// Bounds returns the smallest and largest value of bucket i.
func Bounds(i int, m uint) (lo, hi uint64) {
	if i < 2<<m {
		return uint64(i), uint64(i)
	}
	g := uint(i>>m) - 1
	sub := uint64(i) - uint64(g+1)<<m + 1<<m
	lo = sub << g
	return lo, lo + (1 << g) - 1
}

// Record counts one value.
func (h *Histogram) Record(v uint64) {
	i := Index(v, h.m) - h.offset
	if uint(i) >= uint(len(h.counts)) || h.exact != nil {
		h.RecordN(v, 1)
		return
	}
	h.counts[i]++
	h.count++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// RecordN counts n occurrences of v.
func (h *Histogram) RecordN(v, n uint64) {
	i := Index(v, h.m)
	if i < h.offset || i >= h.offset+len(h.counts) {
		h.grow(i)
	}
	h.counts[i-h.offset] += n
	h.count += n
	h.sum += float64(v) * float64(n)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
	if h.exact != nil {
		h.exact[v] += n
		if len(h.exact) > h.exactLimit {
			h.exact = nil
		}
	}
}

// grow widens the bucket range to include bucket i.
func (h *Histogram) grow(i int) {
	if len(h.counts) == 0 {
		h.offset = i
		h.counts = make([]uint64, 1, 16)
		return
	}
	lo, hi := min(h.offset, i), max(h.offset+len(h.counts)-1, i)
	n := hi - lo + 1
	if lo == h.offset && n <= cap(h.counts) {
		h.counts = h.counts[:n]
		return
	}
	c := make([]uint64, n, n+n/2)
	copy(c[h.offset-lo:], h.counts)
	h.offset, h.counts = lo, c
}

// Merge adds o's counts to h. Both must have the same precision.
func (h *Histogram) Merge(o *Histogram) error {
	if o.m != h.m {
		return fmt.Errorf("merge histograms of %d and %d sub-bucket bits", h.m, o.m)
	}
	if o.count == 0 {
		return nil
	}
	h.grow(o.offset)
	h.grow(o.offset + len(o.counts) - 1)
	for i, c := range o.counts {
		h.counts[o.offset+i-h.offset] += c
	}
	h.count += o.count
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
	if h.exact != nil && o.exact != nil {
		for v, n := range o.exact {
			h.exact[v] += n
		}
		if len(h.exact) > h.exactLimit {
			h.exact = nil
		}
	} else {
		h.exact = nil
	}
	return nil
}

// Count, Sum, Min and Max describe the values recorded.
func (h *Histogram) Count() uint64 { return h.count }
func (h *Histogram) Sum() float64  { return h.sum }

func (h *Histogram) Min() uint64 {
	if h.count == 0 {
		return 0
	}
	return h.min
}

func (h *Histogram) Max() uint64 { return h.max }

// Mean is the average value, or 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.count == 0 {
		return 0
	}
	return h.sum / float64(h.count)
}

// Quantile returns the value at quantile q (0..1): the midpoint of the
// bucket that holds the ceil(q*count)-th value, kept within [Min, Max]; or
// that value itself while the histogram is exact.
func (h *Histogram) Quantile(q float64) uint64 {
	if h.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	rank = min(max(rank, 1), h.count)
	var seen uint64
	if h.exact != nil {
		for _, b := range h.Buckets() {
			if seen += b.Count; seen >= rank {
				return b.Lo
			}
		}
	}
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := Bounds(h.offset+i, h.m)
			mid := lo + (hi-lo)/2
			return min(max(mid, h.min), h.max)
		}
	}
	return h.max
}

// Bucket is one non-empty bucket.
type Bucket struct {
	Lo, Hi uint64 // values lo..hi inclusive
	Count  uint64
}

// Buckets returns the non-empty buckets in order: one per distinct value
// while the histogram is exact.
func (h *Histogram) Buckets() []Bucket {
	var out []Bucket
	if h.exact != nil {
		for v, n := range h.exact {
			out = append(out, Bucket{v, v, n})
		}
		slices.SortFunc(out, func(a, b Bucket) int { return cmp.Compare(a.Lo, b.Lo) })
		return out
	}
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		lo, hi := Bounds(h.offset+i, h.m)
		out = append(out, Bucket{lo, hi, c})
	}
	return out
}

// CountAtMost returns how many values are at most v, counting whole
// buckets whose upper bound is at most v: exact for bucket-aligned v and
// while the histogram is exact.
func (h *Histogram) CountAtMost(v uint64) uint64 {
	var n uint64
	if h.exact != nil {
		for x, c := range h.exact {
			if x <= v {
				n += c
			}
		}
		return n
	}
	for i, c := range h.counts {
		if _, hi := Bounds(h.offset+i, h.m); hi > v {
			break
		}
		n += c
	}
	return n
}
