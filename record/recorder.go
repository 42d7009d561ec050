package record

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"

	"github.com/rewindtrace/rewind/bpf"
	"github.com/rewindtrace/rewind/internal/sysx"
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
	// Version names the recorder in snapshots.
	Version string
}

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
	drainErr atomic.Value
	started  uint64
	startRef snapshot.ClockRef

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
	events, explicit, err := SelectEvents(cfg.Events)
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
		if !bad && !sys.HasTracepoint(e.Tracepoint) {
			why, bad = fmt.Sprintf("tracepoint %s is not in %s/available_events", e.Tracepoint, sysx.Tracefs), true
		}
		if bad {
			if explicit[e.Name] {
				return nil, fmt.Errorf("event %s: kernel %s cannot record it: %s", e.Name, sys.Uname.Release, why)
			}
			r.unavailable[e.Name] = why
			continue
		}
		if err := r.objs.Enable(e.Name); err != nil {
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
	return r, nil
}

// SetFilter replaces the in-kernel filter while recording goes on; empty
// lists lift it. Snapshots record the filter active when they are taken.
func (r *Recorder) SetFilter(pids []uint32, comms, cgroups []string) error {
	f := bpf.Filter{PIDs: pids, Comms: comms}
	var paths []string
	for _, c := range cgroups {
		path, err := cgroupPath(c)
		if err != nil {
			return err
		}
		id, err := sysx.CgroupID(path)
		if err != nil {
			return err
		}
		f.CgroupIDs = append(f.CgroupIDs, id)
		paths = append(paths, path)
	}
	if err := r.objs.SetFilter(f); err != nil {
		return err
	}
	r.filterMu.Lock()
	r.filter = snapshot.Filter{PIDs: pids, Comms: comms, Cgroups: paths}
	r.filterMu.Unlock()
	return nil
}

// cgroupPath resolves a cgroup given absolutely or relative to the cgroup2
// mount.
func cgroupPath(c string) (string, error) {
	if filepath.IsAbs(c) {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	mnt, err := sysx.Cgroup2Mount()
	if err != nil {
		return "", fmt.Errorf("cgroup %s: %w", c, err)
	}
	path := filepath.Join(mnt, c)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("cgroup %s: not a directory here or under %s", c, mnt)
	}
	return path, nil
}

// Enable turns an event on while recording goes on, attaching its program
// the first time; Disable turns it off. Neither reloads anything.
func (r *Recorder) Enable(name string) error {
	if err := r.objs.Enable(name); err != nil {
		return err
	}
	r.filterMu.Lock()
	defer r.filterMu.Unlock()
	for _, e := range r.events {
		if e == name {
			return nil
		}
	}
	r.events = append(r.events, name)
	return nil
}

// Disable turns an event off; see Enable.
func (r *Recorder) Disable(name string) error {
	if err := r.objs.Disable(name); err != nil {
		return err
	}
	r.filterMu.Lock()
	defer r.filterMu.Unlock()
	for i, e := range r.events {
		if e == name {
			r.events = append(r.events[:i:i], r.events[i+1:]...)
		}
	}
	return nil
}

// Unavailable returns the events a group asked for that this kernel cannot
// record, with the reason; snapshots carry it too.
func (r *Recorder) Unavailable() map[string]string { return r.unavailable }

func roundPage(n int) int {
	p := sysx.PageSize()
	return (n + p - 1) / p * p
}

// Events are the names of the events being recorded.
func (r *Recorder) Events() []string {
	r.filterMu.Lock()
	defer r.filterMu.Unlock()
	return append([]string(nil), r.events...)
}

// CPUs is the number of per-CPU rings.
func (r *Recorder) CPUs() int { return r.ring.CPUs() }

// BufferBytes is the kernel tier's size per CPU.
func (r *Recorder) BufferBytes() uint64 { return r.ring.SlotsPerCPU() * ringbuf.SlotSize }

