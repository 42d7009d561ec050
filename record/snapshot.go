package record

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/record/symbols"
	"github.com/rewindtrace/rewind/ringbuf"
	"github.com/rewindtrace/rewind/snapshot"
)

// SnapshotRequest says where a snapshot goes and why it is taken. Set one
// of Path, Dir and Writer.
type SnapshotRequest struct {
	// Path is the file to write, atomically (a temporary file beside it,
	// synced and renamed into place).
	Path string
	// Dir is a directory to write the file into, named by FileName, with
	// a numeric suffix when that name is taken.
	Dir string
	// Writer receives the snapshot as it is encoded.
	Writer io.Writer
	// Trigger is why the snapshot is taken; it goes into the file.
	Trigger snapshot.Trigger
}

// Result describes a written snapshot.
type Result struct {
	Path   string // empty when written to a Writer
	Bytes  int64
	Events uint64
	Lost   uint64
	// Samples counts the counter samples written, over every series.
	Samples uint64
	Trigger snapshot.Trigger
	// Windows are the per-CPU rings as read; their records live in the
	// recorder's copy buffers, which the next snapshot reuses.
	Windows []*ringbuf.Window
	// ReadTime is how long copying the rings took; EncodeTime runs from
	// there to the last section written (page cache only); CommitTime is
	// the fsync and rename that put the file in place; Total runs from the
	// snapshot's turn (an earlier one may have kept it waiting) to the file
	// being in place.
	ReadTime, EncodeTime, CommitTime, Total time.Duration
}

// Report returns the result as documented in docs/JSON.md.
func (r *Result) Report() snapshot.Report {
	ms := func(d time.Duration) float64 { return d.Seconds() * 1e3 }
	return snapshot.Report{Path: r.Path, Bytes: r.Bytes, Events: r.Events, Lost: r.Lost, Samples: r.Samples, Trigger: r.Trigger,
		ReadMS: ms(r.ReadTime), EncodeMS: ms(r.EncodeTime), CommitMS: ms(r.CommitTime), TotalMS: ms(r.Total)}
}

