package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/rewindtrace/rewind/analyze"
	"github.com/rewindtrace/rewind/analyze/hist"
)

// Summary is a histogram's count and percentiles.
type Summary struct {
	Count uint64 `json:"count"`
	P50   uint64 `json:"p50"`
	P90   uint64 `json:"p90"`
	P99   uint64 `json:"p99"`
	P999  uint64 `json:"p999"`
	Max   uint64 `json:"max"`
}

// DiffRow is one series in both snapshots, or in one (the other nil).
type DiffRow struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	Unit   string            `json:"unit"`
	Before *Summary          `json:"before"`
	After  *Summary          `json:"after"`
	// Change is after/before - 1 per percentile, when both exist.
	Change map[string]float64 `json:"change,omitempty"`
	label  string
	by     string
}

// DiffResult is `rewind diff`.
type DiffResult struct {
	Before, After Snapshot
	Rows          []DiffRow
}

func summary(s *analyze.Series) *Summary {
	if s == nil {
		return nil
	}
	h := s.Hist
	return &Summary{h.Count(), h.Quantile(0.5), h.Quantile(0.9), h.Quantile(0.99), h.Quantile(0.999), h.Max()}
}

// Diff pairs the series of two results by name and labels. Process ids
// differ from run to run, so per-process series pair by process name: the
// series of all processes of one name are merged.
func Diff(sa Snapshot, a *analyze.Result, sb Snapshot, b *analyze.Result) DiffResult {
	d := DiffResult{Before: sa, After: sb}
	type pair struct{ a, b *analyze.Series }
	pairs := map[string]*pair{}
	owned := map[*analyze.Series]bool{} // merged copies, not the results' own
	var order []string
	for i, res := range []*analyze.Result{a, b} {
		for _, s := range res.Histograms {
			s = byName(s)
			k := seriesKey(s)
			p := pairs[k]
			if p == nil {
				p = &pair{}
				pairs[k] = p
				order = append(order, k)
			}
			side := &p.a
			if i == 1 {
				side = &p.b
			}
			if *side == nil {
				*side = s
				continue
			}
			if !owned[*side] {
				c := **side
				c.Hist = hist.New(c.Hist.M())
				c.Hist.Merge((*side).Hist)
				*side = &c
				owned[&c] = true
			}
			(*side).Hist.Merge(s.Hist)
		}
	}
	for _, k := range order {
		p := pairs[k]
		s := p.a
		if s == nil {
			s = p.b
		}
		row := DiffRow{Name: s.Name, Labels: labelMap(s.Labels), Unit: s.Unit, Before: summary(p.a), After: summary(p.b), label: rowLabel(s.Labels), by: s.Labels.Get("by")}
		if row.Before != nil && row.After != nil {
			row.Change = map[string]float64{}
			for name, pv := range map[string][2]uint64{"p50": {row.Before.P50, row.After.P50}, "p90": {row.Before.P90, row.After.P90},
				"p99": {row.Before.P99, row.After.P99}, "p999": {row.Before.P999, row.After.P999}} {
				if pv[0] > 0 {
					row.Change[name] = float64(pv[1])/float64(pv[0]) - 1
				}
			}
		}
		d.Rows = append(d.Rows, row)
	}
	sort.SliceStable(d.Rows, func(i, j int) bool {
		x, y := d.Rows[i], d.Rows[j]
		if x.Name != y.Name {
			return analysisOrder(x.Name) < analysisOrder(y.Name)
		}
		if (x.by == "all") != (y.by == "all") {
			return x.by == "all"
		}
		return count(x) > count(y)
	})
	return d
}

// formatChange prints a relative change as a percentage, or as a factor
// from doubling up.
func formatChange(c float64) string {
	if c >= 1 {
		return "×" + strconv.FormatFloat(c+1, 'g', 3, 64)
	}
	return fmt.Sprintf("%+.0f%%", c*100)
}

// byName drops the pid label of a series that has a process name.
func byName(s *analyze.Series) *analyze.Series {
	if s.Labels.Get("pid") == "" || s.Labels.Get("comm") == "" {
		return s
	}
	c := *s
	c.Labels = nil
	for _, l := range s.Labels {
		if l.Name != "pid" {
			c.Labels = append(c.Labels, l)
		}
	}
	return &c
}

func seriesKey(s *analyze.Series) string {
	var ls []string
	for _, l := range s.Labels {
		ls = append(ls, l.Name+"="+l.Value)
	}
	sort.Strings(ls)
	return s.Name + "{" + strings.Join(ls, ",") + "}"
}

func count(r DiffRow) uint64 {
	var n uint64
	if r.Before != nil {
		n += r.Before.Count
	}
	if r.After != nil {
		n += r.After.Count
	}
	return n
}

func analysisOrder(name string) int {
	for i, n := range analyze.All {
		if n == name {
			return i
		}
	}
	return len(analyze.All)
}

// WriteDiffJSON writes the diff as JSON.
func WriteDiffJSON(w io.Writer, d DiffResult) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Before Snapshot  `json:"before"`
		After  Snapshot  `json:"after"`
		Rows   []DiffRow `json:"histograms"`
	}{d.Before, d.After, d.Rows})
}

// WriteDiffText writes the diff as tables, one per analysis: each
// percentile before → after, with the change.
func WriteDiffText(w io.Writer, d DiffResult, top int) error {
	if top <= 0 {
		top = 10
	}
	fmt.Fprintf(w, "before: %s (%d events)\nafter:  %s (%d events)\n", d.Before.File, d.Before.Events, d.After.File, d.After.Events)
	var tw *tabwriter.Writer
	name := ""
	shown, hidden := map[string]int{}, map[string]int{}
	flush := func() {
		if tw == nil {
			return
		}
		tw.Flush()
		writeHidden(w, hidden)
	}
	for _, r := range d.Rows {
		if r.Name != name {
			flush()
			name = r.Name
			fmt.Fprintf(w, "\n== %s: %s\n", name, Describe[name])
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "\tcount\tp50\tp90\tp99\tp99.9\t")
			shown, hidden = map[string]int{}, map[string]int{}
		}
		if shown[r.by]++; shown[r.by] > top {
			hidden[r.by]++
			continue
		}
		f := func(get func(*Summary) uint64, pct string) string {
			switch {
			case r.Before == nil:
				return "– → " + formatValue(get(r.After), r.Unit)
			case r.After == nil:
				return formatValue(get(r.Before), r.Unit) + " → –"
			}
			s := formatValue(get(r.Before), r.Unit) + " → " + formatValue(get(r.After), r.Unit)
			if c, ok := r.Change[pct]; ok {
				s += " (" + formatChange(c) + ")"
			}
			return s
		}
		counts := func() string {
			c := func(s *Summary) string {
				if s == nil {
					return "–"
				}
				return fmt.Sprint(s.Count)
			}
			return c(r.Before) + " → " + c(r.After)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", r.label, counts(),
			f(func(s *Summary) uint64 { return s.P50 }, "p50"), f(func(s *Summary) uint64 { return s.P90 }, "p90"),
			f(func(s *Summary) uint64 { return s.P99 }, "p99"), f(func(s *Summary) uint64 { return s.P999 }, "p999"))
	}
	flush()
	return nil
}
