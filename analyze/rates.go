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
// are of a window's intervals, never of totals since boot.
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
	// time (not a mean of rates), or the gauge's mean level.
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

// derived counters computed from a source's fields: a CPU's busy time is
// every state but idle and iowait (guest time is inside user time).
var busyStates = map[string]bool{"user": true, "nice": true, "system": true, "irq": true, "softirq": true, "steal": true}

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
		// A CPU's busy time, by CPU, summed over the busy states.
		busy := map[string][]uint64{}
		for f, fl := range s.Fields {
			if cpu := fl.Labels["cpu"]; cpu != "" && !a.cpuKept(cpu) {
				continue
			}
			vals := s.Values[f][first:last]
			r := rateOf(s.Source, fl, ts, vals, func(i int) float64 { return s.Value(f, first+i) })
			out = append(out, r)
			if s.Source == "cpu" && busyStates[fl.Name] {
				cpu := fl.Labels["cpu"]
				if busy[cpu] == nil {
					busy[cpu] = make([]uint64, len(vals))
				}
				for i, v := range vals {
					busy[cpu][i] += v
				}
			}
		}
		for cpu, vals := range busy {
			fl := snapshot.SeriesField{Name: "busy", Labels: map[string]string{"cpu": cpu}, Unit: "ns", Kind: snapshot.SeriesCounter}
			out = append(out, rateOf(s.Source, fl, ts, vals, func(i int) float64 { return float64(vals[i]) }))
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
	r.Max = math.Inf(-1)
	var points []float64 // one window's
	var win *Window
	var sum float64
	flush := func() {
		if win == nil || len(points) == 0 {
			return
		}
		sort.Float64s(points)
		win.N = len(points)
		win.P50, win.P90, win.P99 = quantile(points, 0.5), quantile(points, 0.9), quantile(points, 0.99)
		win.Max = points[len(points)-1]
		r.Windows = append(r.Windows, *win)
	}
	start := ts[0]
	var winSum, winTime float64
	for i := range ts {
		var x, dt float64
		if counter {
			if i == 0 {
				continue
			}
			dt = float64(ts[i]-ts[i-1]) / 1e9
			if dt <= 0 {
				continue
			}
			d := value(i) - value(i-1)
			if !fl.Signed && raw[i] < raw[i-1] {
				d = 0 // a counter that went back was reset (a device went away)
			}
			x = d / dt
		} else {
			x, dt = value(i), 1
		}
		w := start + (ts[i]-start)/WindowNS*WindowNS
		if win == nil || win.StartNS != w {
			if win != nil {
				win.Mean = winSum / winTime
			}
			flush()
			win, points, winSum, winTime = &Window{StartNS: w}, points[:0], 0, 0
		}
		points = append(points, x)
		winSum += x * dt
		winTime += dt
		sum += x * dt
		r.Intervals++
		r.Max = max(r.Max, x)
	}
	if win != nil {
		win.Mean = winSum / winTime
	}
	flush()
	if counter {
		if span := float64(ts[len(ts)-1]-ts[0]) / 1e9; span > 0 {
			r.Mean = sum / span
		}
	} else if r.Intervals > 0 {
		r.Mean = sum / float64(r.Intervals)
	}
	if r.Intervals == 0 {
		r.Max = 0
	}
	return r
}

// quantile of sorted values, by nearest rank.
func quantile(sorted []float64, q float64) float64 {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