// SnapshotStats count the snapshots a recorder took.
type SnapshotStats struct {
	Taken  uint64 `json:"taken"`
	Failed uint64 `json:"failed"`
	// Last is the last one written, LastError the last failure's.
	Last      *snapshot.Report `json:"last,omitempty"`
	LastError string           `json:"last_error,omitempty"`
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

// Snapshot writes what the rings hold (and the history tier, the counter
// samples and the process table) where req says. Recording goes on while
// the rings are read: nothing is paused, so nothing is lost to the
// snapshot. It works in every state but Closed; stopped, it writes what was
// recorded before the stop.
//
// Snapshots are queued: one is taken at a time, each request getting a
// snapshot of its own when its turn comes, never interleaved with another.
// ctx bounds the wait and the work: cancelled, the request returns
// ctx.Err() and leaves no file (a Writer keeps what it was given). Close
// cancels the requests waiting and the one being written.
func (r *Recorder) Snapshot(ctx context.Context, req SnapshotRequest) (res *Result, err error) {
	n := 0
	for _, set := range []bool{req.Path != "", req.Dir != "", req.Writer != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("snapshot: give one of a path, a directory and a writer")
	}
	defer func() {
		if errors.Is(err, os.ErrClosed) {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.snaps.Failed++
			r.snaps.LastError = err.Error()
			return
		}
		r.snaps.Taken++
		rep := res.Report()
		r.snaps.Last = &rep
	}()
	select {
	case r.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.closing:
		return nil, os.ErrClosed
	}
	defer func() { <-r.turn }()
	done, err := r.enter()
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	return r.snapshot(ctx, req)
}

// kallsymsPath is where the kernel's symbols are read from.
const kallsymsPath = "/proc/kallsyms"

// snapshotNice is the nice value the threads copying and encoding a
// snapshot run at, so that a loaded machine cannot starve a snapshot.
const snapshotNice = -10

// capture is what a snapshot takes from the recorder's state under its
// lock, at the moment the rings are read.
type capture struct {
	events    []string
	filter    snapshot.Filter
	misses    map[string]uint64
	stackRate int
}

func (r *Recorder) capture() (capture, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := capture{events: append([]string(nil), r.events...), filter: r.filter, stackRate: r.stackRate}
	var err error
	c.misses, err = r.objs.Misses()
	return c, err
}

func (r *Recorder) snapshot(ctx context.Context, req SnapshotRequest) (_ *Result, err error) {
	defer boost()()
	defer sysx.RaiseAutogroupPriority(snapshotNice)()
	t0 := time.Now()
	taken := sysx.BootNow()
	res := &Result{Windows: make([]*ringbuf.Window, r.ring.CPUs()), Trigger: req.Trigger}
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
	state, err := r.capture()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	meta := r.meta(taken, req.Trigger, res.Windows, state)
	procs, err := ReadProcs("/proc")
	if err != nil {
		return nil, fmt.Errorf("read process table: %w", err)
	}
	var w *snapshot.Writer
	switch {
	case req.Writer != nil:
		w = snapshot.NewWriter(req.Writer)
	case req.Dir != "":
		res.Path = freePath(req.Dir, FileName(r.host, time.Now()))
	default:
		res.Path = req.Path
	}
	if w == nil {
		if w, err = snapshot.Create(res.Path); err != nil {
			return nil, err
		}
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
	if res.Events, res.Lost, err = r.writeChunks(ctx, w, res.Windows, refs, r.stackIDs(state.events)); err != nil {
		return nil, err
	}
	if !refs.Empty() {
		syms, err := symbols.Capture(refs, kallsymsPath, "/proc", &r.buildIDs)
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
	if err := ctx.Err(); err != nil {
		return nil, err
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
// records in a goroutine of its own, with that CPU's encoder, and writes
// chunks as they are ready.
func (r *Recorder) writeChunks(ctx context.Context, w *snapshot.Writer, windows []*ringbuf.Window, refs *symbols.Refs, stacks []uint16) (events, lost uint64, err error) {
	out := make(chan encoded, 2*len(windows))
	errc := make(chan error, len(windows))
	cpuRefs := make([]*symbols.Refs, len(windows))
	var wg sync.WaitGroup
	for i, win := range windows {
		wg.Add(1)
		cpuRefs[i] = symbols.NewRefs()
		go func(refs *symbols.Refs, enc *snapshot.Encoder) {
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
			var frames []uint64
			first := true
			errc <- win.BatchesFrom(start, chunkEvents, func(b ringbuf.Batch) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				if first && start < b.FirstSeq {
					// The drain fell behind: what the ring overwrote
					// between the tier's end and the window is lost.
					b.Lost += b.FirstSeq - start
					b.FirstSeq = start
				}
				first = false
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
		}(cpuRefs[i], r.encoders[win.CPU])
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

func (r *Recorder) meta(taken uint64, trig snapshot.Trigger, windows []*ringbuf.Window, c capture) *snapshot.Meta {
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
		Recording: snapshot.Recording{
			Events:      c.events,
			SlotSize:    ringbuf.SlotSize,
			SlotsPerCPU: r.ring.SlotsPerCPU(),
			BufferBytes: r.BufferBytes(),
			Filter:      c.filter,
		},
		ProgramMisses: c.misses,
		Enums:         r.enums,
		Unavailable:   r.unavailable,
	}
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
	if slices.Contains(c.events, cpuSample) {
		m.Recording.StackRate = c.stackRate
	}
	cs := r.counters.Stats()
	m.Recording.Counters = &snapshot.Counters{Sources: r.counters.Sources(), KeepNS: uint64(r.counters.Keep()), SamplerCPUNS: uint64(cs.CPU), Missed: cs.Missed}
	for _, u := range r.counters.Unavailable() {
		if m.Recording.Counters.Unavailable == nil {
			m.Recording.Counters.Unavailable = map[string]string{}
		}
		m.Recording.Counters.Unavailable[u.Name] = u.Why
	}
	if cs.Err != nil {
		m.Recording.Counters.Error = cs.Err.Error()
	}
	for _, w := range windows {
		m.CPUDropped = append(m.CPUDropped, w.Dropped)
	}
	return m
}
