package report

import (
	"fmt"
	"io"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rewindtrace/rewind/analyze"
)

// Describe says what each analysis measures.
var Describe = map[string]string{
	analyze.RunqLatency:    "run-queue latency: from a wakeup to running",
	analyze.OffCPU:         "off-CPU time: from switching out (not runnable) to switching back in",
	analyze.OnCPU:          "on-CPU time slices",
	analyze.SyscallLatency: "system call latency: from enter to exit",
	analyze.BioLatency:     "block I/O latency: from issue to completion",
	analyze.BioSize:        "block I/O request sizes",
	analyze.IRQ:            "hard interrupt handler durations",
	analyze.Softirq:        "softirq durations",
	analyze.Faults:         "page faults per process",
	analyze.Processes:      "per-process summary",
	analyze.StackProfile:   "the functions and stacks stack samples fell in",
	analyze.CounterRates:   "a counter's increase per second between samples, a gauge's level, in 1 s windows",
}

// TextOptions shape the text output.
type TextOptions struct {
	// Top limits the rows per dimension (processes, syscalls, ...).
	Top int
}

// WriteText prints a result for people.
func WriteText(w io.Writer, snap Snapshot, res *analyze.Result, opts TextOptions) error {
	if opts.Top <= 0 {
		opts.Top = 10
	}
	fmt.Fprintf(w, "%s: %s, kernel %s, %d CPUs; %d events over %s", snap.File, snap.Host, snap.Kernel, snap.CPUs, snap.Events, time.Duration(snap.DurationNS).Round(time.Microsecond))
	if snap.Lost > 0 {
		fmt.Fprintf(w, ", %d lost", snap.Lost)
	}
	if snap.Damaged > 0 {
		fmt.Fprintf(w, ", %d damaged chunks skipped", snap.Damaged)
	}
	fmt.Fprintln(w)
	for _, name := range analyze.All {
		if why, ok := res.Skipped[name]; ok {
			fmt.Fprintf(w, "\n== %s: skipped, %s\n", name, why)
			continue
		}
		switch name {
		case analyze.Faults:
			writeCounters(w, res, "page_faults", "== faults: page faults per process", []string{"pid", "comm", "kind"}, opts.Top, snap.DurationNS)
			continue
		case analyze.Processes:
			if len(res.Processes) > 0 {
				writeProcesses(w, res, opts.Top)
			}
			continue
		case analyze.CounterRates:
			if len(res.Rates) > 0 {
				writeRates(w, res.Rates, opts.Top)
			}
			continue
		case analyze.StackProfile:
			writeProfiles(w, res.Profiles, opts.Top)
			continue
		}
		var group []*analyze.Series
		for _, s := range res.Histograms {
			if s.Name == name {
				group = append(group, s)
			}
		}
		if len(group) == 0 {
			continue
		}
		writeAnalysis(w, name, group, opts.Top)
		if name == analyze.SyscallLatency {
			writeCounters(w, res, "syscalls", "  calls per syscall", []string{"syscall"}, opts.Top, snap.DurationNS)
			writeCounters(w, res, "syscall_errors", "  errors per syscall", []string{"syscall", "errno"}, opts.Top, 0)
		}
	}
	return nil
}

func writeAnalysis(w io.Writer, name string, group []*analyze.Series, top int) {
	total := group[0]
	if total.Labels.Get("by") != "all" {
		total = nil
	}
	count := uint64(0)
	for _, s := range group {
		if total == nil || s == total {
			count += s.Hist.Count()
		}
	}
	fmt.Fprintf(w, "\n== %s: %s (%d samples)\n", name, Describe[name], count)
	if total != nil {
		writeLog2(w, total)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tcount\tmin\tp50\tp90\tp99\tp99.9\tp99.99\tmax\t")
	shown := map[string]int{}
	hidden := map[string]int{}
	for _, s := range group {
		by := s.Labels.Get("by")
		if shown[by] >= top {
			hidden[by]++
			continue
		}
		shown[by]++
		h := s.Hist
		f := func(v uint64) string { return formatValue(v, s.Unit) }
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", rowLabel(s.Labels), h.Count(), f(h.Min()), f(h.Quantile(0.5)), f(h.Quantile(0.9)),
			f(h.Quantile(0.99)), f(h.Quantile(0.999)), f(h.Quantile(0.9999)), f(h.Max()))
	}
	tw.Flush()
	writeHidden(w, hidden)
}

// writeHidden says how many rows of each dimension --top left out.
func writeHidden(w io.Writer, hidden map[string]int) {
	bys := make([]string, 0, len(hidden))
	for by := range hidden {
		bys = append(bys, by)
	}
	sort.Strings(bys)
	for _, by := range bys {
		fmt.Fprintf(w, "  (%d more by %s; --top shows more, --format json all)\n", hidden[by], by)
	}
}

