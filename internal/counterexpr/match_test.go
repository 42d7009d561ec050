package counterexpr

import (
	"strings"
	"testing"
	"time"

	"github.com/rewindtrace/rewind/record/counters"
	"github.com/rewindtrace/rewind/snapshot"
)

func mustParse(t *testing.T, s string) *Expr {
	t.Helper()
	e, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// feeder makes samples of one source, 10 ms apart.
type feeder struct {
	source string
	fields []snapshot.SeriesField
	ts     int64
	fresh  bool
}

func (f *feeder) next(vals ...uint64) counters.Sample {
	f.ts += int64(10 * time.Millisecond)
	s := counters.Sample{Source: f.source, RateHz: 100, TS: f.ts, Fields: f.fields, Values: vals, Fresh: f.fresh}
	f.fresh = false
	return s
}

// run feeds rows and returns, per sample, the Firings' strings joined.
func run(t *testing.T, m *Matcher, f *feeder, rows ...[]uint64) []string {
	t.Helper()
	var out []string
	var buf []Firing
	for _, r := range rows {
		buf = m.Feed(f.next(r...), buf[:0])
		var s []string
		for _, fi := range buf {
			s = append(s, fi.String())
		}
		out = append(out, strings.Join(s, "; "))
	}
	return out
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

var (
	avg10 = func(res, kind string) snapshot.SeriesField {
		return snapshot.SeriesField{Name: "avg10", Labels: map[string]string{"resource": res, "kind": kind}, Unit: "percent", Kind: snapshot.SeriesGauge, Div: 100}
	}
	memAvail = snapshot.SeriesField{Name: "MemAvailable", Unit: "bytes", Kind: snapshot.SeriesGauge}
	cpuUser  = func(cpu string) snapshot.SeriesField {
		return snapshot.SeriesField{Name: "user", Labels: map[string]string{"cpu": cpu}, Unit: "ns", Kind: snapshot.SeriesCounter}
	}
	faults = snapshot.SeriesField{Name: "pgfault", Unit: "count", Kind: snapshot.SeriesCounter}
)

// A gauge fires when it crosses into the condition, once, and again only
// after leaving it; other sources and fields are ignored.
func TestMatchGauge(t *testing.T) {
	m := NewMatcher(mustParse(t, "pressure:avg10{resource=cpu,kind=some} > 40"))
	f := &feeder{source: "pressure", fields: []snapshot.SeriesField{avg10("cpu", "some"), avg10("cpu", "full"), avg10("io", "some")}, fresh: true}
	got := run(t, m, f,
		[]uint64{1000, 9000, 9000}, // 10%: io and full are above, not watched
		[]uint64{4000, 0, 0},       // 40%: not above
		[]uint64{4001, 0, 0},       // 40.01%: fires
		[]uint64{9999, 0, 0},       // still above: nothing
		[]uint64{3000, 0, 0},       // below
		[]uint64{5000, 0, 0},       // fires again
	)
	same(t, "pressure", got, []string{"", "", "pressure:avg10{kind=some,resource=cpu} = 40.01 > 40", "", "", "pressure:avg10{kind=some,resource=cpu} = 50 > 40"})
	if m.Err() != nil {
		t.Errorf("Err: %v", m.Err())
	}
	if out := m.Feed(counters.Sample{Source: "memory", Fields: []snapshot.SeriesField{memAvail}, Values: []uint64{1}}, nil); len(out) != 0 {
		t.Errorf("fired on another source: %v", out)
	}

	// Already true at the first sample: fires on it.
	m = NewMatcher(mustParse(t, "memory:MemAvailable < 512MiB"))
	f = &feeder{source: "memory", fields: []snapshot.SeriesField{memAvail}, fresh: true}
	same(t, "memory", run(t, m, f, []uint64{256 << 20}, []uint64{100 << 20}, []uint64{1 << 30}, []uint64{512 << 20}, []uint64{512<<20 - 1}),
		[]string{"memory:MemAvailable = 256MiB < 512MiB", "", "", "", "memory:MemAvailable = 512MiB < 512MiB"})
}

// A counter is compared by its rate, in the threshold's unit; a fresh
// sample and a counter going down evaluate nothing.
func TestMatchCounter(t *testing.T) {
	// 10 ms apart: +5 ms of user time is 50% of a CPU.
	ms := uint64(time.Millisecond)
	m := NewMatcher(mustParse(t, "cpu:user{cpu=all} > 40%"))
	f := &feeder{source: "cpu", fields: []snapshot.SeriesField{cpuUser("0"), cpuUser("all")}, fresh: true}
	got := run(t, m, f,
		[]uint64{0, 100 * ms},     // first: no rate
		[]uint64{0, 105 * ms},     // 50%: fires
		[]uint64{0, 110 * ms},     // 50%
		[]uint64{0, 111 * ms},     // 10%
		[]uint64{0, 120 * ms},     // 90%: fires
		[]uint64{0, 1 * ms},       // went down: nothing, not a change of state
		[]uint64{0, 2 * ms},       // 10%
		[]uint64{0, 2*ms + ms*41}, // 410%: fires (more than a CPU: it is the total)
	)
	same(t, "cpu", got, []string{"", "cpu:user{cpu=all} = 50% > 40%", "", "", "cpu:user{cpu=all} = 90% > 40%", "", "", "cpu:user{cpu=all} = 410% > 40%"})

	// The same as a time per second, and a fresh sample in between.
	m = NewMatcher(mustParse(t, "cpu:user{cpu=all} >= 4ms/s"))
	f = &feeder{source: "cpu", fields: []snapshot.SeriesField{cpuUser("0"), cpuUser("all")}, fresh: true}
	var out []string
	out = append(out, run(t, m, f, []uint64{0, 0}, []uint64{0, 40 * ms / 1000})...) // 4 ms/s: fires
	f.fresh = true
	out = append(out, run(t, m, f, []uint64{0, ms}, []uint64{0, ms}, []uint64{0, ms + 50*ms/1000})...) // fresh; 0; 5 ms/s: fires
	same(t, "cpu ms/s", out, []string{"", "cpu:user{cpu=all} = 4ms/s >= 4ms/s", "", "", "cpu:user{cpu=all} = 5ms/s >= 4ms/s"})

	// Every CPU on its own, bare numbers per second.
	m = NewMatcher(mustParse(t, "cpu:user > 5e8"))
	f = &feeder{source: "cpu", fields: []snapshot.SeriesField{cpuUser("0"), cpuUser("1")}, fresh: true}
	same(t, "per cpu", run(t, m, f, []uint64{0, 0}, []uint64{6 * ms, 6 * ms}, []uint64{12 * ms, 16 * ms}),
		[]string{"", "cpu:user{cpu=0} = 6e+08/s > 5e+08; cpu:user{cpu=1} = 6e+08/s > 5e+08", ""})

	m = NewMatcher(mustParse(t, "vm:pgfault > 1000/s"))
	f = &feeder{source: "vm", fields: []snapshot.SeriesField{faults}, fresh: true}
	same(t, "faults", run(t, m, f, []uint64{0}, []uint64{5}, []uint64{20}), []string{"", "", "vm:pgfault = 1500/s > 1000/s"})
}

// When a source's fields change (a disk appears), the fields still there
// keep their state: one above stays armed and does not fire again.
func TestMatchFieldsChange(t *testing.T) {
	m := NewMatcher(mustParse(t, "pressure:avg10{kind=some} > 40"))
	f := &feeder{source: "pressure", fields: []snapshot.SeriesField{avg10("cpu", "some")}, fresh: true}
	got := run(t, m, f, []uint64{5000})
	f.fields, f.fresh = []snapshot.SeriesField{avg10("io", "some"), avg10("cpu", "some")}, true
	got = append(got, run(t, m, f, []uint64{100, 5000}, []uint64{5000, 5000})...)
	same(t, "fields change", got, []string{"pressure:avg10{kind=some,resource=cpu} = 50 > 40", "", "pressure:avg10{kind=some,resource=io} = 50 > 40"})
}

// Err says why a condition cannot be evaluated; Check says it up front.
func TestMatchErr(t *testing.T) {
	fields := []snapshot.SeriesField{memAvail, {Name: "HugePages_Total", Unit: "count", Kind: snapshot.SeriesGauge}}
	for _, c := range []struct{ expr, want string }{
		{"memory:MemAvailable > 1", ""},
		{"memory:MemAvailable > 1KiB", ""},
		{"memory:MemAvalable > 1", `source memory has no field memory:MemAvalable`},
		{"memory:MemAvailable{numa=0} > 1", `has no field memory:MemAvailable{numa=0}`},
		{"memory:MemAvailable > 1ms", `memory:MemAvailable is a gauge in bytes: a threshold in "ms" does not compare with it`},
		{"memory:MemAvailable > 1%", `a threshold in "%" does not compare`},
		{"memory:MemAvailable > 1MiB/s", `a threshold in "MiB/s" does not compare`},
		{"memory:HugePages_Total > 1GiB", `memory:HugePages_Total is a gauge in count`},
	} {
		e := mustParse(t, c.expr)
		err := e.Check(fields)
		m := NewMatcher(e)
		if m.Err() != nil {
			t.Errorf("%s: Err before any sample: %v", c.expr, m.Err())
		}
		m.Feed(counters.Sample{Source: "memory", Fields: fields, Values: []uint64{1, 1}}, nil)
		for _, err := range []error{err, m.Err()} {
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("%s: %v, want %q", c.expr, err, c.want)
			}
		}
	}
}

// Feed allocates nothing while nothing fires.
func TestMatchAllocs(t *testing.T) {
	m := NewMatcher(mustParse(t, "cpu:user > 1e12"))
	f := &feeder{source: "cpu", fields: []snapshot.SeriesField{cpuUser("0"), cpuUser("1"), cpuUser("all")}, fresh: true}
	row := []uint64{0, 0, 0}
	buf := make([]Firing, 0, 4)
	m.Feed(f.next(row...), buf)
	if n := testing.AllocsPerRun(100, func() {
		row[0] += 1000
		m.Feed(f.next(row...), buf)
	}); n != 0 {
		t.Errorf("%v allocations per sample", n)
	}
}

// On the real sampler, conditions that must hold fire on the first sample
// that can tell (a gauge: the first; a counter: the second), and one that
// cannot hold never fires.
func TestMatchLive(t *testing.T) {
	s, err := counters.New(counters.Config{Sources: []string{"memory@100", "cpu@100"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	type seen struct {
		n     map[string]int // samples by source
		fired map[string][]int
		err   []error
	}
	exprs := map[string]*Matcher{}
	for _, x := range []string{"memory:MemAvailable > 1B", "memory:MemTotal >= 1KiB", "cpu:forks >= 0/s", "cpu:context_switches >= 0/s", "memory:MemTotal < 1B"} {
		exprs[x] = NewMatcher(mustParse(t, x))
	}
	done := make(chan seen, 1)
	st := seen{n: map[string]int{}, fired: map[string][]int{}}
	var buf []Firing
	sent := false
	remove, err := s.Tap(func(smp counters.Sample) {
		if sent {
			return
		}
		st.n[smp.Source]++
		for x, m := range exprs {
			buf = m.Feed(smp, buf[:0])
			for range buf {
				st.fired[x] = append(st.fired[x], st.n[smp.Source])
			}
		}
		if st.n["memory"] >= 5 && st.n["cpu"] >= 5 {
			for _, m := range exprs {
				st.err = append(st.err, m.Err())
			}
			done <- st
			sent = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	var got seen
	select {
	case got = <-done:
	case <-time.After(time.Minute):
		t.Fatal("no 5 samples in a minute")
	}
	remove()
	for _, err := range got.err {
		if err != nil {
			t.Error(err)
		}
	}
	want := map[string][]int{"memory:MemAvailable > 1B": {1}, "memory:MemTotal >= 1KiB": {1}, "cpu:forks >= 0/s": {2}, "cpu:context_switches >= 0/s": {2}}
	for x := range exprs {
		if a, b := got.fired[x], want[x]; len(a) != len(b) || len(a) > 0 && a[0] != b[0] {
			t.Errorf("%s fired at samples %v, want %v", x, a, b)
		}
	}
}
