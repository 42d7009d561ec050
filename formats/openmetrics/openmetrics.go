// Package openmetrics writes analysis results in the OpenMetrics text
// format, which Prometheus scrapes and `promtool tsdb create-blocks-from
// openmetrics` backfills: histograms with cumulative buckets and le in
// seconds (or bytes), counters, each sample at the snapshot's time.
package openmetrics

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/rewindtrace/rewind/analyze"
)

// Prefix starts every metric name.
const Prefix = "rewind_"

// Bucket bounds: 1-2-5 steps from 1 µs to 100 s for durations, powers of
// two from 512 B to 64 MiB for sizes. The analyses' own histograms are
// finer; these are what Prometheus stores.
var (
	durationBounds = func() []uint64 {
		var b []uint64
		for d := uint64(1000); d <= 100e9; d *= 10 {
			b = append(b, d, 2*d, 5*d)
		}
		return b
	}()
	sizeBounds = func() []uint64 {
		var b []uint64
		for s := uint64(512); s <= 64<<20; s *= 2 {
			b = append(b, s)
		}
		return b
	}()
)

// Write writes res with every sample at time ts (seconds since the epoch).
// lostByCPU, when given, becomes the rewind_lost_events counter.
func Write(w io.Writer, res *analyze.Result, ts float64, lostByCPU map[int]uint64) error {
	bw := bufio.NewWriter(w)
	t := strconv.FormatFloat(ts, 'f', 3, 64)
	families := map[string][]*analyze.Series{}
	var order []string
	for _, s := range res.Histograms {
		if _, ok := families[s.Name]; !ok {
			order = append(order, s.Name)
		}
		families[s.Name] = append(families[s.Name], s)
	}
	for _, name := range order {
		series := families[name]
		unit, bounds, div := "seconds", durationBounds, 1e9
		if series[0].Unit == analyze.UnitBytes {
			unit, bounds, div = "bytes", sizeBounds, 1
		}
		metric := Prefix + name + "_" + unit
		fmt.Fprintf(bw, "# TYPE %s histogram\n# UNIT %s %s\n# HELP %s %s\n", metric, metric, unit, metric, help(name))
		for _, s := range series {
			labels := formatLabels(s.Labels)
			h := s.Hist
			for _, b := range bounds {
				// Dividing, not multiplying by 1e-9, gives the double
				// nearest the decimal bound: 1e-06, not 1.0000000000000002e-06.
				le := strconv.FormatFloat(float64(b)/div, 'g', -1, 64)
				if div == 1 {
					le = strconv.FormatUint(b, 10)
				}
				fmt.Fprintf(bw, "%s_bucket{%s} %d %s\n", metric, join(labels, `le="`+le+`"`), h.CountAtMost(b), t)
			}
			fmt.Fprintf(bw, "%s_bucket{%s} %d %s\n", metric, join(labels, `le="+Inf"`), h.Count(), t)
			fmt.Fprintf(bw, "%s_count{%s} %d %s\n", metric, labels, h.Count(), t)
			fmt.Fprintf(bw, "%s_sum{%s} %s %s\n", metric, labels, strconv.FormatFloat(h.Sum()/div, 'g', -1, 64), t)
		}
	}
	counters := map[string][]analyze.Counter{}
	order = order[:0]
	for _, c := range res.Counters {
		if _, ok := counters[c.Name]; !ok {
			order = append(order, c.Name)
		}
		counters[c.Name] = append(counters[c.Name], c)
	}
	if len(lostByCPU) > 0 {
		order = append(order, "lost_events")
		cpus := make([]int, 0, len(lostByCPU))
		for cpu := range lostByCPU {
			cpus = append(cpus, cpu)
		}
		sort.Ints(cpus)
		for _, cpu := range cpus {
			counters["lost_events"] = append(counters["lost_events"], analyze.Counter{Name: "lost_events",
				Labels: analyze.Labels{{Name: "cpu", Value: strconv.Itoa(cpu)}}, Value: lostByCPU[cpu]})
		}
	}
	for _, name := range order {
		metric := Prefix + name
		fmt.Fprintf(bw, "# TYPE %s counter\n# HELP %s %s\n", metric, metric, help(name))
		for _, c := range counters[name] {
			fmt.Fprintf(bw, "%s_total{%s} %d %s\n", metric, formatLabels(c.Labels), c.Value, t)
		}
	}
	bw.WriteString("# EOF\n")
	return bw.Flush()
}

func help(name string) string {
	switch name {
	case analyze.RunqLatency:
		return "Time woken tasks waited to run, from the wakeup to the switch-in."
	case analyze.OffCPU:
		return "Time tasks spent switched out and not runnable."
	case analyze.OnCPU:
		return "Lengths of time slices on a CPU."
	case analyze.SyscallLatency:
		return "System call latency, from enter to exit."
	case analyze.BioLatency:
		return "Block I/O latency, from issue to completion."
	case analyze.BioSize:
		return "Block I/O request sizes."
	case analyze.IRQ:
		return "Hard interrupt handler durations."
	case analyze.Softirq:
		return "Softirq durations."
	case "syscalls":
		return "System calls made."
	case "syscall_errors":
		return "System calls that returned an error, by errno."
	case "page_faults":
		return "Page faults."
	case "lost_events":
		return "Events lost inside the snapshot's retained windows."
	}
	return name
}

func formatLabels(l analyze.Labels) string {
	parts := make([]string, 0, len(l))
	for _, x := range l {
		parts = append(parts, x.Name+`="`+escape(x.Value)+`"`)
	}
	return strings.Join(parts, ",")
}

func join(labels, extra string) string {
	if labels == "" {
		return extra
	}
	return labels + "," + extra
}

// escape quotes a label value as OpenMetrics wants: backslash, double
// quote and newline escaped.
func escape(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// Samples counts the series and samples Write emits for res (one sample
// per series), so tests can hold an ingester to them.
func Samples(res *analyze.Result, lostByCPU map[int]uint64) int {
	n := 0
	for _, s := range res.Histograms {
		bounds := durationBounds
		if s.Unit == analyze.UnitBytes {
			bounds = sizeBounds
		}
		n += len(bounds) + 1 + 2
	}
	return n + len(res.Counters) + len(lostByCPU)
}
