package counters

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot"
)

// Config says what to sample, how often and for how long.
type Config struct {
	// Sources are source names (Names, "cgroup:PATH"), "default", "all"
	// or "none", each optionally NAME@HZ; empty means "default".
	Sources []string
	// RateHz is every source's rate unless NAME@HZ says otherwise: 1 to
	// MaxRate samples a second (0: DefaultRate).
	RateHz float64
	// Keep is how long samples are kept (0: DefaultKeep).
	Keep time.Duration
	// CPUs is how many CPUs the perf source opens counters on.
	CPUs int
}

const (
	DefaultRate = 100
	MaxRate     = 1000
	DefaultKeep = 60 * time.Second
)

// ErrClosed is returned by the methods of a closed Sampler.
var ErrClosed = os.ErrClosed

// maxSleep bounds how long the sampling thread sleeps at once, so that
// Stop, Close and a source added next to slow ones take effect within it.
const maxSleep = 100 * time.Millisecond

// Sampler reads its sources at their rates, on one thread of its own, and
// keeps their samples for Keep in rings allocated when a source is added
// (and when its fields change: a disk or an interface appearing): a sample
// allocates nothing.
//
// A Sampler made by New samples once started; Stop pauses it (the rings
// and their samples stay, and the thread is gone), Start resumes it, and
// sources can be added and removed at any time. All its methods are safe
// for concurrent use. Tap hands each sample to a consumer as it is taken.
// After Close, Start, Stop, Add, Remove and Tap return ErrClosed
// (os.ErrClosed); Series and Sources return nil and Bytes 0, the
// rings being freed; Keep, Unavailable and Stats keep reporting what they
// last did. No method touches a source's file descriptors once closed.
type Sampler struct {
	cfg  Config        // set by New, then read-only
	wake chan struct{} // one token: an Add, Stop or Close for an idle loop

	mu      sync.Mutex
	exited  sync.Cond // on mu: a run's loop returned
	streams []*stream
	missing []Unavailable
	closed  bool
	running bool          // a loop goroutine is alive
	quit    bool          // it is asked to return
	cpu     time.Duration // the sampling thread's, as of its last wake-up
	gone    uint64        // missed samples of removed sources
	err     error
	taps    []tapFn // see Tap
	tapID   uint64
}

// New opens the sources cfg names, ready to sample from Start on. A
// source asked for by name that cannot be read is an error; one from a
// group is reported by Unavailable instead.
func New(cfg Config) (*Sampler, error) {
	if cfg.RateHz == 0 {
		cfg.RateHz = DefaultRate
	}
	if err := checkRate("counter rate", cfg.RateHz); err != nil {
		return nil, err
	}
	if cfg.Keep == 0 {
		cfg.Keep = DefaultKeep
	}
	if cfg.Keep < 0 {
		return nil, fmt.Errorf("counter keep time %v: want a positive duration", cfg.Keep)
	}
	names, rates, explicit, err := ParseSources(cfg.Sources)
	if err != nil {
		return nil, err
	}
	s := &Sampler{cfg: cfg, wake: make(chan struct{}, 1)}
	s.exited.L = &s.mu
	streams, missing, err := s.open(names, rates, explicit, 0)
	if err != nil {
		return nil, err
	}
	s.streams = streams
	for _, name := range names {
		s.setMissing(name, missing[name])
	}
	return s, nil
}

// open opens names: each at rates[name], else rate when not 0, else
// Config.RateHz. It returns what the machine lacks by source name; a
// source in explicit that cannot be read is an error, and closes
// everything opened.
func (s *Sampler) open(names []string, rates map[string]float64, explicit map[string]bool, rate float64) (_ []*stream, missing map[string][]Unavailable, err error) {
	var streams []*stream
	defer func() {
		if err != nil {
			for _, st := range streams {
				st.src.close()
			}
		}
	}()
	missing = map[string][]Unavailable{}
	for _, name := range names {
		st, parts, err := s.openOne(name, cmp.Or(rates[name], rate, s.cfg.RateHz))
		if err != nil {
			if explicit[name] {
				return nil, nil, err
			}
			parts = append(parts, Unavailable{name, strings.TrimPrefix(err.Error(), fmt.Sprintf("counter source %q: ", name))})
		}
		missing[name] = parts
		if st != nil {
			streams = append(streams, st)
		}
	}
	return streams, missing, nil
}

