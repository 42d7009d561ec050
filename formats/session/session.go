// Package session renders what a recording session reports as it runs —
// its start, the history it holds, each snapshot, the compressed tier's
// figures at its end — as `rewind record` prints them: lines for a person on
// standard error, or JSON lines on standard output (docs/JSON.md).
package session

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rewindtrace/rewind/internal/units"
	"github.com/rewindtrace/rewind/snapshot"
)

// Start is what a session records, as it starts.
type Start struct {
	Events      []string
	CPUs        int
	BufferBytes uint64 // kernel ring per CPU
	CopyBytes   uint64 // snapshot copy buffer per CPU
	// Unavailable are events a group asked for that the kernel cannot
	// record, with the reason.
	Unavailable map[string]string
	// Counters are the counter sources sampled, with their rates; kept
	// CounterKeep in CounterBytes. CountersUnavailable says why others
	// are not sampled.
	Counters            map[string]float64
	CounterKeep         time.Duration
	CounterBytes        uint64
	CountersUnavailable map[string]string
	// HistoryBytes and HistoryAge bound the compressed tier (both 0: none).
	HistoryBytes uint64
	HistoryAge   time.Duration
	PID          int
	Dir          string
}

// Estimate is how much history the rate of the first moments holds.
type Estimate struct {
	Rate, BusiestRate float64       // events a second, all CPUs and the busiest
	Kernel            time.Duration // what the busiest CPU's ring holds
	// Tier says there is a compressed tier; BytesPerEvent is what it spends
	// (0 before its first drain), TierHolds the history it holds at this
	// rate.
	Tier          bool
	BytesPerEvent float64
	TierHolds     time.Duration
}

// History is the last line of `rewind record --json` with a compressed
// tier (docs/JSON.md).
type History struct {
	DrainedEvents uint64  `json:"drained_events"`
	LostEvents    uint64  `json:"lost_events"`
	HeldEvents    uint64  `json:"held_events"`
	HeldBytes     uint64  `json:"held_bytes"`
	EvictedEvents uint64  `json:"evicted_events"`
	DrainCPUNS    int64   `json:"drain_cpu_ns"`
	CPUNSPerEvent float64 `json:"cpu_ns_per_event"`
	BytesPerEvent float64 `json:"bytes_per_event"`
	Drains        int     `json:"drains"`
	// Error is the last drain's failure, when it failed.
	Error string `json:"error,omitempty"`
}

// Printer writes a session's reports: text to Err (and snapshot lines to
// Out), or, with JSON, one JSON object a line to Out. It is not safe for
// concurrent use.
type Printer struct {
	Out, Err io.Writer
	JSON     bool
}

// Start says what the session records, warns about what it cannot, and
// tells how to take a snapshot and stop.
func (p *Printer) Start(s Start) {
	for _, name := range slices.Sorted(maps.Keys(s.Unavailable)) {
		fmt.Fprintf(p.Err, "rewind: warning: not recording %s: %s\n", name, s.Unavailable[name])
	}
	for _, name := range slices.Sorted(maps.Keys(s.CountersUnavailable)) {
		fmt.Fprintf(p.Err, "rewind: warning: not sampling %s: %s\n", name, s.CountersUnavailable[name])
	}
	cpus := uint64(s.CPUs)
	memory := fmt.Sprintf("memory %s (%s of kernel rings, %s to copy them into for snapshots)",
		units.FormatSize(cpus*(s.BufferBytes+s.CopyBytes)), units.FormatSize(cpus*s.BufferBytes), units.FormatSize(cpus*s.CopyBytes))
	if s.HistoryBytes > 0 {
		memory += fmt.Sprintf(" + up to %s of compressed history", units.FormatSize(s.HistoryBytes))
	} else if s.HistoryAge > 0 {
		memory += fmt.Sprintf(" + %s of compressed history, whatever that takes", s.HistoryAge)
	}
	if len(s.Counters) > 0 {
		memory += fmt.Sprintf(" + %s of counter samples", units.FormatSize(s.CounterBytes))
	}
	fmt.Fprintf(p.Err, "rewind: recording %s on %d CPUs into %s per CPU%s; %s; pid %d: `kill -USR1 %d` writes a snapshot to %s, Ctrl-C stops\n",
		strings.Join(s.Events, ","), s.CPUs, units.FormatSize(s.BufferBytes), describeCounters(s), memory, s.PID, s.PID, s.Dir)
}

// describeCounters says which counters are sampled, how often and for how
// long, or nothing when none are.
func describeCounters(s Start) string {
	if len(s.Counters) == 0 {
		return ""
	}
	byRate := map[float64][]string{}
	for name, hz := range s.Counters {
		byRate[hz] = append(byRate[hz], name)
	}
	var parts []string
	for _, hz := range slices.Sorted(maps.Keys(byRate)) {
		names := byRate[hz]
		slices.Sort(names)
		parts = append(parts, fmt.Sprintf("%s at %g Hz", strings.Join(names, ","), hz))
	}
	return fmt.Sprintf(", sampling counters %s, kept %v", strings.Join(parts, "; "), s.CounterKeep)
}

// Estimate says how much history the configuration holds at the rate of
// the first moments.
func (p *Printer) Estimate(e Estimate) {
	if e.Rate == 0 {
		fmt.Fprintln(p.Err, "rewind: no events in the first second; history depends on the rate to come")
		return
	}
	msg := fmt.Sprintf("rewind: at %.0f events/s (busiest CPU %.0f/s) the kernel rings hold %s of history", e.Rate, e.BusiestRate, roundDuration(e.Kernel))
	if e.Tier {
		if e.BytesPerEvent > 0 {
			msg += fmt.Sprintf("; the compressed tier holds %s more at %.2f bytes/event", roundDuration(e.TierHolds), e.BytesPerEvent)
		} else {
			msg += "; the compressed tier has drained nothing yet"
		}
	}
	fmt.Fprintln(p.Err, msg)
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d > time.Hour:
		return d.Round(time.Minute)
	case d > time.Minute:
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// Snapshot reports a written snapshot.
func (p *Printer) Snapshot(r snapshot.Report) error {
	if p.JSON {
		return json.NewEncoder(p.Out).Encode(r)
	}
	_, err := fmt.Fprintf(p.Out, "snapshot %s: %d events, %d lost, %d counter samples, %s, written in %v (%s)\n",
		r.Path, r.Events, r.Lost, r.Samples, units.FormatSize(uint64(r.Bytes)), time.Duration(r.TotalMS*1e6).Round(time.Millisecond), r.Trigger.Kind)
	return err
}

// Failed reports a snapshot that failed while recording goes on.
func (p *Printer) Failed(err error) {
	fmt.Fprintln(p.Err, "rewind: snapshot:", err)
}

// History reports what the compressed tier did.
func (p *Printer) History(h History) error {
	if h.Error != "" {
		fmt.Fprintf(p.Err, "rewind: warning: the compressed tier's last drain failed: %s\n", h.Error)
	}
	if p.JSON {
		return json.NewEncoder(p.Out).Encode(struct {
			History History `json:"history"`
		}{h})
	}
	_, err := fmt.Fprintf(p.Err, "rewind: compressed tier: drained %d events (%d lost before a drain reached them) in %v of CPU, %.0f ns/event; holds %d events in %s, %.2f bytes/event; dropped the oldest %d to fit\n",
		h.DrainedEvents, h.LostEvents, time.Duration(h.DrainCPUNS).Round(time.Millisecond), h.CPUNSPerEvent, h.HeldEvents, units.FormatSize(h.HeldBytes), h.BytesPerEvent, h.EvictedEvents)
	return err
}
