package counters

import (
	"errors"
	"math"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rewindtrace/rewind/snapshot"
)

// tapped is what a test tap saw of one source: each sample's time, its
// values (copied) and whether it was fresh.
type tapped struct {
	mu     sync.Mutex
	ts     map[string][]uint64
	vals   map[string][][]uint64
	fresh  map[string][]int // indexes of the fresh samples
	fields map[string][]snapshot.SeriesField
}

func newTapped() *tapped {
	return &tapped{ts: map[string][]uint64{}, vals: map[string][][]uint64{}, fresh: map[string][]int{}, fields: map[string][]snapshot.SeriesField{}}
}

func (tp *tapped) fn(s Sample) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if s.Fresh {
		tp.fresh[s.Source] = append(tp.fresh[s.Source], len(tp.ts[s.Source]))
	}
	tp.ts[s.Source] = append(tp.ts[s.Source], uint64(s.TS))
	tp.vals[s.Source] = append(tp.vals[s.Source], slices.Clone(s.Values))
	tp.fields[s.Source] = s.Fields
	if len(s.Values) != len(s.Fields) {
		panic("a sample's values and fields differ in length")
	}
}

func (tp *tapped) count(source string) int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return len(tp.ts[source])
}

// A tap sees every sample the rings keep, the same times and values, in
// order; the first of a source, and the first after a Start that begins
// its grid again, are fresh.
func TestTapSeesEverySample(t *testing.T) {
	s, err := New(Config{Sources: []string{"memory@200", "load@100"}, Keep: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp := newTapped()
	remove, err := s.Tap(tp.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	run := func(n int) {
		t.Helper()
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "samples", func() bool { return samples(s, "memory") >= n && samples(s, "load") >= n })
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	run(20)
	// Longer than a period: Start begins each source's grid afresh.
	time.Sleep(30 * time.Millisecond)
	first := map[string]int{"memory": tp.count("memory"), "load": tp.count("load")}
	run(first["memory"] + 20)
	for src, sers := range bySource(s) {
		var ts []uint64
		var vals [][]uint64
		for _, ser := range sers {
			ts = append(ts, ser.TS...)
			for i := range ser.TS {
				row := make([]uint64, len(ser.Fields))
				for f := range row {
					row[f] = ser.Values[f][i]
				}
				vals = append(vals, row)
			}
		}
		tp.mu.Lock()
		if !slices.Equal(ts, tp.ts[src]) {
			t.Errorf("%s: the tap saw %d samples, the rings hold %d, or at other times", src, len(tp.ts[src]), len(ts))
		}
		for i := range min(len(vals), len(tp.vals[src])) {
			if !slices.Equal(vals[i], tp.vals[src][i]) {
				t.Errorf("%s: sample %d: the tap saw other values than the ring holds", src, i)
				break
			}
		}
		// Fresh: the first sample, the first after Start, and the first
		// of each segment after the first (its fields changed).
		want := []int{0, first[src]}
		n := 0
		for _, ser := range sers[:len(sers)-1] {
			n += len(ser.TS)
			want = append(want, n)
		}
		slices.Sort(want)
		want = slices.Compact(want)
		if !slices.Equal(tp.fresh[src], want) {
			t.Errorf("%s: fresh samples %v, want %v", src, tp.fresh[src], want)
		}
		if last := sers[len(sers)-1]; !slices.EqualFunc(tp.fields[src], last.Fields, fieldEqual) {
			t.Errorf("%s: the tap's fields are not the ring's", src)
		}
		tp.mu.Unlock()
	}
}

func fieldEqual(a, b snapshot.SeriesField) bool {
	return key(a) == key(b) && a.Unit == b.Unit && a.Kind == b.Kind
}

// Once remove returns the tap is called no more; the other tap goes on.
// Removing twice does nothing. Values read through Sample.Value follow
// Div: load averages are fractions.
func TestTapRemove(t *testing.T) {
	s, err := start(Config{Sources: []string{"load@500"}, Keep: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := newTapped(), newTapped()
	var load1 []float64
	removeA, err := s.Tap(a.fn)
	if err != nil {
		t.Fatal(err)
	}
	removeB, err := s.Tap(func(smp Sample) {
		b.fn(smp)
		for f, fl := range smp.Fields {
			if fl.Name == "load1" {
				b.mu.Lock()
				load1 = append(load1, smp.Value(f))
				b.mu.Unlock()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer removeB()
	waitFor(t, "tapped samples", func() bool { return a.count("load") >= 5 })
	removeA()
	removeA()
	n := a.count("load")
	m := b.count("load")
	waitFor(t, "samples after the removal", func() bool { return b.count("load") >= m+10 })
	if a.count("load") != n {
		t.Errorf("a removed tap was called %d times more", a.count("load")-n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(load1) != len(b.ts["load"]) {
		t.Errorf("%d load1 values for %d samples", len(load1), len(b.ts["load"]))
	}
	for _, v := range load1 {
		if v < 0 || math.Abs(v*100-math.Round(v*100)) > 1e-6 {
			t.Errorf("load1 %v: not a load average with two decimals", v)
			break
		}
	}
}

// Taps come and go while sampling, concurrently, and after Close Tap says
// so: under -race nothing races and nothing deadlocks.
func TestTapConcurrent(t *testing.T) {
	s, err := start(Config{Sources: []string{"load@1000", "memory@1000"}, Keep: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				tp := newTapped()
				remove, err := s.Tap(tp.fn)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond)
				remove()
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, err := s.Tap(func(Sample) {}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Tap after Close: %v", err)
	}
	if _, err := s.Tap(nil); err == nil {
		t.Errorf("Tap(nil): no error")
	}
}
