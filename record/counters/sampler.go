package counters

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot"
)

// Config says what to sample, how often and for how long.
type Config struct {
	// Sources are source names (Names, "cgroup:PATH"), "default", "all"
	// or "none"; empty means "default".
	Sources []string
	// RateHz is every source's rate unless Rates says otherwise: 1 to
	// MaxRate samples a second (0: DefaultRate).
	RateHz float64
	Rates  map[string]float64
	// Keep is how long samples are kept (0: DefaultKeep).
	Keep time.Duration
	CPUs int
}

const (
	DefaultRate = 100
	MaxRate     = 1000
	DefaultKeep = 60 * time.Second
)

// Sampler reads its sources at their rates, on one thread of its own, and
// keeps their samples for Keep in rings allocated at start: a sample
// allocates nothing. It is safe for concurrent use.
type Sampler struct {
	cfg     Config
	streams []*stream
	missing []Unavailable

	mu   sync.Mutex // guards the streams' rings against Series
	stop atomic.Bool
	done chan struct{}
	tid  atomic.Int64
	// cpu0 is the sampling thread's CPU time when it started sampling: the
	// thread ran other goroutines before it was locked to this one.
	cpu0 atomic.Int64
	err  atomic.Pointer[error]
	// extraP says Start added a P for the sampler, which Close gives back.
	extraP bool
}

// stream is one source and the samples kept of it.
type stream struct {
	src    *Source
	rate   float64
	period int64
	due    int64
	cap    int // samples a segment holds
	cur    *segment
	old    []*segment // closed when the fields changed, oldest first
	missed uint64
}

// segment is a ring of samples taken with one set of fields.
type segment struct {
	fields []snapshot.SeriesField
	ts     []uint64
	vals   []uint64 // cap × len(fields), sample by sample
	next   int      // where the next sample goes
	n      int      // samples held
	missed uint64
}

// ParseSources splits a --counters list: names, groups, and a rate per
// name written NAME@HZ.
func ParseSources(list []string) (names []string, rates map[string]float64, explicit map[string]bool, err error) {
	rates, explicit = map[string]float64{}, map[string]bool{}
	seen := map[string]bool{}
	add := func(n string, exp bool) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
		explicit[n] = explicit[n] || exp
	}
	if len(list) == 0 {
		list = []string{"default"}
	}
	for _, item := range list {
		name, hz, hasRate := strings.Cut(item, "@")
		switch {
		case name == "none":
			continue
		case name == "default" || name == "all":
			set := Default
			if name == "all" {
				set = Names
			}
			for _, n := range set {
				add(n, false)
			}
		case name == "cgroup" || (!strings.HasPrefix(name, "cgroup:") && !contains(Names, name)):
			return nil, nil, nil, fmt.Errorf("--counters: unknown source %q; sources: %s, cgroup:PATH, default, all, none", name, strings.Join(Names, ", "))
		default:
			add(name, true)
		}
		if hasRate {
			r, err := strconv.ParseFloat(strings.TrimSuffix(strings.ToLower(hz), "hz"), 64)
			if err != nil || r < 1 || r > MaxRate {
				return nil, nil, nil, fmt.Errorf("--counters %s: rate %q: want 1 to %d samples a second", item, hz, MaxRate)
			}
			switch name {
			case "default":
				for _, n := range Default {
					rates[n] = r
				}
			case "all":
				for _, n := range Names {
					rates[n] = r
				}
			default:
				rates[name] = r
			}
		}
	}
	return names, rates, explicit, nil
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// Start opens the sources and starts sampling. A source asked for by name
// that cannot be read is an error; one from a group is reported by
// Unavailable instead.
func Start(cfg Config) (_ *Sampler, err error) {
	if cfg.RateHz == 0 {
		cfg.RateHz = DefaultRate
	}
	if cfg.RateHz < 1 || cfg.RateHz > MaxRate {
		return nil, fmt.Errorf("--counter-rate %g: want 1 to %d samples a second", cfg.RateHz, MaxRate)
	}
	if cfg.Keep == 0 {
		cfg.Keep = DefaultKeep
	}
	names, rates, explicit, err := ParseSources(cfg.Sources)
	if err != nil {
		return nil, err
	}
	for n, r := range cfg.Rates {
		rates[n] = r
	}
	s := &Sampler{cfg: cfg, done: make(chan struct{})}
	defer func() {
		if err != nil {
			s.closeSources()
		}
	}()
	now := int64(sysx.BootNow())
	for _, name := range names {
		src, missing, err := Open(name, cfg.CPUs)
		s.missing = append(s.missing, missing...)
		if err != nil {
			if explicit[name] {
				return nil, err
			}
			s.missing = append(s.missing, Unavailable{name, strings.TrimPrefix(err.Error(), "counters "+name+": ")})
			continue
		}
		rate := cfg.RateHz
		if r := rates[name]; r > 0 {
			rate = r
		}
		st := &stream{src: src, rate: rate, period: int64(float64(time.Second) / rate), due: now}
		st.cap = int(math.Ceil(cfg.Keep.Seconds()*rate)) + 1
		s.streams = append(s.streams, st)
		// The first read names the fields and sizes the ring.
		if err := s.sample(st, now); err != nil {
			return nil, err
		}
		st.due = now + st.period
	}
	if len(s.streams) > 0 {
		// The sampler's thread sleeps in a system call holding a P until
		// the runtime takes it back, which can take it up to 10 ms: give
		// it one of its own, so that no other goroutine waits for it.
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
		s.extraP = true
	}
	go s.loop()
	return s, nil
}

