package record

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/record/symbols"
	"github.com/rewindtrace/rewind/ringbuf"
	"github.com/rewindtrace/rewind/snapshot"
)

// Result describes a written snapshot.
type Result struct {
	Path   string
	Bytes  int64
	Events uint64
	Lost   uint64
	// Samples counts the counter samples written, over every series.
	Samples uint64
	// Windows are the per-CPU rings as read; their records live in the
	// recorder's copy buffers, which the next snapshot reuses.
	Windows []*ringbuf.Window
	// ReadTime is how long copying the rings took; EncodeTime runs from
	// there to the last section written (page cache only); CommitTime is
	// the fsync and rename that put the file in place; Total runs from the
	// trigger to the file being in place.
	ReadTime, EncodeTime, CommitTime, Total time.Duration
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
	defer sysx.RaiseAutogroupPriority(snapshotNice)()
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
	refs := symbols.NewRefs()
	if res.Events, res.Lost, err = r.writeChunks(w, res.Windows, refs); err != nil {
		return nil, err
	}
	if !refs.Empty() {
		syms, err := symbols.Capture(refs, "/proc/kallsyms", "/proc", &r.buildIDs)
		if err != nil {
			return nil, err
		}
		if err := w.WriteSymbols(syms); err != nil {
			return nil, err
		}
	}
	for _, s := range r.counters.Series() {
		if err := w.WriteSeries(s); err != nil {
			return nil, err
		}
		res.Samples += uint64(len(s.TS))
	}
	t1 := time.Now()
	res.EncodeTime = t1.Sub(t0) - res.ReadTime
	if err := w.Commit(); err != nil {
		return nil, err
	}
	res.Bytes = int64(w.Size())
	res.CommitTime = time.Since(t1)
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
func (r *Recorder) writeChunks(w *snapshot.Writer, windows []*ringbuf.Window, refs *symbols.Refs) (events, lost uint64, err error) {
	out := make(chan encoded, 2*len(windows))
	errc := make(chan error, len(windows))
	stacks := r.stackIDs()
	cpuRefs := make([]*symbols.Refs, len(windows))
	var wg sync.WaitGroup
	for i, win := range windows {
		wg.Add(1)
		cpuRefs[i] = symbols.NewRefs()
		go func(refs *symbols.Refs) {
			defer wg.Done()
			defer boost()()
			start := win.First
			var c snapshot.Chunk
			if r.drain != nil {
				blocks, next := r.drain.tier.Blocks(win.CPU)
				for _, b := range blocks {
					if len(stacks) > 0 {
						// The stacks' frames are read back out to capture
						// their symbols; a block that fails to decode still
						// goes in, and the reader reports it.
						_ = r.addChunk(refs, stacks, b.Payload, &c)
					}
					out <- encoded{b.Payload, b.Sum}
				}
				if len(blocks) > 0 {
					start = next
				}
			}
			enc := snapshot.NewEncoder(r.schema)
			var frames []uint64
			errc <- win.BatchesFrom(start, chunkEvents, func(b ringbuf.Batch) error {
				if len(stacks) > 0 {
					frames = addRaw(refs, stacks, b.Events, frames)
				}
				p, sum, err := enc.EncodeChunk(snapshot.ChunkInput{CPU: win.CPU, Events: b.Events, FirstSeq: b.FirstSeq, NextSeq: b.NextSeq, Lost: b.Lost})
				if err != nil {
					return fmt.Errorf("cpu %d: %w", win.CPU, err)
				}
				out <- encoded{p, sum}
				return nil
			})
		}(cpuRefs[i])
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
	for _, cr := range cpuRefs {
		refs.Merge(cr)
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
		if st.Err != nil {
			m.Recording.History.Error = st.Err.Error()
		}
	}
	misses, err := r.objs.Misses()
	if err != nil {
		return nil, err
	}
	m.ProgramMisses = misses
	m.Recording.StackRate = r.stackRate
	if c := r.counters; c != nil {
		st := c.Stats()
		m.Recording.Counters = &snapshot.Counters{Sources: c.Sources(), KeepNS: uint64(c.Keep()), SamplerCPUNS: uint64(st.CPU), Missed: st.Missed}
		for _, u := range c.Unavailable() {
			if m.Recording.Counters.Unavailable == nil {
				m.Recording.Counters.Unavailable = map[string]string{}
			}
			m.Recording.Counters.Unavailable[u.Name] = u.Why
		}
		if st.Err != nil {
			m.Recording.Counters.Error = st.Err.Error()
		}
	}
	m.Enums = r.enums
	m.Unavailable = r.unavailable
	for _, w := range windows {
		m.CPUDropped = append(m.CPUDropped, w.Dropped)
	}
	return m, nil
}
