package report

import (
	"encoding/json"
	"io"

	"github.com/rewindtrace/rewind/analyze"
)

// Snapshot describes the analysed file in the JSON output.
type Snapshot struct {
	File       string `json:"file"`
	Host       string `json:"host"`
	Kernel     string `json:"kernel"`
	CPUs       int    `json:"cpus"`
	FirstNS    uint64 `json:"first_ns"`
	LastNS     uint64 `json:"last_ns"`
	DurationNS uint64 `json:"duration_ns"`
	Events     uint64 `json:"events"`
	Lost       uint64 `json:"lost"`
	Damaged    int    `json:"damaged_chunks"`
}

// JSONHistogram is one histogram in the JSON output: percentiles in its
// unit, and its non-empty buckets, cumulative, each up to le inclusive.
type JSONHistogram struct {
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels"`
	Unit    string            `json:"unit"`
	Count   uint64            `json:"count"`
	Sum     float64           `json:"sum"`
	Min     uint64            `json:"min"`
	Max     uint64            `json:"max"`
	Mean    float64           `json:"mean"`
	P50     uint64            `json:"p50"`
	P90     uint64            `json:"p90"`
	P99     uint64            `json:"p99"`
	P999    uint64            `json:"p999"`
	P9999   uint64            `json:"p9999"`
	Buckets []JSONBucket      `json:"buckets"`
}

// JSONBucket counts the values up to Le, cumulatively.
type JSONBucket struct {
	Le    uint64 `json:"le"`
	Count uint64 `json:"count"`
}

// JSONCounter is one counter.
type JSONCounter struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	Value  uint64            `json:"value"`
}

// JSONProcess is one process's summary; times in ns.
type JSONProcess struct {
	PID        uint32 `json:"pid"`
	Comm       string `json:"comm"`
	OnCPUNS    uint64 `json:"on_cpu_ns"`
	OffCPUNS   uint64 `json:"off_cpu_ns"`
	RunqWaitNS uint64 `json:"runq_wait_ns"`
	Syscalls   uint64 `json:"syscalls"`
	SyscallNS  uint64 `json:"syscall_ns"`
	Errors     uint64 `json:"syscall_errors"`
	IOOps      uint64 `json:"io_ops"`
	IOBytes    uint64 `json:"io_bytes"`
	Faults     uint64 `json:"page_faults"`
}

// JSONResult is `rewind analyze --format json`.
type JSONResult struct {
	Snapshot   Snapshot          `json:"snapshot"`
	Skipped    map[string]string `json:"skipped"`
	Histograms []JSONHistogram   `json:"histograms"`
	Counters   []JSONCounter     `json:"counters"`
	Processes  []JSONProcess     `json:"processes"`
	Rates      []JSONRates       `json:"counters_rates"`
	Profiles   []JSONProfile     `json:"profiles"`
}

// JSONProfile is one stack event's samples, named and counted.
type JSONProfile struct {
	Event     string         `json:"event"`
	Samples   int            `json:"samples"`
	Functions []JSONFunction `json:"functions"`
	Stacks    []JSONStack    `json:"stacks"`
}

// JSONFunction is a function's samples: in it (self), and with it on the
// stack (total).
type JSONFunction struct {
	Name   string `json:"name"`
	Module string `json:"module,omitempty"`
	Kernel bool   `json:"kernel"`
	Self   int    `json:"self"`
	Total  int    `json:"total"`
}

// JSONStack is one stack's samples; frames outermost first.
type JSONStack struct {
	PID    uint32   `json:"pid"`
	Comm   string   `json:"comm"`
	Count  int      `json:"count"`
	Frames []string `json:"frames"`
}

// JSONRates is one counter field's rates (or a gauge's levels): mean and
// max over the selection, and 1 s windows.
type JSONRates struct {
	Source    string            `json:"source"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels"`
	Unit      string            `json:"unit"`
	Kind      string            `json:"kind"`
	Intervals int               `json:"intervals"`
	Mean      float64           `json:"mean"`
	Max       float64           `json:"max"`
	Windows   []JSONWindow      `json:"windows"`
}

// JSONWindow is one second of a JSONRates.
type JSONWindow struct {
	StartNS uint64  `json:"start_ns"`
	N       int     `json:"n"`
	Mean    float64 `json:"mean"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
}

// ToJSON converts a result.
func ToJSON(snap Snapshot, res *analyze.Result) JSONResult {
	out := JSONResult{Snapshot: snap, Skipped: res.Skipped, Histograms: []JSONHistogram{}, Counters: []JSONCounter{}, Processes: []JSONProcess{}, Rates: []JSONRates{}}
	out.Profiles = []JSONProfile{}
	for _, p := range res.Profiles {
		j := JSONProfile{Event: p.Event, Samples: p.Samples, Functions: []JSONFunction{}, Stacks: []JSONStack{}}
		for _, f := range p.Functions {
			j.Functions = append(j.Functions, JSONFunction{f.Name, f.Module, f.Kernel, f.Self, f.Total})
		}
		for _, s := range p.Stacks {
			j.Stacks = append(j.Stacks, JSONStack{s.PID, s.Comm, s.Count, s.Frames})
		}
		out.Profiles = append(out.Profiles, j)
	}
	for _, r := range res.Rates {
		j := JSONRates{Source: r.Source, Name: r.Name, Labels: labelMap(r.Labels), Unit: r.Unit, Kind: r.Kind, Intervals: r.Intervals, Mean: r.Mean, Max: r.Max, Windows: []JSONWindow{}}
		for _, w := range r.Windows {
			j.Windows = append(j.Windows, JSONWindow{w.StartNS, w.N, w.Mean, w.P50, w.P90, w.P99, w.Max})
		}
		out.Rates = append(out.Rates, j)
	}
	for _, s := range res.Histograms {
		out.Histograms = append(out.Histograms, jsonHistogram(s))
	}
	for _, c := range res.Counters {
		out.Counters = append(out.Counters, JSONCounter{Name: c.Name, Labels: labelMap(c.Labels), Value: c.Value})
	}
	for _, p := range res.Processes {
		out.Processes = append(out.Processes, JSONProcess{PID: p.PID, Comm: p.Comm, OnCPUNS: p.OnCPU, OffCPUNS: p.OffCPU, RunqWaitNS: p.RunqWait,
			Syscalls: p.Syscalls, SyscallNS: p.SyscallNS, Errors: p.Errors, IOOps: p.IOOps, IOBytes: p.IOBytes, Faults: p.Faults})
	}
	return out
}

func jsonHistogram(s *analyze.Series) JSONHistogram {
	h := s.Hist
	j := JSONHistogram{Name: s.Name, Labels: labelMap(s.Labels), Unit: s.Unit, Count: h.Count(), Sum: h.Sum(), Min: h.Min(), Max: h.Max(), Mean: h.Mean(),
		P50: h.Quantile(0.5), P90: h.Quantile(0.9), P99: h.Quantile(0.99), P999: h.Quantile(0.999), P9999: h.Quantile(0.9999), Buckets: []JSONBucket{}}
	var cum uint64
	for _, b := range h.Buckets() {
		cum += b.Count
		j.Buckets = append(j.Buckets, JSONBucket{Le: b.Hi, Count: cum})
	}
	return j
}

func labelMap(l analyze.Labels) map[string]string {
	m := make(map[string]string, len(l))
	for _, x := range l {
		m[x.Name] = x.Value
	}
	return m
}

// WriteJSON writes the result as one indented JSON object.
func WriteJSON(w io.Writer, snap Snapshot, res *analyze.Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(ToJSON(snap, res))
}
