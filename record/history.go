package record

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bpfringbuf "github.com/cilium/ebpf/ringbuf"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/ringbuf"
	"github.com/rewindtrace/rewind/snapshot"
)

// The drainer moves records from the kernel tier into the compressed tier
// without a wakeup per event: the programs signal it each time a CPU's
// ring fills by drainThreshold slots (a watermark), and a timer makes it
// look anyway, for what trickles in below the mark.

// drainInterval is how often the drainer looks without a signal.
const drainInterval = 100 * time.Millisecond

// drainThreshold is how many slots must wait in a CPU's ring before a drain
// moves them, and the watermark the programs signal at: a full chunk, or a
// quarter of a small ring (a power of two either way). Records stay in the
// ring until then, where snapshots find them; small blocks would cost their
// fixed overhead per few events.
func drainThreshold(slots uint64) uint64 { return min(chunkEvents, slots/4) }

// drainer drains on its own thread, into its own copy buffer, so that it
// runs alongside snapshots.
type drainer struct {
	r       *Recorder
	tier    *ringbuf.Tier
	enc     *snapshot.Encoder
	buf     []byte             // chunkEvents slots: what one read copies
	wake    *bpfringbuf.Reader // the programs' watermark signals
	cursors []uint64           // per CPU: the next sequence number to drain
	ctl     chan drainCtl
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	mu      sync.Mutex // guards the totals
	drained uint64
	lostCPU []uint64 // sequence numbers lost between drains, per CPU
	cpu     time.Duration
	drains  int
	signals int
	err     error // the last drain's, nil once one succeeds
}

// drainCtl asks the drainer to run or rest (run set) or to drain now,
// and waits on reply until it has.
type drainCtl struct {
	run   *bool
	reply chan error
}

// newDrainer makes the drainer of a new tier, resting until run.
func (r *Recorder) newDrainer(maxBytes uint64, maxAge time.Duration) (*drainer, error) {
	tier, err := ringbuf.NewTier(r.ring.CPUs(), maxBytes, uint64(maxAge))
	if err != nil {
		return nil, err
	}
	wake, err := bpfringbuf.NewReader(r.objs.WakeMap())
	if err != nil {
		return nil, fmt.Errorf("open watermark signals: %w", err)
	}
	if err := r.objs.SetWake(drainThreshold(r.ring.SlotsPerCPU())); err != nil {
		wake.Close()
		return nil, err
	}
	cpus := r.ring.CPUs()
	d := &drainer{r: r, tier: tier, enc: snapshot.NewEncoder(r.schema), buf: make([]byte, chunkEvents*ringbuf.SlotSize),
		wake: wake, cursors: make([]uint64, cpus), lostCPU: make([]uint64, cpus),
		ctl: make(chan drainCtl), stop: make(chan struct{}), done: make(chan struct{})}
	signals := make(chan struct{}, 1)
	go d.listen(signals)
	go d.loop(signals)
	return d, nil
}

// listen forwards the programs' watermark signals, coalesced, until the
// reader is closed.
func (d *drainer) listen(signals chan<- struct{}) {
	defer boost()()
	var rec bpfringbuf.Record
	for {
		if err := d.wake.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		select {
		case signals <- struct{}{}:
		default:
		}
	}
}

func (d *drainer) loop(signals <-chan struct{}) {
	defer close(d.done)
	// One thread, so that its CPU time is the drain's, at the snapshots'
	// priority: a drain that falls a ring behind loses events.
	defer boost()()
	ticker := time.NewTicker(drainInterval)
	defer ticker.Stop()
	threshold := drainThreshold(d.r.ring.SlotsPerCPU())
	running := false
	for {
		var tick <-chan time.Time
		var signal <-chan struct{}
		if running {
			tick, signal = ticker.C, signals
		}
		select {
		case <-d.stop:
			return
		case c := <-d.ctl:
			var err error
			if c.run != nil {
				running = *c.run
			}
			if c.run == nil || !running {
				// A drain asked for, or a stop: everything recorded
				// so far goes into the tier.
				err = d.drainOnce(1)
			}
			c.reply <- err
		case <-signal:
			d.mu.Lock()
			d.signals++
			d.mu.Unlock()
			d.drainOnce(threshold)
		case <-tick:
			d.drainOnce(threshold)
		}
	}
}