func (s *Sampler) openOne(name string, rate float64) (*stream, []Unavailable, error) {
	src, missing, err := Open(name, s.cfg.CPUs)
	if err != nil {
		return nil, missing, err
	}
	st, err := newStream(src, rate, s.cfg.Keep)
	if err != nil {
		src.close()
		return nil, missing, fmt.Errorf("counter source %q: %w", name, err)
	}
	return st, missing, nil
}

// setMissing replaces what Unavailable says of the source name.
func (s *Sampler) setMissing(name string, m []Unavailable) {
	kept := s.missing[:0]
	for _, u := range s.missing {
		if u.Name != name && !strings.HasPrefix(u.Name, name+" ") {
			kept = append(kept, u)
		}
	}
	s.missing = append(kept, m...)
}

// Start starts sampling, or resumes it after Stop; it does nothing while
// sampling. A source is first sampled at once, or, if its next sample is
// still due, then; the time stopped counts as no missed sample.
func (s *Sampler) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.running && s.quit && !s.closed {
		s.exited.Wait() // a Stop under way
	}
	if s.closed {
		return ErrClosed
	}
	if s.running {
		return nil
	}
	now := int64(sysx.BootNow())
	for _, st := range s.streams {
		if st.due < now {
			st.fresh, st.due = true, 0
		}
	}
	s.running, s.quit = true, false
	go s.loop()
	return nil
}

// Stop pauses sampling: it returns once the sampling thread has taken its
// last sample (within maxSleep). The samples stay; Series and Stats go on
// reporting them. Stopping a stopped sampler does nothing.
func (s *Sampler) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.running {
		return nil
	}
	s.quit = true
	s.poke()
	// Until this run's loop returns, or a Start began another.
	for s.running && s.quit {
		s.exited.Wait()
	}
	return nil
}

// poke wakes a loop that waits for something to sample.
func (s *Sampler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// loop samples until Stop or Close, on a thread locked to it for the
// run; the caller of Start set s.running.
func (s *Sampler) loop() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Read after the lock: the thread ran other goroutines before.
	cpu := sysx.ThreadCPUTime()
	extraP := false
	s.mu.Lock()
	for {
		t := sysx.ThreadCPUTime()
		s.cpu += t - cpu
		cpu = t
		if s.quit {
			break
		}
		next := int64(math.MaxInt64)
		for _, st := range s.streams {
			next = min(next, st.due)
		}
		s.mu.Unlock()
		if next == math.MaxInt64 {
			// Nothing to sample: wait for an Add, Stop or Close,
			// with no thread asleep in a system call.
			if extraP {
				giveP()
				extraP = false
			}
			<-s.wake
		} else {
			if !extraP {
				takeP()
				extraP = true
			}
			sysx.SleepUntilBoot(min(next, int64(sysx.BootNow())+int64(maxSleep)))
		}
		s.mu.Lock()
		if s.quit {
			continue
		}
		now := int64(sysx.BootNow())
		for _, st := range s.streams {
			if st.due > now {
				continue
			}
			err := st.sample(s.cfg.Keep)
			switch {
			case err == nil:
				s.tap(st)
			case s.err == nil:
				s.err = fmt.Errorf("counter source %q: %w", st.src.Name, err)
			}
		}
	}
	s.mu.Unlock()
	if extraP {
		giveP()
	}
	s.mu.Lock()
	s.running = false
	s.exited.Broadcast()
	s.mu.Unlock()
}

// Add opens sources, written as Config.Sources (an empty list adds
// nothing), and samples them from the next time the sampler wakes up, or
// from Start. Each is sampled at its NAME@HZ rate, else at rateHz when not
// 0, else at Config.RateHz. A source asked for by name that is already
// sampled, or cannot be read, is an error and adds nothing; one from a
// group ("default", "all") already sampled is left as it is, and one that
// cannot be read is reported by Unavailable. To change a source's rate,
// Remove it and Add it again.
func (s *Sampler) Add(sources []string, rateHz float64) error {
	if len(sources) == 0 {
		return nil
	}
	if rateHz != 0 {
		if err := checkRate("counter rate", rateHz); err != nil {
			return err
		}
	}
	names, rates, explicit, err := ParseSources(sources)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	names, err = s.toAdd(names, explicit)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	// Opening takes system calls (the perf source: several per CPU): the
	// sampling thread goes on meanwhile.
	streams, missing, err := s.open(names, rates, explicit, rateHz)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		err = ErrClosed
	} else {
		names, err = s.toAdd(names, explicit) // a concurrent Add may have won
	}
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	for _, st := range streams {
		if err != nil || !keep[st.src.Name] {
			st.src.close()
			continue
		}
		s.streams = append(s.streams, st)
	}
	if err != nil {
		return err
	}
	for _, name := range names {
		s.setMissing(name, missing[name])
	}
	s.poke()
	return nil
}