// rowLabel renders labels but "by" as a table row's name.
func rowLabel(l analyze.Labels) string {
	var parts []string
	for _, x := range l {
		if x.Name == "by" {
			if x.Value == "all" {
				return "all"
			}
			continue
		}
		parts = append(parts, x.Name+"="+x.Value)
	}
	return strings.Join(parts, " ")
}

// writeLog2 draws the histogram in power-of-two rows, as BCC's tools do:
// microseconds for times, bytes for sizes.
func writeLog2(w io.Writer, s *analyze.Series) {
	unit, div := "usecs", uint64(1000)
	if s.Unit == analyze.UnitBytes {
		unit, div = "bytes", 1
	}
	var rows [65]uint64
	lo, hi := 64, 0
	for _, b := range s.Hist.Buckets() {
		// A bucket lies within one power of two at the display unit only
		// when it is narrow enough; count it by its midpoint.
		v := (b.Lo + (b.Hi-b.Lo)/2) / div
		r := bits.Len64(v) // 0 for 0, 1 for 1, 2 for 2..3, ...
		rows[r] += b.Count
		lo, hi = min(lo, r), max(hi, r)
	}
	var peak uint64
	for r := lo; r <= hi; r++ {
		peak = max(peak, rows[r])
	}
	fmt.Fprintf(w, "  %20s : %-9s distribution\n", unit, "count")
	for r := lo; r <= hi; r++ {
		from, to := uint64(0), uint64(0)
		if r > 0 {
			from, to = 1<<(r-1), 1<<r-1
		}
		stars := 0
		if peak > 0 {
			stars = int(rows[r] * 40 / peak)
		}
		fmt.Fprintf(w, "  %9d -> %-8d : %-9d |%-40s|\n", from, to, rows[r], strings.Repeat("*", stars))
	}
}

// formatValue prints a value of the unit compactly: durations with a unit
// of time, sizes in bytes with a binary unit.
func formatValue(v uint64, unit string) string {
	if unit == analyze.UnitBytes {
		switch {
		case v >= 1<<20:
			return strconv.FormatFloat(float64(v)/(1<<20), 'f', 1, 64) + "Mi"
		case v >= 1<<10:
			return strconv.FormatFloat(float64(v)/(1<<10), 'f', 1, 64) + "Ki"
		}
		return strconv.FormatUint(v, 10)
	}
	return FormatNS(v)
}

// FormatNS prints nanoseconds with three significant digits.
func FormatNS(v uint64) string {
	f := float64(v)
	switch {
	case v >= 1e9:
		return sig3(f/1e9) + "s"
	case v >= 1e6:
		return sig3(f/1e6) + "ms"
	case v >= 1e3:
		return sig3(f/1e3) + "µs"
	}
	return strconv.FormatUint(v, 10) + "ns"
}

func sig3(f float64) string {
	switch {
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// writeCounters writes the counters of one name as a table, with a rate
// per second when span (ns) is given; it reports whether there were any.
func writeCounters(w io.Writer, res *analyze.Result, name, title string, labels []string, top int, span uint64) bool {
	var rows []analyze.Counter
	for _, c := range res.Counters {
		if c.Name == name {
			rows = append(rows, c)
		}
	}
	if len(rows) == 0 {
		return false
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "  " + strings.Join(labels, "\t") + "\tcount"
	if span > 0 {
		head += "\tper second"
	}
	fmt.Fprintln(tw, head)
	for i, c := range rows {
		if i >= top {
			fmt.Fprintf(tw, "  (%d more)\n", len(rows)-top)
			break
		}
		var vals []string
		for _, l := range labels {
			vals = append(vals, c.Labels.Get(l))
		}
		line := fmt.Sprintf("  %s\t%d", strings.Join(vals, "\t"), c.Value)
		if span > 0 {
			line += "\t" + sig3(float64(c.Value)/(float64(span)/1e9))
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	return true
}

func writeProcesses(w io.Writer, res *analyze.Result, top int) {
	fmt.Fprintf(w, "\n== processes: %s, by time on CPU\n", Describe[analyze.Processes])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pid\tcomm\ton-cpu\toff-cpu\trunq wait\tsyscalls\tin syscalls\terrors\tio ops\tio bytes\tfaults\t")
	for i, p := range res.Processes {
		if i >= top {
			fmt.Fprintf(tw, "(%d more)\t\t\t\t\t\t\t\t\t\t\t\n", len(res.Processes)-top)
			break
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%d\t%s\t%d\t\n", p.PID, p.Comm, FormatNS(p.OnCPU), FormatNS(p.OffCPU), FormatNS(p.RunqWait),
			p.Syscalls, FormatNS(p.SyscallNS), p.Errors, p.IOOps, formatValue(p.IOBytes, analyze.UnitBytes), p.Faults)
	}
	tw.Flush()
}
