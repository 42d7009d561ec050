// Package info describes what a snapshot holds, as `rewind info` shows
// it: Build gathers the figures (the JSON of `rewind info --json`,
// docs/JSON.md) and Text renders them for a terminal.
package info

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rewindtrace/rewind/internal/units"
	"github.com/rewindtrace/rewind/snapshot"
)

// Info is `rewind info --json`; docs/JSON.md documents every field.
type Info struct {
	File          string             `json:"file"`
	Bytes         int64              `json:"bytes"`
	Format        string             `json:"format_version"`
	Recorder      string             `json:"recorder"`
	Host          string             `json:"host"`
	Kernel        snapshot.Kernel    `json:"kernel"`
	CPUs          int                `json:"cpus"`
	Clock         string             `json:"clock"`
	Trigger       snapshot.Trigger   `json:"trigger"`
	StartedNS     uint64             `json:"started_ns"`
	TakenNS       uint64             `json:"taken_ns"`
	TakenWall     string             `json:"taken_wall,omitempty"`
	FirstNS       uint64             `json:"first_ns"`
	LastNS        uint64             `json:"last_ns"`
	DurationNS    uint64             `json:"duration_ns"`
	EventsTotal   uint64             `json:"events_total"`
	LostTotal     uint64             `json:"lost_total"`
	PerCPU        []CPU              `json:"per_cpu"`
	EventCounts   map[string]uint64  `json:"event_counts"`
	Recording     snapshot.Recording `json:"recording"`
	ProgramMisses map[string]uint64  `json:"program_misses"`
	Unavailable   map[string]string  `json:"unavailable"`
	Processes     int                `json:"processes"`
	Chunks        int                `json:"chunks"`
	Counters      []Series           `json:"counters"`
	Damaged       []Damage           `json:"damaged"`
}

// Series is one counter series.
type Series struct {
	Source  string  `json:"source"`
	Fields  int     `json:"fields"`
	Samples int     `json:"samples"`
	FirstNS uint64  `json:"first_ns"`
	LastNS  uint64  `json:"last_ns"`
	RateHz  float64 `json:"rate_hz"`
	Missed  uint64  `json:"missed"`
}

// CPU is the window one CPU's buffer retained.
type CPU struct {
	CPU     int    `json:"cpu"`
	Events  uint64 `json:"events"`
	Lost    uint64 `json:"lost"`
	FirstNS uint64 `json:"first_ns"`
	LastNS  uint64 `json:"last_ns"`
}

// Damage is a damaged byte range of the file.
type Damage struct {
	Offset int64  `json:"offset"`
	End    int64  `json:"end"`
	Error  string `json:"error"`
}

// Build gathers what the snapshot r, read from path and summarised by sum,
// holds.
func Build(r *snapshot.Reader, path string, sum *snapshot.Summary) *Info {
	m := r.Meta()
	info := &Info{
		File: path, Bytes: r.Size(), Format: fmt.Sprintf("%d.%d", r.Major, r.Minor),
		Recorder: m.Recorder, Host: m.Host, Kernel: m.Kernel, CPUs: m.CPUs, Clock: m.Clock,
		Trigger: m.Trigger, StartedNS: m.StartedNS, TakenNS: m.TakenNS,
		FirstNS: sum.FirstTS, LastNS: sum.LastTS,
		EventsTotal: sum.Events, LostTotal: sum.Lost, EventCounts: sum.EventCounts,
		Recording: m.Recording, ProgramMisses: m.ProgramMisses,
		Processes: len(r.Procs()), Chunks: sum.Chunks, PerCPU: []CPU{}, Damaged: []Damage{}, Counters: []Series{},
	}
	for _, x := range sum.Series {
		info.Counters = append(info.Counters, Series{x.Source, x.Fields, x.Samples, x.FirstTS, x.LastTS, x.RateHz, x.Missed})
	}
	if info.ProgramMisses == nil {
		info.ProgramMisses = map[string]uint64{}
	}
	info.Unavailable = m.Unavailable
	if info.Unavailable == nil {
		info.Unavailable = map[string]string{}
	}
	if sum.LastTS > sum.FirstTS {
		info.DurationNS = sum.LastTS - sum.FirstTS
	}
	if wall, ok := m.WallNS(m.TakenNS); ok {
		info.TakenWall = time.Unix(0, wall).UTC().Format(time.RFC3339Nano)
	}
	for _, c := range sum.PerCPU {
		info.PerCPU = append(info.PerCPU, CPU{c.CPU, c.Events, c.Lost, c.FirstTS, c.LastTS})
	}
	for _, d := range r.Damage() {
		info.Damaged = append(info.Damaged, Damage{d.Offset, d.End, d.Err.Error()})
	}
	return info
}

