package snapshot

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Series is one counter source's samples over a span of time: the values
// of each of its fields at each sample, and what the fields are. A source
// whose fields change while recording (a network interface appears) starts
// a new Series.
type Series struct {
	// Source names what was read: "cpu" (/proc/stat), "memory", "perf",
	// "cgroup:/sys/fs/cgroup/app", ...
	Source string `json:"source"`
	// RateHz is the sampling rate asked for.
	RateHz float64 `json:"rate_hz"`
	// Missed counts samples the sampler could not take on time and skipped.
	Missed uint64        `json:"missed"`
	Fields []SeriesField `json:"fields"`
	// TS holds each sample's CLOCK_BOOTTIME time; Values[f][i] is field f
	// at sample i. Signed fields hold int64 bit patterns.
	TS     []uint64   `json:"-"`
	Values [][]uint64 `json:"-"`
}

// SeriesField describes one field of a source.
type SeriesField struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// Unit of the value: "ns", "bytes", "count", "percent", ...
	Unit string `json:"unit"`
	// Kind is SeriesCounter (a running total: read it as a rate) or
	// SeriesGauge (a level).
	Kind string `json:"kind"`
	// Div, when not 0 or 1, says the stored integer is the value in Unit
	// times Div (fixed point: load averages are stored × 100).
	Div uint64 `json:"div,omitempty"`
	// Signed fields hold int64 values.
	Signed bool `json:"signed,omitempty"`
}

// Series field kinds.
const (
	SeriesCounter = "counter"
	SeriesGauge   = "gauge"
)

// Value returns field f's value at sample i in its unit.
func (s *Series) Value(f, i int) float64 {
	v := float64(s.Values[f][i])
	if s.Fields[f].Signed {
		v = float64(int64(s.Values[f][i]))
	}
	if d := s.Fields[f].Div; d > 1 {
		v /= float64(d)
	}
	return v
}

// seriesHeader is the descriptor a series payload starts with.
type seriesHeader struct {
	Series
	Samples int `json:"samples"`
}

// maxSeriesFields and maxSeriesSamples bound what a reader allocates for a
// damaged descriptor.
const (
	maxSeriesFields  = 1 << 16
	maxSeriesSamples = 1 << 24
)

// EncodeSeries returns s's section payload: a u32 length and a JSON
// descriptor, then the time column (the first time, then deltas) and one
// column per field (the first value, then deltas, zigzag), all varints.
func EncodeSeries(s *Series) ([]byte, error) {
	if len(s.Values) != len(s.Fields) {
		return nil, fmt.Errorf("series %s: %d value columns for %d fields", s.Source, len(s.Values), len(s.Fields))
	}
	for f, col := range s.Values {
		if len(col) != len(s.TS) {
			return nil, fmt.Errorf("series %s: field %s has %d values for %d samples", s.Source, s.Fields[f].Name, len(col), len(s.TS))
		}
	}
	desc, err := json.Marshal(seriesHeader{Series: *s, Samples: len(s.TS)})
	if err != nil {
		return nil, fmt.Errorf("encode series %s: %w", s.Source, err)
	}
	b := make([]byte, 4, 4+len(desc)+len(s.TS)*(2+len(s.Fields)))
	le.PutUint32(b, uint32(len(desc)))
	b = append(b, desc...)
	var prev uint64
	for _, t := range s.TS {
		b = binary.AppendUvarint(b, t-prev)
		prev = t
	}
	for _, col := range s.Values {
		prev = 0
		for _, v := range col {
			b = binary.AppendVarint(b, int64(v-prev))
			prev = v
		}
	}
	return b, nil
}

// DecodeSeries decodes a series payload.
func DecodeSeries(p []byte) (*Series, error) {
	if len(p) < 4 || uint64(le.Uint32(p)) > uint64(len(p)-4) {
		return nil, errors.New("series descriptor overruns the section")
	}
	n := int(le.Uint32(p))
	var h seriesHeader
	if err := json.Unmarshal(p[4:4+n], &h); err != nil {
		return nil, fmt.Errorf("series descriptor: %w", err)
	}
	if h.Samples < 0 || h.Samples > maxSeriesSamples || len(h.Fields) > maxSeriesFields {
		return nil, fmt.Errorf("series %s: %d samples of %d fields is out of bounds", h.Source, h.Samples, len(h.Fields))
	}
	// Every value takes at least a byte: a count the payload cannot hold
	// is damage, found before allocating for it.
	rest := p[4+n:]
	if h.Samples*(1+len(h.Fields)) > len(rest) {
		return nil, fmt.Errorf("series %s: %d samples of %d fields in %d bytes", h.Source, h.Samples, len(h.Fields), len(rest))
	}
	s := h.Series
	s.TS = make([]uint64, h.Samples)
	var prev uint64
	for i := range s.TS {
		d, k := binary.Uvarint(rest)
		if k <= 0 {
			return nil, fmt.Errorf("series %s: time column ends early", s.Source)
		}
		rest = rest[k:]
		prev += d
		s.TS[i] = prev
	}
	s.Values = make([][]uint64, len(s.Fields))
	for f := range s.Values {
		col := make([]uint64, h.Samples)
		prev = 0
		for i := range col {
			d, k := binary.Varint(rest)
			if k <= 0 {
				return nil, fmt.Errorf("series %s: column %s ends early", s.Source, s.Fields[f].Name)
			}
			rest = rest[k:]
			prev += uint64(d)
			col[i] = prev
		}
		s.Values[f] = col
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("series %s: %d bytes left over", s.Source, len(rest))
	}
	return &s, nil
}

// WriteSeries writes one series section, compressed.
func (w *Writer) WriteSeries(s *Series) error {
	p, err := EncodeSeries(s)
	if err != nil {
		return err
	}
	enc, _, err := codecs()
	if err != nil {
		return err
	}
	e := indexEntry{Events: uint32(len(s.TS))}
	if len(s.TS) > 0 {
		e.FirstTS, e.LastTS = s.TS[0], s.TS[len(s.TS)-1]
	}
	return w.section(KindSeries, flagZstd, enc.EncodeAll(p, nil), e)
}

// SeriesSections returns every series section, in file order.
func (r *Reader) SeriesSections() []Section { return r.series }

// ReadSeries reads and decodes one series section. Damage is returned as a
// *CorruptionError and added to Damage.
func (r *Reader) ReadSeries(s Section) (*Series, error) {
	p, err := r.payload(s)
	if err == nil {
		var out *Series
		if out, err = DecodeSeries(p); err == nil {
			return out, nil
		}
		err = corrupt(s.Offset, s.End(), "%v", err)
	}
	return nil, r.damaged(err)
}
