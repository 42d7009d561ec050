package record

import (
	"sync"
	"time"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/ringbuf"
	"github.com/rewindtrace/rewind/snapshot"
)

// drainInterval is how often the drainer looks: the time half a ring takes
// to fill at maxRate, within [minDrainInterval, maxDrainInterval]. It
// depends on the ring alone: an interval fitted to the rate of the moment
// would leave a small ring to a burst that follows a quiet spell. A look
// that finds little to drain reads only the heads.
func drainInterval(slots uint64) time.Duration {
	d := time.Duration(float64(slots) / 2 / maxRate * float64(time.Second))
	return min(max(d, minDrainInterval), maxDrainInterval)
}

const (
	maxRate          = 20e6 // events per second one CPU can write, with margin
	minDrainInterval = 5 * time.Millisecond
	maxDrainInterval = 100 * time.Millisecond
)

// drainer moves records from the kernel tier into the compressed tier on a
// timer: no wakeup per event, a read of what arrived since the last drain.
type drainer struct {
	tier    *ringbuf.Tier
	enc     *snapshot.Encoder
	cursors []uint64 // per CPU: the next sequence number to drain
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	// Totals, guarded by the recorder's mutex.
	drained uint64        // events moved into the tier
	lost    uint64        // sequence numbers lost between drains
	cpu     time.Duration // thread CPU time spent draining
	drains  int
	err     error // the last drain's, nil once one succeeds
}

// startDrainer starts draining into a new tier.
func (r *Recorder) startDrainer(maxBytes uint64, maxAge time.Duration) error {
	tier, err := ringbuf.NewTier(r.ring.CPUs(), maxBytes, uint64(maxAge))
	if err != nil {
		return err
	}
	d := &drainer{tier: tier, enc: snapshot.NewEncoder(r.schema), cursors: make([]uint64, r.ring.CPUs()),
		stop: make(chan struct{}), done: make(chan struct{})}
	r.drain = d
	go r.drainLoop(d)
	return nil
}

func (r *Recorder) drainLoop(d *drainer) {
	defer close(d.done)
	// One thread, so that its CPU time is the drain's, at the snapshots'
	// priority: a drain that falls a ring behind loses events.
	defer boost()()
	ticker := time.NewTicker(drainInterval(r.ring.SlotsPerCPU()))
	defer ticker.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-ticker.C:
		}
		r.mu.Lock()
		d.err = r.drainOnce(d)
		r.mu.Unlock()
	}
}

// drainThreshold is how many slots must wait in a CPU's ring before a drain
// moves them: a full chunk, or a quarter of a small ring. Records stay in
// the ring until then, where snapshots find them; small blocks would cost
// their fixed overhead per few events.
func drainThreshold(slots uint64) uint64 { return min(chunkEvents, slots/4) }

// drainOnce moves the new records of every CPU with enough of them into the
// tier. Call with r.mu held.
func (r *Recorder) drainOnce(d *drainer) error {
	t0 := sysx.ThreadCPUTime()
	defer func() {
		d.cpu += sysx.ThreadCPUTime() - t0
		d.drains++
	}()
	now := sysx.BootNow()
	threshold := drainThreshold(r.ring.SlotsPerCPU())
	for cpu := range d.cursors {
		if r.ring.Head(cpu)-d.cursors[cpu] < threshold {
			continue
		}
		w, err := r.ring.ReadRange(cpu, d.cursors[cpu])
		if err != nil {
			return err
		}
		err = w.Batches(chunkEvents, func(b ringbuf.Batch) error {
			p, sum, err := d.enc.EncodeChunk(snapshot.ChunkInput{CPU: cpu, Events: b.Events, FirstSeq: b.FirstSeq, NextSeq: b.NextSeq, Lost: b.Lost})
			if err != nil {
				return err
			}
			// The encoder reuses its buffers; the tier keeps the payload.
			d.tier.Add(cpu, ringbuf.Block{Payload: p, Sum: sum}, b.NextSeq, now)
			d.drained += uint64(len(b.Events))
			d.lost += b.Lost
			return nil
		})
		if err != nil {
			return err
		}
		d.cursors[cpu] = w.Next
	}
	return nil
}

func (d *drainer) close() {
	d.once.Do(func() { close(d.stop) })
	<-d.done
}

// HistoryStats describe the compressed tier.
type HistoryStats struct {
	Held    ringbuf.TierCounts // what it holds now
	Evicted ringbuf.TierCounts // what it dropped, oldest first
	Drained uint64             // events moved into it
	Lost    uint64             // events the kernel tier overwrote before a drain reached them
	CPU     time.Duration      // CPU time spent draining and compressing
	Drains  int
	// Err is the last drain's failure, if it failed: the tier stops
	// growing until a drain succeeds again.
	Err error
}

// History returns the compressed tier's counters; ok is false when the
// recording has no compressed tier.
func (r *Recorder) History() (s HistoryStats, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.drain
	if d == nil {
		return s, false
	}
	return d.stats(), true
}

// stats reads the counters; call with r.mu held.
func (d *drainer) stats() HistoryStats {
	return HistoryStats{Held: d.tier.Held(), Evicted: d.tier.Evicted(), Drained: d.drained, Lost: d.lost, CPU: d.cpu, Drains: d.drains, Err: d.err}
}

// Progress is a reading of how far each CPU's ring has been written.
type Progress struct {
	At    time.Time
	Heads []uint64
}

// Progress reads each CPU's ring head now.
func (r *Recorder) Progress() Progress {
	p := Progress{At: time.Now(), Heads: make([]uint64, r.ring.CPUs())}
	for cpu := range p.Heads {
		p.Heads[cpu] = r.ring.Head(cpu)
	}
	return p
}

// Estimate is how much history a recording holds at the rate it records.
type Estimate struct {
	Rate        float64       // events per second, all CPUs
	BusiestRate float64       // events per second on the busiest CPU
	Kernel      time.Duration // what the busiest CPU's ring holds
	// BytesPerEvent is what the compressed tier spends per event so far (0
	// without a tier or before its first drain); Tier is the history it
	// holds at this rate within its budget and age limit.
	BytesPerEvent float64
	Tier          time.Duration
}

// Estimate turns two Progress readings into an Estimate.
func (r *Recorder) Estimate(from, to Progress) Estimate {
	var e Estimate
	dt := to.At.Sub(from.At).Seconds()
	if dt <= 0 {
		return e
	}
	for cpu := range to.Heads {
		rate := float64(to.Heads[cpu]-from.Heads[cpu]) / dt
		e.Rate += rate
		e.BusiestRate = max(e.BusiestRate, rate)
	}
	if e.BusiestRate > 0 {
		e.Kernel = time.Duration(float64(r.ring.SlotsPerCPU()) / e.BusiestRate * float64(time.Second))
	}
	if h, ok := r.History(); ok && h.Held.Events > 0 && e.Rate > 0 {
		e.BytesPerEvent = float64(h.Held.Bytes) / float64(h.Held.Events)
		e.Tier = r.cfg.HistoryAge
		if r.cfg.HistoryBytes > 0 {
			byBudget := time.Duration(float64(r.cfg.HistoryBytes) / e.BytesPerEvent / e.Rate * float64(time.Second))
			if e.Tier == 0 || byBudget < e.Tier {
				e.Tier = byBudget
			}
		}
	}
	return e
}