// Text renders info for a terminal; m is the snapshot's metadata, for wall
// times.
func Text(w io.Writer, info *Info, m *snapshot.Meta) error {
	wall := func(ns uint64) string {
		if t, ok := m.WallNS(ns); ok {
			return time.Unix(0, t).Format("2006-01-02 15:04:05.000000000")
		}
		return fmt.Sprintf("%d ns", ns)
	}
	trigger := info.Trigger.Kind
	if info.Trigger.Signal != "" {
		trigger += " " + info.Trigger.Signal
	}
	if info.Trigger.Detail != "" {
		trigger += " (" + info.Trigger.Detail + ")"
	}
	filter := "none"
	if f := info.Recording.Filter; len(f.PIDs)+len(f.Comms)+len(f.Cgroups) > 0 {
		var parts []string
		for _, p := range f.PIDs {
			parts = append(parts, fmt.Sprintf("pid %d", p))
		}
		for _, c := range f.Comms {
			parts = append(parts, "comm "+c)
		}
		for _, c := range f.Cgroups {
			parts = append(parts, "cgroup "+c)
		}
		filter = strings.Join(parts, ", ")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "file:\t%s (%s, format %s)\n", info.File, units.FormatSize(uint64(info.Bytes)), info.Format)
	fmt.Fprintf(tw, "host:\t%s, %s %s (%s), %d CPUs\n", info.Host, info.Kernel.Sysname, info.Kernel.Release, info.Kernel.Machine, info.CPUs)
	fmt.Fprintf(tw, "recorder:\t%s\n", info.Recorder)
	fmt.Fprintf(tw, "trigger:\t%s at %s\n", trigger, wall(info.TakenNS))
	if f := info.Trigger.Firing; f != nil {
		printFiring(tw, f, info.FirstNS, wall)
	}
	fmt.Fprintf(tw, "span:\t%s to %s (%.3f s)\n", wall(info.FirstNS), wall(info.LastNS), float64(info.DurationNS)/1e9)
	fmt.Fprintf(tw, "recording:\t%s\n", strings.Join(info.Recording.Events, ","))
	fmt.Fprintf(tw, "buffer:\t%s per CPU (%d slots of %d bytes); filter: %s\n", units.FormatSize(info.Recording.BufferBytes), info.Recording.SlotsPerCPU, info.Recording.SlotSize, filter)
	if h := info.Recording.History; h != nil {
		limits := []string{}
		if h.BudgetBytes > 0 {
			limits = append(limits, "up to "+units.FormatSize(h.BudgetBytes))
		}
		if h.MaxAgeNS > 0 {
			limits = append(limits, "up to "+time.Duration(h.MaxAgeNS).String()+" old")
		}
		fmt.Fprintf(tw, "history:\tcompressed tier (%s) held %d events in %s; %d older ones dropped to fit\n",
			strings.Join(limits, ", "), h.HeldEvents, units.FormatSize(h.HeldBytes), h.EvictedEvents)
	}
	fmt.Fprintf(tw, "events:\t%d, lost %d\n", info.EventsTotal, info.LostTotal)
	fmt.Fprintf(tw, "processes:\t%d in the table at snapshot time\n", info.Processes)
	tw.Flush()

	fmt.Fprintln(w, "\nper CPU (the window each CPU's buffer retained):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "cpu\tevents\tlost\tfirst\tlast\twindow\t")
	for _, c := range info.PerCPU {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%.3f s\t\n", c.CPU, c.Events, c.Lost, wall(c.FirstNS), wall(c.LastNS), float64(c.LastNS-c.FirstNS)/1e9)
	}
	tw.Flush()

	fmt.Fprintln(w, "\nevents by type:")
	// By count, most first; equal counts by name.
	names := slices.Sorted(maps.Keys(info.EventCounts))
	sort.SliceStable(names, func(i, j int) bool { return info.EventCounts[names[i]] > info.EventCounts[names[j]] })
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%d\t\n", n, info.EventCounts[n])
	}
	tw.Flush()

	var misses uint64
	for _, n := range info.ProgramMisses {
		misses += n
	}
	fmt.Fprintf(w, "\nprogram runs the kernel skipped (another BPF program running on the CPU): %d\n", misses)
	printReasons(w, "asked for but not recordable on this kernel:", info.Unavailable)
	if len(info.Counters) > 0 || info.Recording.Counters != nil {
		printCounters(w, info)
	}
	if len(info.Damaged) > 0 {
		fmt.Fprintf(w, "damaged: %d byte ranges (see the warnings above); events there are not counted\n", len(info.Damaged))
	}
	return nil
}

