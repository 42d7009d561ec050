package counterexpr

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/rewindtrace/rewind/internal/units"
	"github.com/rewindtrace/rewind/record/counters"
)

// Expr is a parsed condition. Its fields are read-only once parsed.
type Expr struct {
	// Source and Field name the counter; Labels, when not empty, pick
	// fields that carry these labels with these values.
	Source string
	Field  string
	Labels map[string]string
	// Op is ">", ">=", "<" or "<=".
	Op string
	// Value is the threshold as written, in Unit ("" when bare).
	Value float64
	Unit  string
	// PerSecond says the threshold was written with /s.
	PerSecond bool

	dim   dim
	scale float64 // Value×scale is the threshold in the dimension's base unit
}

// dim is what a threshold's unit measures.
type dim int

const (
	dimNone    dim = iota // the field's own unit
	dimBytes              // bytes
	dimNS                 // nanoseconds
	dimPercent            // percent
)

var ops = []string{">=", "<=", ">", "<"} // two-byte ones first

// Parse reads a condition (see the package documentation). Errors name
// the part that is wrong.
func Parse(s string) (*Expr, error) {
	e, err := parse(s)
	if err != nil {
		return nil, fmt.Errorf("counter condition %q: %w", s, err)
	}
	return e, nil
}

func parse(s string) (*Expr, error) {
	i, err := opIndex(s)
	if err != nil {
		return nil, err
	}
	e := &Expr{}
	if err := e.parseSelector(strings.TrimSpace(s[:i])); err != nil {
		return nil, err
	}
	rest := s[i:]
	for _, op := range ops {
		if strings.HasPrefix(rest, op) {
			e.Op, rest = op, rest[len(op):]
			break
		}
	}
	if e.Op == "" || strings.HasPrefix(rest, "=") || strings.HasPrefix(rest, "<") || strings.HasPrefix(rest, ">") {
		return nil, fmt.Errorf("operator %q: want >, >=, < or <=", strings.TrimSpace(s[i:min(len(s), i+3)]))
	}
	if err := e.parseThreshold(strings.TrimSpace(rest)); err != nil {
		return nil, err
	}
	return e, nil
}

// opIndex finds the operator: the first <, >, = or ! outside the labels'
// braces and quotes.
func opIndex(s string) (int, error) {
	braces, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\':
			i++
		case c == '"' && braces:
			quoted = !quoted
		case quoted:
		case c == '{':
			braces = true
		case c == '}':
			braces = false
		case !braces && strings.IndexByte("<>=!", c) >= 0:
			return i, nil
		}
	}
	if b := strings.IndexByte(s, '{'); braces && b >= 0 {
		if quoted {
			return 0, fmt.Errorf("labels %s: a quoted value is not closed", strings.TrimSpace(s[b:]))
		}
		return 0, fmt.Errorf("labels %s: want {NAME=VALUE,...} closed by }", strings.TrimSpace(s[b:]))
	}
	return 0, fmt.Errorf("no comparison: want SOURCE:FIELD OP NUMBER, as pressure:avg10{resource=cpu,kind=some} > 40 (OP: >, >=, <, <=)")
}

func (e *Expr) parseSelector(sel string) error {
	name, labels, hasLabels := strings.Cut(sel, "{")
	name = strings.TrimSpace(name)
	c := strings.LastIndexByte(name, ':')
	if c < 0 {
		return fmt.Errorf("counter %q: want SOURCE:FIELD, as memory:MemAvailable", sel)
	}
	e.Source, e.Field = name[:c], name[c+1:]
	switch {
	case e.Source == "":
		return fmt.Errorf("counter %q: no source before the colon", sel)
	case strings.HasPrefix(e.Source, "cgroup:"):
		if !strings.HasPrefix(e.Source, "cgroup:/") {
			return fmt.Errorf("source %q: want cgroup:PATH with an absolute path", e.Source)
		}
	case !slices.Contains(counters.Names, e.Source):
		return fmt.Errorf("source %q: unknown; sources: %s, cgroup:PATH", e.Source, strings.Join(counters.Names, ", "))
	}
	if e.Field == "" || strings.ContainsAny(e.Field, " \t\"',}") {
		return fmt.Errorf("field %q of source %s: want a field's name, as rewind info lists them", e.Field, e.Source)
	}
	if !hasLabels {
		return nil
	}
	body, ok := strings.CutSuffix(strings.TrimSpace(labels), "}")
	if !ok {
		return fmt.Errorf("labels {%s: want {NAME=VALUE,...} closed by }", labels)
	}
	e.Labels = map[string]string{}
	for body = strings.TrimSpace(body); body != ""; {
		k, rest, ok := strings.Cut(body, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\",{}") {
			return fmt.Errorf("label %q: want NAME=VALUE", strings.TrimSpace(body))
		}
		rest = strings.TrimSpace(rest)
		var v string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return fmt.Errorf("label %s: value %s: an unterminated or malformed quoted string", k, rest)
			}
			v, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			end := strings.IndexAny(rest, ",")
			if end < 0 {
				end = len(rest)
			}
			v, rest = strings.TrimSpace(rest[:end]), rest[end:]
			if strings.ContainsAny(v, "\"{}") {
				return fmt.Errorf("label %s: value %q: quote a value holding quotes or braces", k, v)
			}
		}
		if _, dup := e.Labels[k]; dup {
			return fmt.Errorf("label %s: given twice", k)
		}
		e.Labels[k] = v
		rest = strings.TrimSpace(rest)
		if rest != "" && !strings.HasPrefix(rest, ",") {
			return fmt.Errorf("label %s: want a comma or } after its value, not %q", k, rest)
		}
		body = strings.TrimSpace(strings.TrimPrefix(rest, ","))
	}
	if len(e.Labels) == 0 {
		e.Labels = nil
	}
	return nil
}