// run makes the drainer run or rest; resting, it first drains everything.
func (d *drainer) run(on bool) {
	reply := make(chan error, 1)
	select {
	case d.ctl <- drainCtl{run: &on, reply: reply}:
		<-reply
	case <-d.done:
	}
}

// drainNow drains every record published so far.
func (d *drainer) drainNow(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case d.ctl <- drainCtl{reply: reply}:
	case <-d.done:
		return os.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drainOnce moves the new records of every CPU with at least threshold of
// them into the tier, up to where the CPU's ring was when it began.
func (d *drainer) drainOnce(threshold uint64) error {
	t0 := sysx.ThreadCPUTime()
	now := sysx.BootNow()
	ring := d.r.ring
	var drained uint64
	lostCPU := make([]uint64, len(d.cursors))
	var err error
	for cpu := range d.cursors {
		head := ring.Head(cpu)
		for err == nil && head > d.cursors[cpu] && head-d.cursors[cpu] >= threshold {
			var w *ringbuf.Window
			if w, err = ring.ReadRange(cpu, d.cursors[cpu], d.buf); err != nil {
				break
			}
			err = w.Batches(chunkEvents, func(b ringbuf.Batch) error {
				p, sum, err := d.enc.EncodeChunk(snapshot.ChunkInput{CPU: cpu, Events: b.Events, FirstSeq: b.FirstSeq, NextSeq: b.NextSeq, Lost: b.Lost})
				if err != nil {
					return err
				}
				d.tier.Add(cpu, ringbuf.Block{Payload: p, Sum: sum}, b.NextSeq, now)
				drained += uint64(len(b.Events))
				lostCPU[cpu] += b.Lost
				return nil
			})
			if err != nil || w.Next <= d.cursors[cpu] {
				break // failed, or the next slot is being written: the next drain starts there
			}
			d.cursors[cpu] = w.Next
		}
	}
	d.mu.Lock()
	d.drained += drained
	for cpu, n := range lostCPU {
		d.lostCPU[cpu] += n
	}
	d.cpu += sysx.ThreadCPUTime() - t0
	d.drains++
	d.err = err
	d.mu.Unlock()
	return err
}

func (d *drainer) close() {
	d.once.Do(func() {
		close(d.stop)
		d.wake.Close()
	})
	<-d.done
}

// Drain moves every record published so far from the kernel tier into the
// compressed tier, at once, and returns when it is done: what a test does
// between steps of a workload instead of waiting for the watermark or the
// timer. Without a compressed tier it does nothing.
func (r *Recorder) Drain(ctx context.Context) error {
	done, err := r.enter()
	if err != nil {
		return err
	}
	defer done()
	if r.drain == nil {
		return nil
	}
	return r.drain.drainNow(ctx)
}

// HistoryStats describe the compressed tier.
type HistoryStats struct {
	Held    ringbuf.TierCounts `json:"held"`    // what it holds now
	Evicted ringbuf.TierCounts `json:"evicted"` // what it dropped, oldest first
	Drained uint64             `json:"drained_events"`
	// Lost counts events the kernel tier overwrote before a drain reached
	// them; LostPerCPU splits it by CPU.
	Lost       uint64        `json:"lost_events"`
	LostPerCPU []uint64      `json:"lost_per_cpu"`
	CPU        time.Duration `json:"drain_cpu_ns"` // CPU time spent draining and compressing
	Drains     int           `json:"drains"`
	// Signals counts the drains the programs' watermark asked for.
	Signals int `json:"watermark_signals"`
	// Err is the last drain's failure, if it failed: the tier stops
	// growing until a drain succeeds again.
	Err error `json:"-"`
}

// stats reads the totals.
func (d *drainer) stats() HistoryStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := HistoryStats{Held: d.tier.Held(), Evicted: d.tier.Evicted(), Drained: d.drained,
		LostPerCPU: append([]uint64(nil), d.lostCPU...), CPU: d.cpu, Drains: d.drains, Signals: d.signals, Err: d.err}
	for _, n := range d.lostCPU {
		s.Lost += n
	}
	return s
}
