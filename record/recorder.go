package record

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/rewindtrace/rewind/bpf"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/record/counters"
	"github.com/rewindtrace/rewind/record/symbols"
	"github.com/rewindtrace/rewind/ringbuf"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// compatForTests and btfForTests make every recorder load the object for
// kernels without fetching atomics, and take the kernel's types from a BTF
// file (raw tracepoints): the tests set them from REWIND_TEST_COMPAT=1 and
// REWIND_TEST_BTF=FILE to run on those builds (record_test.go, TestMain).
var (
	compatForTests bool
	btfForTests    string
)

// Config is what to record.
type Config struct {
	// Events are event names and groups; empty means "default".
	Events []string
	// BufferSize is the kernel tier's size per CPU in bytes, rounded down to
	// a power of two number of 64-byte slots.
	BufferSize uint64
	// PIDs, Comms and Cgroups restrict recording to matching tasks (see
	// bpf.Filter). Cgroups are cgroup v2 directories, absolute or relative
	// to the cgroup2 mount.
	PIDs    []uint32
	Comms   []string
	Cgroups []string
	// KernelBTF is a BTF file for kernels without their own.
	KernelBTF string
	// CompatObject loads the BPF object built for kernels without fetching
	// atomics (5.10, 5.11) even where the kernel has them: for tests and
	// benchmarks of that object on a newer kernel.
	CompatObject bool
	// HistoryBytes and HistoryAge turn on the compressed history tier:
	// records drained from the kernel tier, compressed, kept up to this many
	// bytes in all and this old. Either may be zero, not both.
	HistoryBytes uint64
	HistoryAge   time.Duration
	// Stacks samples what every CPU runs this many times a second, kernel
	// and user stacks (the cpu_sample event; 0: off unless cpu_sample is
	// selected by name or group, then at DefaultStackRate). OffCPUStacks
	// records the stack of every task that blocks (offcpu_sample).
	Stacks       int
	OffCPUStacks bool
	// Counters are the counter sources to sample (counters.Config.Sources:
	// nil means the default set, "none" none), CounterRate their rate (0:
	// counters.DefaultRate) and CounterKeep how long samples are kept (0:
	// counters.DefaultKeep, or HistoryAge when that is longer).
	Counters    []string
	CounterRate float64
	CounterKeep time.Duration
	// Version names the recorder in snapshots.
	Version string
}

// DefaultStackRate is the CPU sample rate when none is given: 99 Hz, off
// the beat of the kernel's tick.
const DefaultStackRate = 99

// MaxStackRate bounds the CPU sample rate.
const MaxStackRate = 10000

// DefaultBufferSize is the kernel tier's default size per CPU.
const DefaultBufferSize = 64 << 20

// chunkEvents is how many events go into one chunk.
const chunkEvents = 1 << 16

// State is where a Recorder is in its life.
type State int

const (
	// Loaded: the programs are loaded and configured; nothing records yet.
	Loaded State = iota
	// Recording: the enabled events go into the rings.
	Recording
	// Stopped: nothing records; the rings keep what they hold, and
	// snapshots still read it.
	Stopped
	// Closed: everything is released; every method returns os.ErrClosed.
	Closed
)