// sizeUnits are the size units a threshold may be in, lower-cased; like
// every size in rewind (internal/units), they are powers of 1024.
var sizeUnits = []string{"b", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib"}

// timeUnits are the times a threshold may be in, in ns.
var timeUnits = map[string]float64{"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}

func (e *Expr) parseThreshold(t string) error {
	if t == "" {
		return fmt.Errorf("threshold: missing; want a number after %s", e.Op)
	}
	num, unit := splitNumber(t)
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return fmt.Errorf("threshold %q: want a number, then optionally a unit", t)
	}
	unit = strings.TrimSpace(unit)
	if u, ok := strings.CutSuffix(unit, "/s"); ok {
		e.PerSecond, unit = true, strings.TrimSpace(u)
	}
	e.Value, e.Unit, e.scale = v, unit, 1
	switch {
	case unit == "":
		e.dim = dimNone
	case unit == "%":
		e.dim = dimPercent
	case timeUnits[unit] != 0:
		e.dim, e.scale = dimNS, timeUnits[unit]
	default:
		// A size, as rewind reads them everywhere: the unit's factor is
		// what 1 of it is in bytes.
		one, err := units.ParseSize("1" + unit)
		if err != nil || !slices.Contains(sizeUnits, strings.ToLower(unit)) {
			return fmt.Errorf("threshold %q: unknown unit %q; want none, %%, a size (B, KiB, MiB, GiB) or a time (ns, us, ms, s), then optionally /s", t, unit)
		}
		e.dim, e.scale = dimBytes, float64(one)
	}
	return nil
}

// splitNumber splits a threshold into its number and what follows.
func splitNumber(t string) (num, unit string) {
	i := 0
	if i < len(t) && (t[i] == '-' || t[i] == '+') {
		i++
	}
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	if i+1 < len(t) && (t[i] == 'e' || t[i] == 'E') {
		j := i + 1
		if t[j] == '-' || t[j] == '+' {
			j++
		}
		if j < len(t) && t[j] >= '0' && t[j] <= '9' {
			for i = j; i < len(t) && t[i] >= '0' && t[i] <= '9'; i++ {
			}
		}
	}
	return t[:i], t[i:]
}

// String writes the condition back in the syntax Parse reads, labels in
// name order: Parse(e.String()) is e.
func (e *Expr) String() string {
	var b strings.Builder
	b.WriteString(e.Selector())
	b.WriteString(" " + e.Op + " ")
	b.WriteString(strconv.FormatFloat(e.Value, 'g', -1, 64))
	b.WriteString(e.Unit)
	if e.PerSecond {
		b.WriteString("/s")
	}
	return b.String()
}

// Selector writes SOURCE:FIELD{LABELS}.
func (e *Expr) Selector() string { return selector(e.Source, e.Field, e.Labels) }

func selector(source, field string, labels map[string]string) string {
	s := source + ":" + field
	if len(labels) == 0 {
		return s
	}
	var ls []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		v := labels[k]
		if v == "" || strings.ContainsAny(v, " \t,{}\"\\=<>!") || strconv.Quote(v) != `"`+v+`"` {
			v = strconv.Quote(v)
		}
		ls = append(ls, k+"="+v)
	}
	return s + "{" + strings.Join(ls, ",") + "}"
}

// MarshalText writes String, so that an Expr saves as its text.
func (e *Expr) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText parses text as Parse does.
func (e *Expr) UnmarshalText(text []byte) error {
	p, err := Parse(string(text))
	if err != nil {
		return err
	}
	*e = *p
	return nil
}
