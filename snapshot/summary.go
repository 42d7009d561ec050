package snapshot

import (
	"errors"
	"sort"
	"strconv"
)

// Summary is what a snapshot holds, computed from chunk headers without
// decoding columns.
type Summary struct {
	Events  uint64
	Lost    uint64
	FirstTS uint64 // earliest event on any CPU
	LastTS  uint64 // latest event on any CPU
	PerCPU  []CPUSummary
	// EventCounts counts events by name; ids the schema does not know are
	// counted under "unknown:<id>".
	EventCounts map[string]uint64
	Chunks      int
	// DamagedChunks are chunks whose bytes failed their checks; their
	// events are not in the counts above.
	DamagedChunks int
	// Series are the counter series, in file order; damaged ones are
	// counted in DamagedSeries instead.
	Series        []SeriesSummary
	DamagedSeries int
}

// SeriesSummary is one counter series.
type SeriesSummary struct {
	Source          string
	Fields, Samples int
	FirstTS, LastTS uint64
	RateHz          float64
	Missed          uint64
}

// CPUSummary is the window one CPU's buffer retained.
type CPUSummary struct {
	CPU     int
	Events  uint64
	Lost    uint64
	FirstTS uint64
	LastTS  uint64
}

// Summarize reads every chunk's header and checks its bytes.
func Summarize(r *Reader) (*Summary, error) {
	s := &Summary{EventCounts: map[string]uint64{}}
	per := map[int]*CPUSummary{}
	for _, c := range r.Chunks() {
		counts, err := r.ChunkCounts(c)
		if err != nil {
			var ce *CorruptionError
			if errors.As(err, &ce) {
				s.DamagedChunks++
				continue
			}
			return nil, err
		}
		s.Chunks++
		cs := per[c.CPU]
		if cs == nil {
			cs = &CPUSummary{CPU: c.CPU, FirstTS: c.FirstTS, LastTS: c.LastTS}
			per[c.CPU] = cs
		}
		cs.Events += uint64(c.Events)
		cs.Lost += c.Lost
		cs.FirstTS, cs.LastTS = min(cs.FirstTS, c.FirstTS), max(cs.LastTS, c.LastTS)
		for _, tc := range counts {
			name := unknownName(tc.Type)
			if e := r.Schema().ByID(tc.Type); e != nil {
				name = e.Name
			}
			s.EventCounts[name] += uint64(tc.Count)
		}
	}
	for _, cs := range per {
		s.PerCPU = append(s.PerCPU, *cs)
		s.Events += cs.Events
		s.Lost += cs.Lost
		if s.FirstTS == 0 || cs.FirstTS < s.FirstTS {
			s.FirstTS = cs.FirstTS
		}
		s.LastTS = max(s.LastTS, cs.LastTS)
	}
	sort.Slice(s.PerCPU, func(i, j int) bool { return s.PerCPU[i].CPU < s.PerCPU[j].CPU })
	for _, sec := range r.SeriesSections() {
		ser, err := r.ReadSeries(sec)
		if err != nil {
			var ce *CorruptionError
			if errors.As(err, &ce) {
				s.DamagedSeries++
				continue
			}
			return nil, err
		}
		sum := SeriesSummary{Source: ser.Source, Fields: len(ser.Fields), Samples: len(ser.TS), RateHz: ser.RateHz, Missed: ser.Missed}
		if n := len(ser.TS); n > 0 {
			sum.FirstTS, sum.LastTS = ser.TS[0], ser.TS[n-1]
		}
		s.Series = append(s.Series, sum)
	}
	return s, nil
}

func unknownName(id uint16) string { return "unknown:" + strconv.Itoa(int(id)) }