// toAdd returns the names not sampled yet; a name in explicit that is
// sampled is an error. The caller holds mu.
func (s *Sampler) toAdd(names []string, explicit map[string]bool) ([]string, error) {
	var out []string
	for _, n := range names {
		if s.find(n) >= 0 {
			if explicit[n] {
				return nil, fmt.Errorf("counter source %q: already sampled", n)
			}
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

func (s *Sampler) find(name string) int {
	for i, st := range s.streams {
		if st.src.Name == name {
			return i
		}
	}
	return -1
}

// Remove stops sampling the sources named (as Sources names them) and
// drops their samples at once: Series no longer returns them, and what
// Unavailable said of them goes. A name not sampled is an error, and
// removes nothing. Stats keeps counting their missed samples.
func (s *Sampler) Remove(names []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for _, n := range names {
		if s.find(n) < 0 {
			return fmt.Errorf("counter source %q: not sampled", n)
		}
	}
	var errs []error
	for _, n := range names {
		i := s.find(n)
		if i < 0 {
			continue // named twice
		}
		st := s.streams[i]
		s.streams = slices.Delete(s.streams, i, i+1)
		s.gone += st.missed
		s.setMissing(n, nil)
		// The loop reads sources holding mu: it is not reading this one.
		if err := st.src.close(); err != nil {
			errs = append(errs, fmt.Errorf("close counter source %q: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// Keep is how long samples are kept.
func (s *Sampler) Keep() time.Duration { return s.cfg.Keep }

// Unavailable lists what could not be read, and why.
func (s *Sampler) Unavailable() []Unavailable {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Unavailable(nil), s.missing...)
}

// Sources names the sources being sampled, with their rates; nil after
// Close.
func (s *Sampler) Sources() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	out := map[string]float64{}
	for _, st := range s.streams {
		out[st.src.Name] = st.rate
	}
	return out
}

// Bytes is the memory the rings hold; 0 after Close.
func (s *Sampler) Bytes() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, st := range s.streams {
		n += st.bytes()
	}
	return n
}

// Series copies what the rings hold, a Series per source and set of
// fields, oldest first; nil after Close.
func (s *Sampler) Series() []*snapshot.Series {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*snapshot.Series
	now := int64(sysx.BootNow())
	for _, st := range s.streams {
		st.prune(s.cfg.Keep, now)
		out = st.series(out)
	}
	return out
}

// Stats are the sampler's own figures.
type Stats struct {
	// CPU is the sampling thread's time on CPU while sampling, over
	// every run from Start to Stop, as of its last wake-up.
	CPU time.Duration
	// Missed counts samples skipped because the sampler was late or a
	// read failed, removed sources' included. Time stopped counts none.
	Missed uint64
	// Err is the first read error, if any; sampling goes on.
	Err error
}

// Stats returns the sampler's own CPU time and misses so far; after Close,
// their final values.
func (s *Sampler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{CPU: s.cpu, Missed: s.gone, Err: s.err}
	for _, x := range s.streams {
		st.Missed += x.missed
	}
	return st
}

// Close stops sampling, closes the sources and frees the rings. It is safe
// to call twice: the second call returns nil once the first is done.
func (s *Sampler) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if !s.closed {
		s.closed, s.quit = true, true
		s.poke()
		// The loop reads sources holding mu, and none once quit is set.
		for _, st := range s.streams {
			s.gone += st.missed
			errs = append(errs, st.src.close())
		}
		s.streams = nil
		s.taps = nil
	}
	// Until the loop has given its P back.
	for s.running {
		s.exited.Wait()
	}
	return errors.Join(errs...)
}
