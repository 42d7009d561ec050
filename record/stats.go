package record

import (
	"maps"
	"os"
	"slices"
	"time"

	"github.com/rewindtrace/rewind/record/counters"
)

// Stats is every figure of a recorder at one moment (docs/JSON.md).
type Stats struct {
	At     time.Time `json:"at"`
	State  State     `json:"state"`
	Events []string  `json:"events"`
	// Unavailable are the events a group asked for that this kernel
	// cannot record, with the reason.
	Unavailable map[string]string `json:"unavailable"`
	// BufferBytes is the kernel tier's size per CPU, CopyBytes what
	// snapshots copy it into; MemoryBytes is everything the recorder holds:
	// rings, copy buffers, the compressed tier and the counter samples.
	BufferBytes uint64     `json:"buffer_bytes"`
	CopyBytes   uint64     `json:"copy_bytes"`
	MemoryBytes uint64     `json:"memory_bytes"`
	CPUs        []CPUStats `json:"per_cpu"`
	// Recorded counts, per event, the records the programs wrote since
	// the recorder loaded, every CPU's (events with none left out).
	Recorded map[string]uint64 `json:"recorded"`
	// Dropped and Lost sum the CPUs'.
	Dropped   uint64        `json:"dropped"`
	Lost      uint64        `json:"lost"`
	History   *HistoryStats `json:"history,omitempty"`
	Counters  CounterStats  `json:"counters"`
	StackRate int           `json:"stack_rate_hz,omitempty"`
	Snapshots SnapshotStats `json:"snapshots"`
}

// CPUStats are one CPU's ring.
type CPUStats struct {
	CPU int `json:"cpu"`
	// Slots counts the slots written since recording began: a record
	// takes one, or several (exec, stack samples).
	Slots uint64 `json:"slots"`
	// Fill is the share of the ring holding records, 0 to 1.
	Fill float64 `json:"fill"`
	// Dropped counts records the programs could not write; Lost the
	// records the kernel tier overwrote before the history tier drained
	// them (0 without one). Overwriting the oldest records of a ring is
	// not a loss: that is what a flight recorder keeps.
	Dropped uint64 `json:"dropped"`
	Lost    uint64 `json:"lost"`
}

// CounterStats describe the counter sampler.
type CounterStats struct {
	Sources     map[string]float64     `json:"sources"` // name → samples a second
	Unavailable []counters.Unavailable `json:"unavailable"`
	Keep        time.Duration          `json:"keep_ns"`
	Bytes       uint64                 `json:"bytes"`
	CPU         time.Duration          `json:"sampler_cpu_ns"`
	Missed      uint64                 `json:"missed"`
	Err         string                 `json:"error,omitempty"`
}

// Stats returns every figure at once, read under the recorder's lock.
func (r *Recorder) Stats() (Stats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == Closed {
		return Stats{}, os.ErrClosed
	}
	s := Stats{At: time.Now(), State: r.state, Events: slices.Clone(r.events), Unavailable: maps.Clone(r.unavailable),
		BufferBytes: r.BufferBytes(), CopyBytes: r.CopyBytes(), Snapshots: r.snaps}
	if slices.Contains(r.events, cpuSample) {
		s.StackRate = r.stackRate
	}
	if r.drain != nil {
		h := r.drain.stats()
		s.History = &h
	}
	slots := r.ring.SlotsPerCPU()
	for cpu := 0; cpu < r.ring.CPUs(); cpu++ {
		c := CPUStats{CPU: cpu, Slots: r.ring.Head(cpu), Dropped: r.ring.Dropped(cpu)}
		c.Fill = float64(min(c.Slots, slots)) / float64(slots)
		if s.History != nil {
			c.Lost = s.History.LostPerCPU[cpu]
		}
		s.Dropped += c.Dropped
		s.Lost += c.Lost
		s.CPUs = append(s.CPUs, c)
	}
	var err error
	if s.Recorded, err = r.objs.Counts(); err != nil {
		return Stats{}, err
	}
	cs := r.counters.Stats()
	s.Counters = CounterStats{Sources: r.counters.Sources(), Unavailable: r.counters.Unavailable(), Keep: r.counters.Keep(),
		Bytes: r.counters.Bytes(), CPU: cs.CPU, Missed: cs.Missed}
	if cs.Err != nil {
		s.Counters.Err = cs.Err.Error()
	}
	s.MemoryBytes = uint64(r.ring.CPUs())*(s.BufferBytes+s.CopyBytes) + s.Counters.Bytes
	if s.History != nil {
		s.MemoryBytes += s.History.Held.Bytes + uint64(len(r.drain.buf))
	}
	return s, nil
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

// Estimate turns two readings of Stats into an Estimate, from the slots
// written between them.
func (r *Recorder) Estimate(from, to Stats) Estimate {
	var e Estimate
	dt := to.At.Sub(from.At).Seconds()
	if dt <= 0 || len(from.CPUs) != len(to.CPUs) {
		return e
	}
	for cpu := range to.CPUs {
		rate := float64(to.CPUs[cpu].Slots-from.CPUs[cpu].Slots) / dt
		e.Rate += rate
		e.BusiestRate = max(e.BusiestRate, rate)
	}
	if e.BusiestRate > 0 {
		e.Kernel = time.Duration(float64(r.ring.SlotsPerCPU()) / e.BusiestRate * float64(time.Second))
	}
	if h := to.History; h != nil && h.Held.Events > 0 && e.Rate > 0 {
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