// CopyBytes is the memory per CPU that snapshots copy the ring into.
func (r *Recorder) CopyBytes() uint64 { return r.ring.CopyBytes() }

// Result describes a written snapshot.
type Result struct {
	Path   string
	Bytes  int64
	Events uint64
	Lost   uint64
	// Windows are the per-CPU rings as read; their records live in the
	// recorder's copy buffers, which the next snapshot reuses.
	Windows []*ringbuf.Window
	// ReadTime is how long copying the rings took; Total runs from the
	// trigger to the file being in place.
	ReadTime, Total time.Duration
}

// FileName is the default name of a snapshot: host and UTC time.
func FileName(host string, t time.Time) string {
	host = strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r < 32 {
			return '_'
		}
		return r
	}, host)
	return fmt.Sprintf("rewind-%s-%s.rwd", host, t.UTC().Format("20060102T150405.000Z"))
}

// SnapshotTo writes a snapshot into dir under FileName, with a numeric
// suffix when that name is taken.
func (r *Recorder) SnapshotTo(dir string, trig snapshot.Trigger) (*Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshot(freePath(dir, FileName(r.host, time.Now())), trig)
}

// freePath returns dir/name, or dir/name-N.rwd for the first N not taken.
func freePath(dir, name string) string {
	path := filepath.Join(dir, name)
	for i := 1; ; i++ {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			return path
		}
		path = filepath.Join(dir, fmt.Sprintf("%s-%d.rwd", strings.TrimSuffix(name, ".rwd"), i))
	}
}

// Snapshot writes what the rings hold to path. Recording goes on while the
// rings are read: nothing is paused, so nothing is lost to the snapshot.
func (r *Recorder) Snapshot(path string, trig snapshot.Trigger) (*Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshot(path, trig)
}

// snapshotNice is the nice value the threads copying and encoding a
// snapshot run at, so that a loaded machine cannot starve a snapshot.
const snapshotNice = -10

func (r *Recorder) snapshot(path string, trig snapshot.Trigger) (_ *Result, err error) {
	if r.closed {
		return nil, os.ErrClosed
	}
	defer boost()()
	t0 := time.Now()
	taken := sysx.BootNow()
	res := &Result{Path: path, Windows: make([]*ringbuf.Window, r.ring.CPUs())}
	var wg sync.WaitGroup
	errs := make([]error, r.ring.CPUs())
	for cpu := range res.Windows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer boost()()
			res.Windows[cpu], errs[cpu] = r.ring.Read(cpu)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	res.ReadTime = time.Since(t0)

	meta, err := r.meta(taken, trig, res.Windows)
	if err != nil {
		return nil, err
	}
	procs, err := ReadProcs("/proc")
	if err != nil {
		return nil, fmt.Errorf("read process table: %w", err)
	}
	w, err := snapshot.Create(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	if err := w.WriteMeta(meta); err != nil {
		return nil, err
	}
	if err := w.WriteSchema(r.schema); err != nil {
		return nil, err
	}
	if err := w.WriteProcs(procs); err != nil {
		return nil, err
	}
	if res.Events, res.Lost, err = r.writeChunks(w, res.Windows); err != nil {
		return nil, err
	}
	if err := w.Commit(); err != nil {
		return nil, err
	}
	res.Bytes = int64(w.Size())
	res.Total = time.Since(t0)
	return res, nil
}

// boost locks the goroutine to its thread and raises the thread's priority
// to snapshotNice; call the result to undo both.
func boost() func() {
	runtime.LockOSThread()
	restore := sysx.RaiseThreadPriority(snapshotNice)
	return func() {
		restore()
		runtime.UnlockOSThread()
	}
}

type encoded struct {
	payload []byte
	sum     snapshot.ChunkSummary
}

// writeChunks writes, for each CPU, the compressed tier's blocks as they
// are, then the kernel tier's records from where the blocks end: nothing
// twice, and a gap at the seam counted as lost. It encodes each CPU's
// records in a goroutine of its own and writes chunks as they are ready.
func (r *Recorder) writeChunks(w *snapshot.Writer, windows []*ringbuf.Window) (events, lost uint64, err error) {
	out := make(chan encoded, 2*len(windows))
	errc := make(chan error, len(windows))
	var wg sync.WaitGroup
	for _, win := range windows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer boost()()
			start := win.First
			if r.drain != nil {
				blocks, next := r.drain.tier.Blocks(win.CPU)
				for _, b := range blocks {
					out <- encoded{b.Payload, b.Sum}
				}
				if len(blocks) > 0 {
					start = next
				}
			}
			enc := snapshot.NewEncoder(r.schema)
			errc <- win.BatchesFrom(start, chunkEvents, func(b ringbuf.Batch) error {
				p, sum, err := enc.EncodeChunk(snapshot.ChunkInput{CPU: win.CPU, Events: b.Events, FirstSeq: b.FirstSeq, NextSeq: b.NextSeq, Lost: b.Lost})
				if err != nil {
					return fmt.Errorf("cpu %d: %w", win.CPU, err)
				}
				out <- encoded{p, sum}
				return nil
			})
		}()
	}
	go func() { wg.Wait(); close(out) }()
	var werr error
	for c := range out {
		if werr == nil {
			werr = w.WriteChunk(c.payload, c.sum)
		}
		events += uint64(c.sum.Events)
		lost += c.sum.Lost
	}
	close(errc)
	errs := []error{werr}
	for err := range errc {
		errs = append(errs, err)
	}
	return events, lost, errors.Join(errs...)
}

