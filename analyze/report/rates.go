package report

import (
	"fmt"
	"io"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/rewindtrace/rewind/analyze"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// writeRates writes, per counter source, its busiest fields: the rate (or
// level) over the whole selection, the largest of any one interval, and
// the percentiles of the 1 s window where that largest one falls.
func writeRates(w io.Writer, rates []analyze.Rates, top int) {
	fmt.Fprintf(w, "\n== %s: %s\n", analyze.CounterRates, Describe[analyze.CounterRates])
	bySource := map[string][]analyze.Rates{}
	var sources []string
	for _, r := range rates {
		if _, ok := bySource[r.Source]; !ok {
			sources = append(sources, r.Source)
			bySource[r.Source] = nil
		}
		if r.Max != 0 || r.Mean != 0 {
			bySource[r.Source] = append(bySource[r.Source], r)
		}
	}
	for _, src := range sources {
		rs := bySource[src]
		if len(rs) == 0 {
			fmt.Fprintf(w, "\n  %s: no field moved off zero\n", src)
			continue
		}
		// The CPUs' busy shares lead their source, busiest first; then
		// rates, busiest first; then levels by how far they moved.
		sort.SliceStable(rs, func(i, j int) bool {
			a, b := rs[i], rs[j]
			if (a.Name == analyze.BusyName) != (b.Name == analyze.BusyName) {
				return a.Name == analyze.BusyName
			}
			if (a.Kind == snapshot.SeriesCounter) != (b.Kind == snapshot.SeriesCounter) {
				return a.Kind == snapshot.SeriesCounter
			}
			if a.Kind == snapshot.SeriesCounter || a.Name == analyze.BusyName {
				return a.Mean > b.Mean
			}
			return moved(a) > moved(b)
		})
		fmt.Fprintf(w, "\n  %s:\n", src)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "\tkind\tmean\tmax\tp50*\tp90*\tp99*\t")
		for i, r := range rs {
			if i >= top {
				fmt.Fprintf(tw, "(%d more)\t\t\t\t\t\t\t\n", len(rs)-top)
				break
			}
			win := worst(r)
			f := func(v float64) string { return formatRate(v, r.Unit, r.Kind) }
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", rateLabel(r), kindName(r), f(r.Mean), f(r.Max), f(win.P50), f(win.P90), f(win.P99))
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\n  mean: over the selection; max: of any one interval; * of the intervals in the second that holds the max")
}

// moved is how far a level moved, relative to its mean.
func moved(r analyze.Rates) float64 {
	if r.Mean == 0 {
		return r.Max
	}
	return math.Abs(r.Max-r.Mean) / math.Abs(r.Mean)
}

// worst returns the window holding the largest interval.
func worst(r analyze.Rates) analyze.Window {
	var best analyze.Window
	for i, w := range r.Windows {
		if i == 0 || w.Max > best.Max {
			best = w
		}
	}
	return best
}

func rateLabel(r analyze.Rates) string {
	if len(r.Labels) == 0 {
		return r.Name
	}
	var parts []string
	for _, l := range r.Labels {
		parts = append(parts, l.Name+"="+l.Value)
	}
	return r.Name + "{" + strings.Join(parts, ",") + "}"
}

func kindName(r analyze.Rates) string {
	switch {
	case r.Kind == snapshot.SeriesCounter:
		return "rate"
	case r.Unit == analyze.UnitRatio:
		return "share"
	}
	return "level"
}

// formatRate prints a rate (unit per second), a level or a share: CPU
// time as a share of one CPU, a ratio as a percentage, bytes with binary
// units.
func formatRate(v float64, unit, kind string) string {
	if kind == snapshot.SeriesCounter {
		switch unit {
		case "ns":
			return strconv.FormatFloat(v/1e7, 'f', 1, 64) + "%"
		case "bytes":
			return formatBytes(v) + "/s"
		}
		return sig3(v) + "/s"
	}
	switch unit {
	case "bytes":
		return formatBytes(v)
	case analyze.UnitRatio:
		return strconv.FormatFloat(v*100, 'f', 1, 64) + "%"
	case "percent":
		return strconv.FormatFloat(v, 'f', 2, 64) + "%"
	case "ns":
		return FormatNS(uint64(v))
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return sig3(v)
}

func formatBytes(v float64) string {
	switch {
	case v >= 1<<30:
		return sig3(v/(1<<30)) + "Gi"
	case v >= 1<<20:
		return sig3(v/(1<<20)) + "Mi"
	case v >= 1<<10:
		return sig3(v/(1<<10)) + "Ki"
	}
	return sig3(v)
}

// writeProfiles writes each stack event's top functions and stacks.
func writeProfiles(w io.Writer, profiles []analyze.Profile, top int) {
	for _, p := range profiles {
		what := "CPU samples: what ran"
		if p.Event == kinds.OffCPUSample {
			what = "off-CPU stacks: where tasks blocked"
		}
		fmt.Fprintf(w, "\n== %s: %s (%s, %d samples)\n", analyze.StackProfile, what, p.Event, p.Samples)
		fmt.Fprintln(w, "\n  functions, by samples in the function itself:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "self\tself%\ttotal\ttotal%\t\tfunction")
		for i, f := range p.Functions {
			if i >= top {
				fmt.Fprintf(tw, "(%d more)\t\t\t\t\t\n", len(p.Functions)-i)
				break
			}
			name := f.Name
			if f.Kernel {
				name += " [kernel]"
			} else if f.Module != "" && !strings.Contains(f.Name, "0x") {
				name += " [" + path.Base(f.Module) + "]"
			}
			fmt.Fprintf(tw, "%d\t%.1f%%\t%d\t%.1f%%\t\t%s\n", f.Self, pct(f.Self, p.Samples), f.Total, pct(f.Total, p.Samples), name)
		}
		tw.Flush()
		fmt.Fprintln(w, "\n  stacks, most frequent first (process: outermost;...;innermost):")
		for i, s := range p.Stacks {
			if i >= top {
				fmt.Fprintf(w, "  (%d more)\n", len(p.Stacks)-i)
				break
			}
			fmt.Fprintf(w, "  %6d %5.1f%%  %s(%d): %s\n", s.Count, pct(s.Count, p.Samples), s.Comm, s.PID, strings.Join(s.Frames, ";"))
		}
	}
}

func pct(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) * 100 / float64(of)
}
