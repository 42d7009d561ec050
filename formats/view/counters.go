package view

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rewindtrace/rewind/snapshot"
)

// seriesCursor is a counter series and the next of its samples to print.
type seriesCursor struct {
	s    *snapshot.Series
	keys []string // "name{label=value,...}" per field
	next int
}

// loadCounters reads the series opts.Counters names, keeping the samples
// in opts.Range.
func (v *viewer) loadCounters(r *snapshot.Reader) error {
	want := map[string]bool{}
	for _, c := range v.opts.Counters {
		want[c] = true
	}
	if len(want) == 0 {
		return nil
	}
	found := map[string]bool{}
	for _, sec := range r.SeriesSections() {
		s, err := r.ReadSeries(sec)
		if err != nil {
			continue // damage is reported with the rest
		}
		found[s.Source] = true
		if !want["all"] && !want[s.Source] {
			continue
		}
		c := &seriesCursor{s: s}
		for _, f := range s.Fields {
			c.keys = append(c.keys, FieldKey(f))
		}
		for c.next < len(s.TS) && s.TS[c.next] < v.opts.Range.From {
			c.next++
		}
		v.series = append(v.series, c)
	}
	for name := range want {
		if name != "all" && !found[name] {
			return &NotFoundError{What: "counters", Name: name}
		}
	}
	return nil
}

// FieldKey names a counter field with its labels: "user{cpu=0}".
func FieldKey(f snapshot.SeriesField) string {
	if len(f.Labels) == 0 {
		return f.Name
	}
	keys := make([]string, 0, len(f.Labels))
	for k := range f.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(f.Name)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(f.Labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

// flushCounters prints, in time order, the counter samples taken up to ts.
func (v *viewer) flushCounters(ts uint64) error {
	for {
		var best *seriesCursor
		for _, c := range v.series {
			if c.next < len(c.s.TS) && c.s.TS[c.next] <= v.opts.Range.To && c.s.TS[c.next] <= ts &&
				(best == nil || c.s.TS[c.next] < best.s.TS[best.next]) {
				best = c
			}
		}
		if best == nil {
			return nil
		}
		if v.opts.Limit > 0 && v.printed >= v.opts.Limit {
			return errLimit
		}
		v.printed++
		v.buf = v.appendSample(v.buf[:0], best)
		best.next++
		if _, err := v.bw.Write(v.buf); err != nil {
			return err
		}
	}
}

func (v *viewer) appendSample(b []byte, c *seriesCursor) []byte {
	s, i := c.s, c.next
	if v.opts.JSON {
		b = append(b, `{"ts_ns":`...)
		b = strconv.AppendUint(b, s.TS[i], 10)
		b = append(b, `,"counters":`...)
		b = strconv.AppendQuote(b, s.Source)
		b = append(b, `,"values":{`...)
		for f := range s.Fields {
			if f > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, c.keys[f])
			b = append(b, ':')
			b = appendCounter(b, s, f, i)
		}
		return append(b, "}}\n"...)
	}
	if wall, ok := v.meta.WallNS(s.TS[i]); ok {
		b = time.Unix(0, wall).AppendFormat(b, "15:04:05.000000000")
	} else {
		b = strconv.AppendUint(b, s.TS[i], 10)
	}
	b = v.appendDelta(b, s.TS[i])
	b = append(b, " counters "...)
	b = append(b, s.Source...)
	b = append(b, ':')
	for f := range s.Fields {
		b = append(b, ' ')
		b = append(b, c.keys[f]...)
		b = append(b, '=')
		b = appendCounter(b, s, f, i)
	}
	return append(b, '\n')
}

// appendCounter writes field f's value at sample i in its unit: an integer,
// or a decimal for fixed-point fields.
func appendCounter(b []byte, s *snapshot.Series, f, i int) []byte {
	fl := s.Fields[f]
	if fl.Div > 1 {
		return strconv.AppendFloat(b, s.Value(f, i), 'f', len(strconv.FormatUint(fl.Div, 10))-1, 64)
	}
	if fl.Signed {
		return strconv.AppendInt(b, int64(s.Values[f][i]), 10)
	}
	return strconv.AppendUint(b, s.Values[f][i], 10)
}
