package counters

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/internal/testkernel"
	"github.com/rewindtrace/rewind/snapshot"
)

// These tests assert what holds however busy the machine is: how samples
// sit on their grid, what a stopped sampler does not do. They wait for
// things to happen, never for a time to pass; waitFor's bound is only
// there to turn a hang into a failure.

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
	}
}

// start is New, then Start.
func start(cfg Config) (*Sampler, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// bySource returns each source's series.
func bySource(s *Sampler) map[string][]*snapshot.Series {
	out := map[string][]*snapshot.Series{}
	for _, ser := range s.Series() {
		out[ser.Source] = append(out[ser.Source], ser)
	}
	return out
}

func samples(s *Sampler, source string) int {
	n := 0
	for _, ser := range bySource(s)[source] {
		n += len(ser.TS)
	}
	return n
}

// period is a series' sampling period as the sampler computes it.
func period(ser *snapshot.Series) uint64 { return uint64(float64(time.Second) / ser.RateHz) }

// checkGrid checks the samples of one run, ts, with missed skipped among
// them: each sample is in a slot of its own on the grid the first sets,
// and samples + missed fill the slots from the first to the last exactly.
func checkGrid(t *testing.T, source string, p uint64, ts []uint64, missed uint64) {
	t.Helper()
	last := uint64(0)
	for i := 1; i < len(ts); i++ {
		slot := (ts[i] - ts[0]) / p
		if slot <= last {
			t.Errorf("%s: samples %d and %d in slot %d (%v apart, period %v)", source, i-1, i, slot, time.Duration(ts[i]-ts[i-1]), time.Duration(p))
		}
		last = slot
	}
	if n := uint64(len(ts)); n+missed != last+1 {
		t.Errorf("%s: %d samples + %d missed, over %d periods", source, n, missed, last+1)
	}
}

// Samples fill their grid: at 100 Hz, samples + missed = the periods from
// the first to the last, exactly, and no two samples share a period.
func TestSamplerGrid(t *testing.T) {
	testkernel.Require(t)
	s, err := start(Config{Sources: []string{"cpu", "load", "perf"}, RateHz: 100, Keep: time.Minute, CPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFor(t, "30 samples of each source", func() bool {
		return samples(s, "cpu") >= 30 && samples(s, "load") >= 30 && samples(s, "perf") >= 30
	})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	by := bySource(s)
	if len(by) != 3 {
		t.Fatalf("series of %d sources", len(by))
	}
	var missed uint64
	for src, sers := range by {
		for _, ser := range sers {
			missed += ser.Missed
		}
		if len(sers) > 1 {
			t.Logf("%s: %d segments, its fields changed; not checked", src, len(sers))
			continue
		}
		ser := sers[0]
		t.Logf("%s: %d samples, %d missed", src, len(ser.TS), ser.Missed)
		checkGrid(t, src, period(ser), ser.TS, ser.Missed)
	}
	if st := s.Stats(); st.Missed != missed || st.Err != nil || st.CPU <= 0 {
		t.Errorf("stats %+v, series missed %d", st, missed)
	}
}

// New opens without sampling; Stop pauses (nothing sampled, nothing counted
// missed while stopped); Start resumes; CPU time adds up over runs.
func TestSamplerLifecycle(t *testing.T) {
	s, err := New(Config{Sources: []string{"load", "memory"}, RateHz: 200, Keep: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Sources()) != 2 || s.Bytes() == 0 {
		t.Fatalf("sources %v, %d bytes", s.Sources(), s.Bytes())
	}
	time.Sleep(20 * time.Millisecond)
	if ser := s.Series(); len(ser) != 0 {
		t.Fatalf("%d series before Start", len(ser))
	}
	if err := s.Stop(); err != nil { // stopping a stopped sampler
		t.Fatal(err)
	}

	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil { // starting a started one
		t.Fatal(err)
	}
	waitFor(t, "5 samples", func() bool { return samples(s, "load") >= 5 && samples(s, "memory") >= 5 })
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := sysx.BootNow()
	before, cpu1 := s.Series(), s.Stats().CPU
	time.Sleep(50 * time.Millisecond) // ten periods
	if after := s.Series(); !reflect.DeepEqual(before, after) {
		t.Fatalf("series changed while stopped")
	}
	n1 := map[string]int{}
	for _, ser := range before {
		n1[ser.Source] = len(ser.TS)
	}

	resumed := sysx.BootNow()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "5 more samples", func() bool {
		return samples(s, "load") >= n1["load"]+5 && samples(s, "memory") >= n1["memory"]+5
	})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if cpu2 := s.Stats().CPU; cpu1 <= 0 || cpu2 < cpu1 {
		t.Errorf("CPU %v then %v", cpu1, cpu2)
	}
	for src, sers := range bySource(s) {
		if len(sers) > 1 {
			t.Logf("%s: %d segments, its fields changed; not checked", src, len(sers))
			continue
		}
		ser := sers[0]
		for i, ts := range ser.TS {
			if ts > stopped && ts < resumed {
				t.Errorf("%s: sample %d taken while stopped", src, i)
			}
		}
		// Each run fills its own grid; the periods stopped are not
		// missed: the series' misses are the runs' misses.
		p, k := period(ser), n1[src]
		run1, run2 := ser.TS[:k], ser.TS[k:]
		m1 := (run1[len(run1)-1]-run1[0])/p + 1 - uint64(len(run1))
		m2 := (run2[len(run2)-1]-run2[0])/p + 1 - uint64(len(run2))
		if ser.Missed != m1+m2 {
			t.Errorf("%s: %d missed, the runs %d and %d", src, ser.Missed, m1, m2)
		}
		checkGrid(t, src+" run 2", p, run2, m2)
	}
}

// Sources come and go while sampling: an added one's series appears, on a
// grid of its own from its first sample; a removed one's goes at once.
func TestSamplerAddRemove(t *testing.T) {
	s, err := start(Config{Sources: []string{"load@1"}, Keep: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The thread sleeps for the 1 Hz source: memory's first sample waits
	// for it to wake, and that wait is no missed sample.
	if err := s.Add([]string{"memory"}, 500); err != nil {
		t.Fatal(err)
	}
	if got := s.Sources(); got["memory"] != 500 || got["load"] != 1 {
		t.Fatalf("sources %v", got)
	}
	waitFor(t, "memory samples", func() bool { return samples(s, "memory") >= 20 })
	if sers := bySource(s)["memory"]; len(sers) == 1 {
		// Series copies under the lock: the samples and misses agree.
		checkGrid(t, "memory", period(sers[0]), sers[0].TS, sers[0].Missed)
	}

	for _, c := range []struct {
		add  []string
		want string
	}{
		{[]string{"memory"}, `counter source "memory": already sampled`},
		{[]string{"cpu", "memory@10"}, `counter source "memory": already sampled`},
		{[]string{"nope"}, `unknown source "nope"; counter sources:`},
		{[]string{"cpu@5000"}, `counter source "cpu": rate 5000 Hz: want 1 to 1000 samples a second`},
		{[]string{"cpu@NaN"}, `counter source "cpu": rate NaN Hz: want 1 to 1000 samples a second`},
		{[]string{"cgroup:/nonexistent"}, `counter source "cgroup:/nonexistent": /nonexistent is not a cgroup directory`},
	} {
		if err := s.Add(c.add, 0); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("Add(%q): %v, want %s", c.add, err, c.want)
		}
	}
	if err := s.Add([]string{"cpu"}, 5000); err == nil || !strings.HasPrefix(err.Error(), "counter rate 5000 Hz") {
		t.Errorf("Add at 5000 Hz: %v", err)
	}
	if _, ok := s.Sources()["cpu"]; ok {
		t.Errorf("a failed Add added cpu")
	}
	// A group adds what it lacks and leaves the rest as they are.
	if err := s.Add([]string{"default"}, 0); err != nil {
		t.Fatal(err)
	}
	if got := s.Sources(); got["memory"] != 500 || got["load"] != 1 || got["cpu"] != DefaultRate {
		t.Errorf("sources %v", got)
	}
	waitFor(t, "cpu samples", func() bool { return samples(s, "cpu") > 0 })

	if err := s.Remove([]string{"load", "nope"}); err == nil || err.Error() != `counter source "nope": not sampled` {
		t.Errorf("Remove nope: %v", err)
	}
	if err := s.Remove([]string{"memory", "memory"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Sources()["memory"]; ok || samples(s, "memory") != 0 || samples(s, "load") == 0 {
		t.Errorf("memory removed: sources %v, %d memory samples, %d load samples", s.Sources(), samples(s, "memory"), samples(s, "load"))
	}
	if err := s.Remove([]string{"memory"}); err == nil {
		t.Errorf("memory removed twice")
	}
	// Added again, it starts afresh.
	if err := s.Add([]string{"memory"}, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "memory samples again", func() bool { return samples(s, "memory") > 0 })
}

// A sampler with nothing to sample waits for an Add, then samples it.
func TestSamplerEmpty(t *testing.T) {
	s, err := start(Config{Sources: []string{"none"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Sources()) != 0 || s.Bytes() != 0 {
		t.Fatalf("sources %v", s.Sources())
	}
	if err := s.Add([]string{"load@1000"}, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "load samples", func() bool { return samples(s, "load") >= 3 })
	if err := s.Remove([]string{"load"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if len(s.Series()) != 0 {
		t.Fatalf("series after removing the only source")
	}
}

// After Close: ErrClosed from what acts, nothing from what reads rings,
// the last figures from Stats; Close again is nil.
func TestSamplerClosed(t *testing.T) {
	s, err := start(Config{Sources: []string{"load@1000"}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "samples", func() bool { return samples(s, "load") > 0 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{"Start": s.Start(), "Stop": s.Stop(), "Add": s.Add([]string{"cpu"}, 0), "Remove": s.Remove([]string{"load"})} {
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	if s.Series() != nil || s.Sources() != nil || s.Bytes() != 0 {
		t.Errorf("after Close: %d series, sources %v, %d bytes", len(s.Series()), s.Sources(), s.Bytes())
	}
	if st := s.Stats(); st.CPU <= 0 {
		t.Errorf("stats after Close %+v", st)
	}
	if s.Keep() != DefaultKeep {
		t.Errorf("keep %v", s.Keep())
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close twice: %v", err)
	}
}

// Many goroutines drive one sampler, and one closes it among them: under
// -race, nothing races, and every call returns what its state allows.
func TestSamplerConcurrent(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	s, err := start(Config{Sources: []string{"load@1000", "memory@1000"}, Keep: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	expected := func(err error) bool {
		if err == nil || errors.Is(err, os.ErrClosed) {
			return true
		}
		m := err.Error()
		return strings.HasSuffix(m, "already sampled") || strings.HasSuffix(m, "not sampled")
	}
	var wg sync.WaitGroup
	closed := make(chan struct{})
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g)))
			names := []string{"load", "memory", "cpu", "vm"}
			for i := 0; i < 300; i++ {
				n := names[r.Intn(len(names))]
				if g == 0 && i == 150 {
					if err := s.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
					close(closed)
				}
				var err error
				switch r.Intn(7) {
				case 0:
					err = s.Add([]string{fmt.Sprintf("%s@%d", n, 100+r.Intn(900))}, 0)
				case 1:
					err = s.Remove([]string{n})
				case 2:
					for _, ser := range s.Series() {
						if len(ser.TS) == 0 || len(ser.Values) != len(ser.Fields) {
							t.Errorf("%s: %d samples, %d fields, %d value columns", ser.Source, len(ser.TS), len(ser.Fields), len(ser.Values))
						}
					}
				case 3:
					if st := s.Stats(); st.CPU < 0 {
						t.Errorf("CPU %v", st.CPU)
					}
					s.Sources()
					s.Bytes()
					s.Unavailable()
				case 4:
					err = s.Stop()
				case 5:
					err = s.Start()
				case 6:
					err = s.Add([]string{"default"}, 0)
				}
				if !expected(err) {
					t.Errorf("goroutine %d: %v", g, err)
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-closed:
	default:
		s.Close()
	}
	if err := s.Start(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	if p := runtime.GOMAXPROCS(0); p != orig || extraPs() != 0 {
		t.Errorf("GOMAXPROCS %d after Close, was %d; %d extra", p, orig, extraPs())
	}
}

// Each sampler sampling adds a P, Stop and Close give it back, and several
// samplers started and stopped at once leave GOMAXPROCS as it was.
func TestSamplerGOMAXPROCS(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	if extraPs() != 0 {
		t.Fatalf("%d Ps left by earlier tests", extraPs())
	}
	var ss []*Sampler
	for range 3 {
		s, err := start(Config{Sources: []string{"load@1000"}})
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	idle, err := start(Config{Sources: []string{"none"}}) // nothing to sleep for: no P
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three samplers to sample", func() bool { return runtime.GOMAXPROCS(0) == orig+3 })
	if err := ss[0].Stop(); err != nil {
		t.Fatal(err)
	}
	if p := runtime.GOMAXPROCS(0); p != orig+2 {
		t.Errorf("GOMAXPROCS %d after a Stop, want %d", p, orig+2)
	}
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := s.Start(); err != nil {
					t.Error(err)
				}
				if err := s.Stop(); err != nil {
					t.Error(err)
				}
			}
			if err := s.Start(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, s := range append(ss, idle) {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}
	if p := runtime.GOMAXPROCS(0); p != orig || extraPs() != 0 {
		t.Errorf("GOMAXPROCS %d after Close, was %d; %d extra", p, orig, extraPs())
	}
}