// Keep is how long samples are kept.
func (s *Sampler) Keep() time.Duration { return s.cfg.Keep }

// Unavailable lists what could not be read, and why.
func (s *Sampler) Unavailable() []Unavailable { return s.missing }

// Sources names the sources being sampled, with their rates.
func (s *Sampler) Sources() map[string]float64 {
	out := map[string]float64{}
	for _, st := range s.streams {
		out[st.src.Name] = st.rate
	}
	return out
}

// Bytes is the memory the rings hold.
func (s *Sampler) Bytes() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, st := range s.streams {
		n += uint64(st.cap) * uint64(1+len(st.cur.fields)) * 8
	}
	return n
}

func (s *Sampler) loop() {
	defer close(s.done)
	runtime.LockOSThread()
	tid := sysx.Gettid()
	s.cpu0.Store(int64(threadCPU(tid)))
	s.tid.Store(int64(tid))
	for !s.stop.Load() {
		next := int64(math.MaxInt64)
		for _, st := range s.streams {
			next = min(next, st.due)
		}
		if next == math.MaxInt64 {
			return
		}
		sysx.SleepUntilBoot(next)
		now := int64(sysx.BootNow())
		s.mu.Lock()
		for _, st := range s.streams {
			if st.due > now {
				continue
			}
			if err := s.sample(st, now); err != nil {
				s.err.CompareAndSwap(nil, &err)
			}
			// Next due: one period on; samples already past are
			// skipped, and counted.
			st.due += st.period
			if st.due <= now {
				skipped := (now-st.due)/st.period + 1
				st.missed += uint64(skipped)
				st.cur.missed += uint64(skipped)
				st.due += skipped * st.period
			}
		}
		s.mu.Unlock()
	}
}

// sample reads one source into its ring; the caller holds mu or owns s.
func (s *Sampler) sample(st *stream, now int64) error {
	changed, err := st.src.read()
	if err != nil {
		return err
	}
	ts := sysx.BootNow()
	if changed {
		if st.cur != nil && st.cur.n > 0 {
			st.old = append(st.old, st.cur)
		}
		f := append([]snapshot.SeriesField(nil), st.src.Fields()...)
		st.cur = &segment{fields: f, ts: make([]uint64, st.cap), vals: make([]uint64, st.cap*len(f))}
		s.prune(st, now)
	}
	seg := st.cur
	st.src.values(seg.vals[seg.next*len(seg.fields) : (seg.next+1)*len(seg.fields)])
	seg.ts[seg.next] = ts
	seg.next = (seg.next + 1) % st.cap
	seg.n = min(seg.n+1, st.cap)
	return nil
}

// prune drops closed segments whose newest sample is older than Keep.
func (s *Sampler) prune(st *stream, now int64) {
	keep := st.old[:0]
	for _, seg := range st.old {
		if newest := seg.ts[(seg.next+st.cap-1)%st.cap]; now-int64(newest) <= int64(s.cfg.Keep) {
			keep = append(keep, seg)
		}
	}
	st.old = keep
}

// Series copies what the rings hold, a Series per segment, oldest first.
func (s *Sampler) Series() []*snapshot.Series {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*snapshot.Series
	for _, st := range s.streams {
		s.prune(st, int64(sysx.BootNow()))
		for _, seg := range append(append([]*segment(nil), st.old...), st.cur) {
			if seg.n == 0 {
				continue
			}
			w := len(seg.fields)
			ser := &snapshot.Series{Source: st.src.Name, RateHz: st.rate, Missed: seg.missed,
				Fields: append([]snapshot.SeriesField(nil), seg.fields...), TS: make([]uint64, seg.n), Values: make([][]uint64, w)}
			for f := range ser.Values {
				ser.Values[f] = make([]uint64, seg.n)
			}
			first := (seg.next - seg.n + st.cap) % st.cap
			for i := 0; i < seg.n; i++ {
				k := (first + i) % st.cap
				ser.TS[i] = seg.ts[k]
				for f := 0; f < w; f++ {
					ser.Values[f][i] = seg.vals[k*w+f]
				}
			}
			out = append(out, ser)
		}
	}
	return out
}

// Stats are the sampler's own figures.
type Stats struct {
	// CPU is the sampling thread's time on CPU since it started sampling.
	CPU time.Duration
	// Missed counts samples skipped because the sampler was late.
	Missed uint64
	// Err is the first read error, if any; sampling goes on.
	Err error
}

// Stats returns the sampler's own CPU time and misses so far.
func (s *Sampler) Stats() Stats {
	var st Stats
	if tid := s.tid.Load(); tid != 0 {
		st.CPU = threadCPU(int(tid)) - time.Duration(s.cpu0.Load())
	}
	s.mu.Lock()
	for _, x := range s.streams {
		st.Missed += x.missed
	}
	s.mu.Unlock()
	if e := s.err.Load(); e != nil {
		st.Err = *e
	}
	return st
}

// threadCPU reads a thread of this process's time on CPU from schedstat.
func threadCPU(tid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	ns, _ := strconv.ParseInt(f[0], 10, 64)
	return time.Duration(ns)
}

// Close stops sampling and closes the sources; it is safe to call twice.
func (s *Sampler) Close() error {
	if s.stop.Swap(true) {
		return nil
	}
	<-s.done
	if s.extraP {
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) - 1)
	}
	return s.closeSources()
}

func (s *Sampler) closeSources() error {
	var errs []error
	for _, st := range s.streams {
		errs = append(errs, st.src.close())
	}
	return errors.Join(errs...)
}