func (s State) String() string {
	switch s {
	case Loaded:
		return "loaded"
	case Recording:
		return "recording"
	case Stopped:
		return "stopped"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// MarshalText names the state in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name, as a client of the daemon's JSON does.
func (s *State) UnmarshalText(b []byte) error {
	for _, v := range []State{Loaded, Recording, Stopped, Closed} {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("recorder state %q: want loaded, recording, stopped or closed", b)
}

// Recorder records the kernel into per-CPU rings. New loads it, Start and
// Stop turn recording on and off (as often as wanted), Close releases it.
//
// A Recorder is safe for concurrent use: every exported method may be
// called from any goroutine at any time. After Close each method that can
// fail returns os.ErrClosed and touches nothing the recorder freed; the
// accessors of what New fixed (CPUs, BufferBytes, CopyBytes, Config,
// Unavailable) keep answering. Control methods (Enable, SetFilter, Start, ...) are
// serialised by one lock held briefly; snapshots are taken one at a time
// (see Snapshot) without holding it, so control and Stats stay responsive
// while a snapshot is written.
type Recorder struct {
	// Set by New and never changed: read without the lock.
	cfg         Config
	sys         *System
	ringMem     *sysx.Mapping
	headMem     *sysx.Mapping
	ring        *ringbuf.Ring
	schema      *schema.Schema
	enums       map[string][]snapshot.EnumValue
	host        string
	started     uint64
	startRef    snapshot.ClockRef
	unavailable map[string]string // events a group asked for that this kernel cannot record

	// closing is closed by Close: it cancels snapshots waiting or running.
	closing chan struct{}
	// turn is held by the snapshot being taken: one at a time.
	turn chan struct{}
	// live counts the calls that read the mapped rings outside mu; Close
	// waits for them before unmapping.
	live sync.WaitGroup

	mu        sync.Mutex // guards what follows and every use of objs
	objs      *bpf.Objects
	state     State
	events    []string // selected, in catalogue order
	filter    snapshot.Filter
	stackRate int // CPU sample rate while cpu_sample is selected
	counters  *counters.Sampler
	drain     *drainer // the compressed tier's, or nil
	snaps     SnapshotStats

	// Used only by the snapshot holding turn.
	encoders []*snapshot.Encoder
	buildIDs symbols.BuildIDs
}

// SlotsFor returns the slots per CPU a buffer of size bytes holds.
func SlotsFor(size uint64) uint32 {
	n := size / bpf.SlotSize
	if n < bpf.MinSlots {
		n = bpf.MinSlots
	}
	if n > bpf.MaxSlots {
		n = bpf.MaxSlots
	}
	return uint32(1) << (bits.Len64(n) - 1)
}

// Start is New followed by Recorder.Start: it records at once.
func Start(cfg Config) (*Recorder, error) {
	r, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := r.Start(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// New checks the system, loads the programs, maps the rings, and sets the
// configuration up (events, filter, counters, history tier) without
// recording anything yet: Start begins. An event named one by one that this
// kernel cannot record is an error; one a group brings in is left out and
// listed by Unavailable.
func New(cfg Config) (_ *Recorder, err error) {
	if cfg.BufferSize == 0 {
		cfg.BufferSize = DefaultBufferSize
	}
	if cfg.Stacks < 0 || cfg.Stacks > MaxStackRate {
		return nil, fmt.Errorf("stack sampling rate %d Hz: want 1 to %d, or 0 for none", cfg.Stacks, MaxStackRate)
	}
	list := cfg.Events
	if len(list) == 0 {
		list = []string{kinds.GroupDefault}
	}
	if cfg.Stacks > 0 {
		list = append(list[:len(list):len(list)], kinds.CPUSample)
	}
	if cfg.OffCPUStacks {
		list = append(list[:len(list):len(list)], kinds.OffCPUSample)
	}
	events, explicit, err := SelectEvents(list)
	if err != nil {
		return nil, err
	}
	for _, c := range cfg.Comms {
		if len(c) > 15 {
			return nil, fmt.Errorf("task name %q: the kernel keeps at most 15 bytes of one", c)
		}
	}
	if cfg.KernelBTF == "" {
		cfg.KernelBTF = btfForTests
	}
	sys, err := CheckSystem(cfg.KernelBTF)
	if err != nil {
		return nil, err
	}
	r := &Recorder{cfg: cfg, sys: sys, closing: make(chan struct{}), turn: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count possible CPUs: %w", err)
	}
	slots := SlotsFor(cfg.BufferSize)
	r.objs, err = bpf.Load(bpf.Options{CPUs: cpus, SlotsPerCPU: slots, SelfTGID: uint32(os.Getpid()), KernelBTF: cfg.KernelBTF, Compat: cfg.CompatObject || compatForTests})
	if err != nil {
		return nil, err
	}
	if r.ringMem, err = sysx.Mmap(r.objs.RingFD(), cpus*int(slots)*bpf.SlotSize); err != nil {
		return nil, fmt.Errorf("map ring: %w", err)
	}
	if r.headMem, err = sysx.Mmap(r.objs.HeadsFD(), roundPage(cpus*bpf.HeadSize)); err != nil {
		return nil, fmt.Errorf("map ring heads: %w", err)
	}
	if r.ring, err = ringbuf.New(r.ringMem.Bytes, r.headMem.Bytes, cpus, uint64(slots)); err != nil {
		return nil, err
	}
	if r.schema, err = bpf.Schema(); err != nil {
		return nil, err
	}
	for cpu := 0; cpu < cpus; cpu++ {
		r.encoders = append(r.encoders, snapshot.NewEncoder(r.schema))
	}
	if err := r.setFilter(cfg.PIDs, cfg.Comms, cfg.Cgroups); err != nil {
		return nil, err
	}
	if r.enums, err = kernelEnums(r.schema, cfg.KernelBTF); err != nil {
		return nil, err
	}
	r.host, _ = os.Hostname()
	if r.events, r.unavailable, err = r.recordable(events, explicit); err != nil {
		return nil, err
	}
	if len(r.events) == 0 {
		return nil, fmt.Errorf("kernel %s can record none of the events asked for", sys.Uname.Release)
	}
	r.stackRate = DefaultStackRate
	if cfg.Stacks > 0 {
		r.stackRate = cfg.Stacks
	}
	if len(r.stackIDs(r.events)) > 0 {
		// Read kallsyms now, not in the first snapshot with stacks; a
		// failure shows in that snapshot.
		go symbols.Warm(kallsymsPath)
	}
	if cfg.HistoryBytes > 0 || cfg.HistoryAge > 0 {
		if r.drain, err = r.newDrainer(cfg.HistoryBytes, cfg.HistoryAge); err != nil {
			return nil, err
		}
	}
	keep := cfg.CounterKeep
	if keep == 0 {
		keep = max(counters.DefaultKeep, cfg.HistoryAge)
	}
	if r.counters, err = counters.New(counters.Config{Sources: cfg.Counters, RateHz: cfg.CounterRate, Keep: keep, CPUs: cpus}); err != nil {
		return nil, err
	}
	boot, mono, real := sysx.Clocks()
	r.startRef = snapshot.ClockRef{Name: "start", BoottimeNS: boot, MonotonicNS: mono, RealtimeNS: real}
	r.started = uint64(boot)
	return r, nil
}

// recordable splits selected events into those this kernel records and
// those it cannot, with why. An event named one by one (explicit) that it
// cannot record is an error.
func (r *Recorder) recordable(events []bpf.Event, explicit map[string]bool) (names []string, unavailable map[string]string, err error) {
	unavailable = map[string]string{}
	for _, e := range events {
		why, bad := r.objs.Unsupported()[e.Name]
		if !bad && !e.PerfEvent() && !r.sys.HasTracepoint(e.Tracepoint) {
			why, bad = fmt.Sprintf("tracepoint %s is not in %s/available_events", e.Tracepoint, sysx.Tracefs), true
		}
		switch {
		case bad && explicit[e.Name]:
			return nil, nil, fmt.Errorf("event %s: kernel %s cannot record it: %s", e.Name, r.sys.Uname.Release, why)
		case bad:
			unavailable[e.Name] = why
		default:
			names = append(names, e.Name)
		}
	}
	return names, unavailable, nil
}

func roundPage(n int) int {
	p := sysx.PageSize()
	return (n + p - 1) / p * p
}

// Start begins recording the selected events, sampling the counters and
// draining the history tier. A stopped recorder starts again where it
// stopped: the rings still hold what they held.
func (r *Recorder) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.state {
	case Closed:
		return os.ErrClosed
	case Recording:
		return nil
	}
	for _, name := range r.events {
		if err := r.attach(name); err != nil {
			r.detachAll()
			return err
		}
	}
	if err := r.counters.Start(); err != nil {
		r.detachAll()
		return err
	}
	if r.drain != nil {
		r.drain.run(true)
	}
	r.state = Recording
	return nil
}

// Stop stops recording: the programs record nothing more, the counters are
// no longer sampled, the history tier drains what the rings hold and then
// rests. Snapshots still read what was recorded; Start goes on.
func (r *Recorder) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.state {
	case Closed:
		return os.ErrClosed
	case Loaded, Stopped:
		return nil
	}
	err := errors.Join(r.detachAll(), r.counters.Stop())
	if r.drain != nil {
		r.drain.run(false)
	}
	r.state = Stopped
	return err
}

// attach turns one selected event on in the kernel. Call with mu held.
func (r *Recorder) attach(name string) error {
	if name == cpuSample {
		return r.objs.EnableSamples(r.stackRate)
	}
	return r.objs.Enable(name)
}

// detach turns one event off in the kernel and detaches its program, so
// that a disabled event or a stopped recorder costs nothing. Call with mu
// held.
func (r *Recorder) detach(name string) error {
	if name == cpuSample {
		return r.objs.DisableSamples()
	}
	return r.objs.Detach(name)
}

// detachAll turns every selected event off. Call with mu held.
func (r *Recorder) detachAll() error {
	var errs []error
	for _, name := range r.events {
		errs = append(errs, r.detach(name))
	}
	return errors.Join(errs...)
}

// Close stops recording, detaches the programs and restores the system.
// Snapshots waiting or being written are cancelled. It is safe to call
// twice, and from any goroutine.
func (r *Recorder) Close() error {
	r.mu.Lock()
	if r.state == Closed {
		r.mu.Unlock()
		return nil
	}
	r.state = Closed
	if r.closing != nil {
		close(r.closing)
	}
	r.mu.Unlock()

	var errs []error
	if r.drain != nil {
		r.drain.close()
	}
	r.live.Wait() // no snapshot reads the rings any more
	if r.counters != nil {
		errs = append(errs, r.counters.Close())
	}
	if r.drain != nil {
		errs = append(errs, r.drain.wake.Close())
	}
	if r.objs != nil {
		errs = append(errs, r.objs.Close())
	}
	errs = append(errs, r.ringMem.Close(), r.headMem.Close())
	if r.sys != nil {
		errs = append(errs, r.sys.Close())
	}
	return errors.Join(errs...)
}

// enter checks the recorder is open and registers a call that reads the
// mapped rings; call the result when done.
func (r *Recorder) enter() (done func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == Closed {
		return nil, os.ErrClosed
	}
	r.live.Add(1)
	return r.live.Done, nil
}