func (r *Recorder) meta(taken uint64, trig snapshot.Trigger, windows []*ringbuf.Window) (*snapshot.Meta, error) {
	boot, mono, real := sysx.Clocks()
	u := r.sys.Uname
	m := &snapshot.Meta{
		Recorder:  r.cfg.Version,
		Host:      r.host,
		Kernel:    snapshot.Kernel{Sysname: u.Sysname, Release: u.Release, Version: u.Version, Machine: u.Machine},
		CPUs:      r.ring.CPUs(),
		PageSize:  sysx.PageSize(),
		Clock:     "boottime",
		ClockRefs: []snapshot.ClockRef{r.startRef, {Name: "snapshot", BoottimeNS: boot, MonotonicNS: mono, RealtimeNS: real}},
		StartedNS: r.started,
		TakenNS:   taken,
		Trigger:   trig,
	}
	r.filterMu.Lock()
	m.Recording = snapshot.Recording{
		Events:      append([]string(nil), r.events...),
		SlotSize:    ringbuf.SlotSize,
		SlotsPerCPU: r.ring.SlotsPerCPU(),
		BufferBytes: r.BufferBytes(),
		Filter:      r.filter,
	}
	r.filterMu.Unlock()
	if d := r.drain; d != nil {
		st := d.stats()
		m.Recording.History = &snapshot.History{
			BudgetBytes: r.cfg.HistoryBytes, MaxAgeNS: uint64(r.cfg.HistoryAge),
			HeldEvents: st.Held.Events, HeldBytes: st.Held.Bytes, EvictedEvents: st.Evicted.Events,
			DrainedEvents: st.Drained, LostEvents: st.Lost, DrainCPUNS: uint64(st.CPU),
		}
	}
	misses, err := r.objs.Misses()
	if err != nil {
		return nil, err
	}
	m.ProgramMisses = misses
	m.Enums = r.enums
	m.Unavailable = r.unavailable
	for _, w := range windows {
		m.CPUDropped = append(m.CPUDropped, w.Dropped)
	}
	return m, nil
}

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
	if r.objs != nil {
		errs = append(errs, r.objs.Close())
	}
	errs = append(errs, r.ringMem.Close(), r.headMem.Close())
	if r.sys != nil {
		errs = append(errs, r.sys.Close())
	}
	return errors.Join(errs...)
}
