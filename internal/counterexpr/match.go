package counterexpr

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rewindtrace/rewind/record/counters"
	"github.com/rewindtrace/rewind/snapshot"
)

// Firing is a field's condition starting to hold.
type Firing struct {
	Expr *Expr
	// Field is the field that crossed, with all its labels.
	Field snapshot.SeriesField
	// TS is the time of the sample it crossed at, CLOCK_BOOTTIME ns.
	TS int64
	// Value is what was compared with the threshold, in the threshold's
	// unit as written (Expr.Unit; a counter's per second).
	Value float64
}

// String says what crossed and how far:
// "memory:MemAvailable = 487.2MiB < 512MiB".
func (f Firing) String() string {
	v := strconv.FormatFloat(f.Value, 'g', 4, 64) + f.Expr.Unit
	if f.Field.Kind == snapshot.SeriesCounter && f.Expr.dim != dimPercent {
		v += "/s"
	}
	return selector(f.Expr.Source, f.Field.Name, f.Field.Labels) + " = " + v + " " + f.Expr.Op + " " +
		strings.TrimPrefix(f.Expr.String(), f.Expr.Selector()+" "+f.Expr.Op+" ")
}

// holds compares x, in the threshold's unit, with it.
func (e *Expr) holds(x float64) bool {
	switch e.Op {
	case ">":
		return x > e.Value
	case ">=":
		return x >= e.Value
	case "<":
		return x < e.Value
	}
	return x <= e.Value
}

// picks says whether the selector names field f (its unit aside).
func (e *Expr) picks(f *snapshot.SeriesField) bool {
	if f.Name != e.Field {
		return false
	}
	for k, v := range e.Labels {
		if f.Labels[k] != v {
			return false
		}
	}
	return true
}

// factor is what turns field f's value (a counter's rate) into the
// threshold's dimension's base unit; false if they do not compare.
func (e *Expr) factor(f *snapshot.SeriesField) (float64, bool) {
	counter := f.Kind == snapshot.SeriesCounter
	if e.PerSecond && !counter {
		return 0, false
	}
	switch e.dim {
	case dimBytes:
		return 1, f.Unit == "bytes"
	case dimNS:
		return 1, f.Unit == "ns"
	case dimPercent:
		switch {
		case f.Unit == "percent":
			return 1, true
		case f.Unit == "ns" && counter:
			return 100 / 1e9, true // 1e9 ns a second is 100%
		}
		return 0, false
	}
	return 1, true
}

// Check says whether the condition can be evaluated on a source with
// these fields: at least one field matches, and every field the selector
// names has a unit the threshold compares with.
func (e *Expr) Check(fields []snapshot.SeriesField) error {
	_, err := e.resolve(fields, nil)
	return err
}

// watched is one field a Matcher evaluates.
type watched struct {
	f      int     // index among the sample's fields
	factor float64 // see Expr.factor
	st     *state
}

// state is what a Matcher remembers of one field.
type state struct {
	prev     float64 // the counter's previous value
	prevTS   int64
	havePrev bool
	holds    bool
}

// resolve finds the fields to watch, with their states from old (by
// selector) or new ones, and says what does not fit.
func (e *Expr) resolve(fields []snapshot.SeriesField, old map[string]*state) ([]watched, error) {
	var out []watched
	var bad error
	for i := range fields {
		f := &fields[i]
		if !e.picks(f) {
			continue
		}
		factor, ok := e.factor(f)
		if !ok {
			if bad == nil {
				unit := e.Unit
				if e.PerSecond {
					unit += "/s"
				}
				bad = fmt.Errorf("counter condition %q: %s is a %s in %s: a threshold in %q does not compare with it",
					e, selector(e.Source, f.Name, f.Labels), f.Kind, f.Unit, unit)
			}
			continue
		}
		st := old[selector(e.Source, f.Name, f.Labels)]
		if st == nil {
			st = &state{}
		}
		out = append(out, watched{i, factor, st})
	}
	if bad == nil && len(out) == 0 {
		bad = fmt.Errorf("counter condition %q: source %s has no field %s", e, e.Source, e.Selector())
	}
	return out, bad
}

// A Matcher evaluates one condition on the samples of its source, fed to
// it in the order they were taken. Not safe for concurrent use: feed it
// from one goroutine (a counter tap) or under a lock.
type Matcher struct {
	e        *Expr
	resolved bool
	fields   []snapshot.SeriesField // the fields watch was resolved for
	watch    []watched
	states   map[string]*state // by the field's selector: survive a change of fields
	err      error
}

// NewMatcher returns a Matcher of e with no field holding yet.
func NewMatcher(e *Expr) *Matcher { return &Matcher{e: e} }

// Expr is the condition the Matcher evaluates.
func (m *Matcher) Expr() *Expr { return m.e }

// Feed evaluates a sample and appends to out a Firing for each field
// whose condition holds at this sample and did not at the one before (or
// on a field's first evaluation); it ignores samples of other sources.
// A counter is compared by its rate since the source's previous sample:
// the first sample, and one marked Fresh, evaluate no counter (nor one
// that went down: its source was reset). Feed allocates only to fire, and
// when the source's fields change.
func (m *Matcher) Feed(s counters.Sample, out []Firing) []Firing {
	if s.Source != m.e.Source {
		return out
	}
	if !m.resolved || !sameSlice(s.Fields, m.fields) {
		m.resolve(s.Fields)
	}
	for _, w := range m.watch {
		st := w.st
		x := s.Value(w.f)
		if s.Fields[w.f].Kind == snapshot.SeriesCounter {
			prev, prevTS, had := st.prev, st.prevTS, st.havePrev
			st.prev, st.prevTS, st.havePrev = x, s.TS, true
			if s.Fresh || !had || s.TS <= prevTS || x < prev {
				continue
			}
			x = (x - prev) * 1e9 / float64(s.TS-prevTS)
		}
		x = x * w.factor / m.e.scale
		holds := m.e.holds(x)
		if holds && !st.holds {
			out = append(out, Firing{Expr: m.e, Field: s.Fields[w.f], TS: s.TS, Value: x})
		}
		st.holds = holds
	}
	return out
}

func (m *Matcher) resolve(fields []snapshot.SeriesField) {
	m.resolved, m.fields = true, fields
	m.watch, m.err = m.e.resolve(fields, m.states)
	m.states = make(map[string]*state, len(m.watch))
	for _, w := range m.watch {
		f := &fields[w.f]
		m.states[selector(m.e.Source, f.Name, f.Labels)] = w.st
	}
}

// Err says what keeps the condition from being evaluated, as of the last
// sample of its source: no field by its name and labels, or one whose
// unit the threshold does not compare with (the fields that do are
// evaluated still). nil before the first sample of the source.
func (m *Matcher) Err() error { return m.err }

// sameSlice says whether a and b are the same slice: the sampler hands a
// source's fields as one slice until they change.
func sameSlice(a, b []snapshot.SeriesField) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
