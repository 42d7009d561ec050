package analyze

import (
	"math"
	"sort"
	"strconv"

	"github.com/rewindtrace/rewind/snapshot"
)

// Rates is one counter field over the selection: a counter read as its
// rate between samples (unit per second), a gauge as its level. Every
// sample interval counts once, in the 1 s window it ends in; percentiles
// are of a window's intervals, never of totals since boot. The cpu source
// adds busy{cpu} (BusyName), a gauge of unit UnitRatio: each interval's
// share of the CPU's time spent busy.
type Rates struct {
	Source string
	Name   string
	Labels Labels
	// Unit is the field's; a counter's rates are Unit per second.
	Unit string
	// Kind is snapshot.SeriesCounter or snapshot.SeriesGauge.
	Kind string
	// Intervals counts the sample intervals (or gauge samples) read.
	Intervals int
	// Mean is the counter's increase over the selection divided by its
	// time (not a mean of rates), or the gauge's mean level; busy's is the
	// busy time over the selection divided by all the CPU's time.
	Mean float64
	// Max is the largest per-interval rate (or level) of all.
	Max     float64
	Windows []Window
}

// Window is one second of a Rates.
type Window struct {
	StartNS            uint64
	N                  int // intervals in the window
	Mean               float64
	P50, P90, P99, Max float64
}

// WindowNS is the span of a Window.
const WindowNS = 1e9

// cpuStates are the cpu source's time fields that share out a CPU's time
// (guest and guest_nice are inside user and nice), true for the busy ones:
// all but idle and iowait.
var cpuStates = map[string]bool{"user": true, "nice": true, "system": true, "idle": false, "iowait": false, "irq": true, "softirq": true, "steal": true}

// BusyName is the field the cpu source derives: busy{cpu}, the share of
// the CPU's time (of all cpuStates) spent in the busy states, a ratio.
const BusyName = "busy"

// UnitRatio is the unit of a share: 0 to 1.
const UnitRatio = "ratio"

// rates reads the snapshot's counter series into per-field rates.
func (a *analyzer) rates() ([]Rates, error) {
	var out []Rates
	for _, sec := range a.r.SeriesSections() {
		if sec.LastTS != 0 && (sec.LastTS < a.rng.From || sec.FirstTS > a.rng.To) {
			continue
		}
		s, err := a.r.ReadSeries(sec)
		if err != nil {
			continue // damage is reported with the rest
		}
		first, last := 0, len(s.TS)
		for first < last && s.TS[first] < a.rng.From {
			first++
		}
		for last > first && s.TS[last-1] > a.rng.To {
			last--
		}
		if last-first < 2 {
			continue
		}
		ts := s.TS[first:last]
		// A CPU's time fields, by CPU: what busy derives from.
		states := map[string][]cpuState{}
		for f, fl := range s.Fields {
			cpu := fl.Labels["cpu"]
			if cpu != "" && !a.cpuKept(cpu) {
				continue
			}
			vals := s.Values[f][first:last]
			r := rateOf(s.Source, fl, ts, vals, func(i int) float64 { return s.Value(f, first+i) })
			out = append(out, r)
			if busy, ok := cpuStates[fl.Name]; ok && s.Source == "cpu" && cpu != "" {
				states[cpu] = append(states[cpu], cpuState{vals, busy})
			}
		}
		for cpu, st := range states {
			out = append(out, busyOf(s.Source, cpu, ts, st))
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Source != out[j].Source {
			return out[i].Source < out[j].Source
		}
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Labels.key() < out[j].Labels.key()
	})
	return out, nil
}

// cpuState is one of a CPU's time fields (cpuStates), raw, sample by
// sample, and whether it is a busy one.
type cpuState struct {
	vals []uint64
	busy bool
}

