package analyze

import (
	"sort"
	"strings"

	"github.com/rewindtrace/rewind/analyze/hist"
)

// Label is one name=value pair of a series.
type Label struct {
	Name, Value string
}

// Labels are a series' labels in a fixed order.
type Labels []Label

// Get returns the value of the named label, or "".
func (l Labels) Get(name string) string {
	for _, x := range l {
		if x.Name == name {
			return x.Value
		}
	}
	return ""
}

func (l Labels) key() string {
	var b strings.Builder
	for _, x := range l {
		b.WriteString(x.Name)
		b.WriteByte(0)
		b.WriteString(x.Value)
		b.WriteByte(0)
	}
	return b.String()
}

// Units.
const (
	UnitNanoseconds = "ns"
	UnitBytes       = "bytes"
)

// Series is one histogram of an analysis: its name, labels and values.
type Series struct {
	Name   string
	Labels Labels
	Unit   string
	Hist   *hist.Histogram
}

// Counter is one counted quantity.
type Counter struct {
	Name   string
	Labels Labels
	Value  uint64
}

// Process is one process's summary over the analysed span, like lttngtop's.
type Process struct {
	PID       uint32
	Comm      string
	OnCPU     uint64 // ns
	OffCPU    uint64 // ns, switched out not runnable
	RunqWait  uint64 // ns runnable but not running
	Syscalls  uint64
	SyscallNS uint64 // time inside syscalls that returned
	Errors    uint64 // syscalls that returned an error
	IOOps     uint64 // block requests issued for it
	IOBytes   uint64
	Faults    uint64 // page faults, user and kernel
}

// Result is what an analysis of a snapshot found.
type Result struct {
	Histograms []*Series
	Counters   []Counter
	Processes  []Process
	// Rates are the counter series' per-interval rates and levels.
	Rates []Rates
	// Profiles are the stack samples, by event.
	Profiles []Profile
	// Skipped says, per analysis asked for but not run, why: usually that
	// the snapshot lacks its events.
	Skipped map[string]string
	// Span is the analysed time range; Events the events read; Lost the
	// events the snapshot reports lost inside it.
	FirstNS, LastNS uint64
	Events          uint64
	Lost            uint64
	LostByCPU       map[int]uint64
	// Damaged counts chunks that could not be read.
	Damaged int
}

// Find returns the series with the name and labels (in any order), or nil.
func (r *Result) Find(name string, labels ...Label) *Series {
	for _, s := range r.Histograms {
		if s.Name != name || len(s.Labels) != len(labels) {
			continue
		}
		match := true
		for _, l := range labels {
			if s.Labels.Get(l.Name) != l.Value {
				match = false
			}
		}
		if match {
			return s
		}
	}
	return nil
}

// sortResult orders series by name, then by count, largest first.
func (r *Result) sortResult() {
	sort.SliceStable(r.Histograms, func(i, j int) bool {
		a, b := r.Histograms[i], r.Histograms[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if ab, bb := a.Labels.Get("by"), b.Labels.Get("by"); ab != bb {
			if ra, rb := byOrder(ab), byOrder(bb); ra != rb {
				return ra < rb
			}
			return ab < bb
		}
		if a.Hist.Count() != b.Hist.Count() {
			return a.Hist.Count() > b.Hist.Count()
		}
		return a.Labels.key() < b.Labels.key()
	})
	sort.SliceStable(r.Counters, func(i, j int) bool {
		a, b := r.Counters[i], r.Counters[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Value != b.Value {
			return a.Value > b.Value
		}
		return a.Labels.key() < b.Labels.key()
	})
	sort.SliceStable(r.Processes, func(i, j int) bool {
		a, b := r.Processes[i], r.Processes[j]
		if a.OnCPU != b.OnCPU {
			return a.OnCPU > b.OnCPU
		}
		return a.PID < b.PID
	})
}

// byOrder ranks a series' dimension: totals first, processes last.
func byOrder(by string) int {
	for i, d := range []string{"all", "cpu", "state", "syscall", "device", "process"} {
		if by == d {
			return i
		}
	}
	return 6
}