// printFiring describes the trigger's firing under the trigger line: the
// condition, the matching event's time (from the first event, and wall
// time) and task, what crossed the threshold, and the delay before the
// snapshot was taken.
func printFiring(tw io.Writer, f *snapshot.Firing, first uint64, wall func(uint64) string) {
	cond := f.Condition
	if f.Trigger != "" {
		cond = f.Trigger + ": " + cond
	}
	if f.Count > 0 {
		cond += fmt.Sprintf(" (match %d since the trigger was set)", f.Count)
	}
	fmt.Fprintf(tw, "fired:\t%s\n", cond)
	if f.TS != 0 {
		at := wall(f.TS)
		if first != 0 {
			at = signedSeconds(int64(f.TS-first)) + " from the first event (" + at + ")"
		}
		fmt.Fprintf(tw, "  at:\t%s\n", at)
	}
	// An alert matched no event: no CPU (-1), no task, no value.
	var task []string
	if f.CPU >= 0 {
		task = append(task, fmt.Sprintf("cpu %d", f.CPU))
	}
	if f.TID != 0 {
		task = append(task, fmt.Sprintf("tid %d", f.TID))
	}
	if f.PID != 0 {
		task = append(task, fmt.Sprintf("pid %d", f.PID))
	}
	if f.Comm != "" {
		task = append(task, f.Comm)
	}
	if len(task) > 0 {
		fmt.Fprintf(tw, "  task:\t%s\n", strings.Join(task, ", "))
	}
	if f.Value != 0 || f.Unit != "" || f.What != "" {
		fmt.Fprintf(tw, "  value:\t%s\n", FiringValue(f))
	}
	if f.DelayNS > 0 {
		fmt.Fprintf(tw, "  delay:\tsnapshot taken %s after the firing\n", formatNS(f.DelayNS))
	}
	if len(f.Labels) > 0 {
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(f.Labels)) {
			labels = append(labels, k+"="+f.Labels[k])
		}
		fmt.Fprintf(tw, "  labels:\t%s\n", strings.Join(labels, ", "))
	}
}

// signedSeconds prints ns as seconds with a sign and every digit:
// +1.250000000s.
func signedSeconds(ns int64) string {
	sign := "+"
	if ns < 0 {
		sign, ns = "-", -ns
	}
	return fmt.Sprintf("%s%d.%09ds", sign, ns/1e9, ns%1e9)
}

// FiringValue says what matched and its value: "nanosleep 102.3ms",
// "SIGSEGV", "exit status 2", "oom victim pid 1234", or a counter's
// reading as its condition printed it.
func FiringValue(f *snapshot.Firing) string {
	switch {
	case f.What == "":
		return formatValue(f.Value, f.Unit)
	case f.Unit == "signal" || f.Unit == "wait status" || f.Unit == "":
		// What names it already: the signal, the status, the reading.
		return f.What
	case f.Unit == "pid":
		return fmt.Sprintf("%s pid %.0f", f.What, f.Value)
	}
	return f.What + " " + formatValue(f.Value, f.Unit)
}

// formatValue prints a firing's value in its unit: a duration for ns, a
// size for bytes, the number and the unit otherwise.
func formatValue(v float64, unit string) string {
	switch {
	case unit == "ns" && v >= 0 && v < math.MaxInt64:
		return formatNS(uint64(v))
	case unit == "bytes" && v >= 0 && v < math.MaxUint64:
		return units.FormatSize(uint64(v))
	case unit == "":
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64) + " " + unit
}

// formatNS prints a duration to four significant digits: 102.3ms, 1.5µs.
func formatNS(ns uint64) string {
	if ns > math.MaxInt64 {
		return strconv.FormatUint(ns, 10) + "ns"
	}
	round := uint64(1)
	for n := ns; n >= 10000; n /= 10 {
		round *= 10
	}
	return time.Duration(ns).Round(time.Duration(round)).String()
}

// printCounters lists the counter series and what the sampler reported.
func printCounters(w io.Writer, info *Info) {
	fmt.Fprintln(w, "\ncounters (series: one per source, and a new one when its fields change):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "source\tfields\tsamples\trate\tspan\tmissed\t")
	for _, s := range info.Counters {
		span := time.Duration(s.LastNS - s.FirstNS)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%g Hz\t%.3f s\t%d\t\n", s.Source, s.Fields, s.Samples, s.RateHz, span.Seconds(), s.Missed)
	}
	tw.Flush()
	c := info.Recording.Counters
	if c == nil {
		return
	}
	fmt.Fprintf(w, "sampler: %v of CPU since it started, samples kept %v\n", time.Duration(c.SamplerCPUNS).Round(time.Millisecond), time.Duration(c.KeepNS))
	if c.Error != "" {
		fmt.Fprintf(w, "sampler error: %s\n", c.Error)
	}
	printReasons(w, "counters not sampled on this machine:", c.Unavailable)
}

// printReasons lists what could not be done and why, by name, under title.
func printReasons(w io.Writer, title string, why map[string]string) {
	if len(why) == 0 {
		return
	}
	fmt.Fprintln(w, title)
	for _, n := range slices.Sorted(maps.Keys(why)) {
		fmt.Fprintf(w, "  %s: %s\n", n, why[n])
	}
}
