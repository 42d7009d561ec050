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

// Recorder records the kernel into per-CPU rings until Close. Snapshot may
// be called at any time, from any goroutine; snapshots are serialised.
type Recorder struct {
	cfg     Config
	sys     *System
	objs    *bpf.Objects
	ringMem *sysx.Mapping
	headMem *sysx.Mapping
	ring    *ringbuf.Ring
	schema  *schema.Schema
	events  []string
	// unavailable: events asked for through a group that this kernel
	// cannot record, and why.
	unavailable map[string]string
	enums       map[string][]snapshot.EnumValue
	host        string

	filterMu sync.Mutex // guards filter and events once recording
	filter   snapshot.Filter

	drain    *drainer // the compressed tier's, or nil
	counters *counters.Sampler
	// stackRate is the CPU sample rate, 0 when not sampling.
	stackRate int
	buildIDs  symbols.BuildIDs // guarded by mu, as snapshots are
	started   uint64
	startRef  snapshot.ClockRef

	mu     sync.Mutex
	closed bool
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

// Start checks the system, loads the programs, and starts recording.
func Start(cfg Config) (_ *Recorder, err error) {
	if cfg.BufferSize == 0 {
		cfg.BufferSize = DefaultBufferSize
	}
	if cfg.Stacks < 0 || cfg.Stacks > MaxStackRate {
		return nil, fmt.Errorf("--stacks %d: want 1 to %d samples a second per CPU, or 0 for none", cfg.Stacks, MaxStackRate)
	}
	list := cfg.Events
	if len(list) == 0 {
		list = []string{"default"}
	}
	if cfg.Stacks > 0 {
		list = append(list[:len(list):len(list)], "cpu_sample")
	}
	if cfg.OffCPUStacks {
		list = append(list[:len(list):len(list)], "offcpu_sample")
	}
	events, explicit, err := SelectEvents(list)
	if err != nil {
		return nil, err
	}
	for _, c := range cfg.Comms {
		if len(c) > 15 {
			return nil, fmt.Errorf("--comm %q: the kernel keeps at most 15 bytes of a task name", c)
		}
	}
	sys, err := CheckSystem(cfg.KernelBTF)
	if err != nil {
		return nil, err
	}
	r := &Recorder{cfg: cfg, sys: sys}
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
	r.objs, err = bpf.Load(bpf.Options{CPUs: cpus, SlotsPerCPU: slots, SelfTGID: uint32(os.Getpid()), KernelBTF: cfg.KernelBTF})
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
	if err := r.SetFilter(cfg.PIDs, cfg.Comms, cfg.Cgroups); err != nil {
		return nil, err
	}
	if r.enums, err = kernelEnums(r.schema, cfg.KernelBTF); err != nil {
		return nil, err
	}
	r.host, _ = os.Hostname()
	boot, mono, real := sysx.Clocks()
	r.startRef = snapshot.ClockRef{Name: "start", BoottimeNS: boot, MonotonicNS: mono, RealtimeNS: real}
	r.started = uint64(boot)
	r.unavailable = map[string]string{}
	for _, e := range events {
		why, bad := r.objs.Unsupported()[e.Name]
		if !bad && !e.PerfEvent() && !sys.HasTracepoint(e.Tracepoint) {
			why, bad = fmt.Sprintf("tracepoint %s is not in %s/available_events", e.Tracepoint, sysx.Tracefs), true
		}
		if bad {
			if explicit[e.Name] {
				return nil, fmt.Errorf("event %s: kernel %s cannot record it: %s", e.Name, sys.Uname.Release, why)
			}
			r.unavailable[e.Name] = why
			continue
		}
		if e.PerfEvent() {
			hz := cfg.Stacks
			if hz == 0 {
				hz = DefaultStackRate
			}
			if err := r.objs.EnableSamples(hz); err != nil {
				return nil, err
			}
			r.stackRate = hz
		} else if err := r.objs.Enable(e.Name); err != nil {
			return nil, err
		}
		r.events = append(r.events, e.Name)
	}
	if len(r.events) == 0 {
		return nil, fmt.Errorf("kernel %s can record none of the events asked for", sys.Uname.Release)
	}
	if cfg.HistoryBytes > 0 || cfg.HistoryAge > 0 {
		if err := r.startDrainer(cfg.HistoryBytes, cfg.HistoryAge); err != nil {
			return nil, err
		}
	}
	keep := cfg.CounterKeep
	if keep == 0 {
		keep = max(counters.DefaultKeep, cfg.HistoryAge)
	}
	if r.counters, err = counters.Start(counters.Config{Sources: cfg.Counters, RateHz: cfg.CounterRate, Keep: keep, CPUs: cpus}); err != nil {
		return nil, err
	}
	return r, nil
}

func roundPage(n int) int {
	p := sysx.PageSize()
	return (n + p - 1) / p * p
}

// Counters is the counter sampler.
func (r *Recorder) Counters() *counters.Sampler { return r.counters }

// CPUs is the number of per-CPU rings.
func (r *Recorder) CPUs() int { return r.ring.CPUs() }

// BufferBytes is the kernel tier's size per CPU.
func (r *Recorder) BufferBytes() uint64 { return r.ring.SlotsPerCPU() * ringbuf.SlotSize }

// CopyBytes is the memory per CPU that snapshots copy the ring into.
func (r *Recorder) CopyBytes() uint64 { return r.ring.CopyBytes() }

// Close stops recording, detaches the programs and restores the system.
// It is safe to call twice.
func (r *Recorder) Close() error {
	if r.drain != nil {
		r.drain.close() // before taking the lock the drainer takes
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	if r.counters != nil {
		errs = append(errs, r.counters.Close())
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