// busyOf derives busy{cpu}: each interval's share of the CPU's time spent
// busy, Δbusy / Δ(all states, idle and iowait too), as top and mpstat
// compute it. Both come from the same counters, so a share is within
// [0, 1] whatever the sampling: /proc/stat's times move in USER_HZ steps
// (10 ms) and user and system time in ticks, while sample timestamps are
// exact, so busy time over a sample interval is not (a 10 ms interval may
// hold 20 ms of it). A state that went back counts as not moving; an
// interval in which no state moved says nothing and is skipped. The mean
// is Σ Δbusy / Σ Δall over the selection (or a window).
func busyOf(source, cpu string, ts []uint64, states []cpuState) Rates {
	r := Rates{Source: source, Name: BusyName, Labels: Labels{{"cpu", cpu}}, Unit: UnitRatio, Kind: snapshot.SeriesGauge}
	pts := make([]point, 0, len(ts))
	for i := 1; i < len(ts); i++ {
		var busy, all uint64
		for _, s := range states {
			if s.vals[i] <= s.vals[i-1] {
				continue
			}
			d := s.vals[i] - s.vals[i-1]
			all += d
			if s.busy {
				busy += d
			}
		}
		if all == 0 {
			continue
		}
		pts = append(pts, point{ts[i], float64(busy) / float64(all), float64(all)})
	}
	if sum, weight := r.fill(ts[0], pts); weight > 0 {
		r.Mean = sum / weight
	}
	return r
}

func (a *analyzer) cpuKept(cpu string) bool {
	if cpu == "all" {
		return len(a.opts.CPUs) == 0
	}
	n, err := strconv.Atoi(cpu)
	return err != nil || a.filter.cpu(n)
}

// rateOf turns one field's samples into its rates (a counter) or levels
// (a gauge), in windows.
func rateOf(source string, fl snapshot.SeriesField, ts, raw []uint64, value func(i int) float64) Rates {
	r := Rates{Source: source, Name: fl.Name, Unit: fl.Unit, Kind: fl.Kind}
	for k, v := range fl.Labels {
		r.Labels = append(r.Labels, Label{k, v})
	}
	sort.Slice(r.Labels, func(i, j int) bool { return r.Labels[i].Name < r.Labels[j].Name })
	counter := fl.Kind == snapshot.SeriesCounter
	pts := make([]point, 0, len(ts))
	for i := range ts {
		if !counter {
			pts = append(pts, point{ts[i], value(i), 1})
			continue
		}
		if i == 0 {
			continue
		}
		dt := float64(ts[i]-ts[i-1]) / 1e9
		if dt <= 0 {
			continue
		}
		d := value(i) - value(i-1)
		if !fl.Signed && raw[i] < raw[i-1] {
			d = 0 // a counter that went back was reset (a device went away)
		}
		pts = append(pts, point{ts[i], d / dt, dt})
	}
	sum, _ := r.fill(ts[0], pts)
	if counter {
		if span := float64(ts[len(ts)-1]-ts[0]) / 1e9; span > 0 {
			r.Mean = sum / span
		}
	} else if r.Intervals > 0 {
		r.Mean = sum / float64(r.Intervals)
	}
	return r
}

// point is one interval's rate (or one level, or share) x, weighing w in
// the means: the interval's length, or the time it shares out.
type point struct {
	ts   uint64 // the interval's end
	x, w float64
}

// fill sets r's Intervals, Max and Windows from the points, each in the
// window its interval ends in, windows starting at start; it returns
// Σ x·w and Σ w.
func (r *Rates) fill(start uint64, pts []point) (sum, weight float64) {
	var xs []float64 // one window's
	var win *Window
	var winSum, winWeight float64
	flush := func() {
		if win == nil || len(xs) == 0 {
			return
		}
		win.Mean = winSum / winWeight
		sort.Float64s(xs)
		win.N = len(xs)
		win.P50, win.P90, win.P99 = quantile(xs, 0.5), quantile(xs, 0.9), quantile(xs, 0.99)
		win.Max = xs[len(xs)-1]
		r.Windows = append(r.Windows, *win)
	}
	r.Max = math.Inf(-1)
	for _, p := range pts {
		w := start + (p.ts-start)/WindowNS*WindowNS
		if win == nil || win.StartNS != w {
			flush()
			win, xs, winSum, winWeight = &Window{StartNS: w}, xs[:0], 0, 0
		}
		xs = append(xs, p.x)
		winSum += p.x * p.w
		winWeight += p.w
		sum += p.x * p.w
		weight += p.w
		r.Intervals++
		r.Max = max(r.Max, p.x)
	}
	flush()
	if r.Intervals == 0 {
		r.Max = 0
	}
	return sum, weight
}

// quantile of sorted values, by nearest rank.
func quantile(sorted []float64, q float64) float64 {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
