package counters

import (
	"math"
	"time"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot"
)

// stream is one source and the samples kept of it. The Sampler's mu
// guards it.
//
// Samples are taken on a grid: slot k is due at origin + k·period, and a
// sample taken at ts fills slot (ts-origin)/period. The slots between two
// samples are the samples missed, so over one run of the sampler
//
//	samples + missed = (last ts - first ts)/period + 1
//
// exactly, however late the thread wakes. A run's first sample sets the
// origin: time before it (the sampler stopped, the source just added) is
// not counted as missed.
type stream struct {
	src    *Source
	rate   float64
	period int64
	cap    int // samples a segment holds
	cur    *segment
	old    []*segment // closed when the fields changed, oldest first
	last   *segment   // holds the latest sample; the slots missed after it count there
	due    int64      // CLOCK_BOOTTIME ns at which the next sample is due
	fresh  bool       // the next sample starts the grid
	begun  bool       // the latest sample started the grid or new fields (Sample.Fresh)
	origin int64
	slot   int64 // the latest sample's slot
	missed uint64
}

// segment is a ring of samples taken with one set of fields.
type segment struct {
	fields []snapshot.SeriesField
	ts     []uint64
	vals   []uint64 // cap × len(fields), sample by sample
	next   int      // where the next sample goes
	n      int      // samples held
	missed uint64
}

// newStream reads an open source once, to learn its fields and allocate
// its ring; its first sample is taken when sampling next wakes up.
func newStream(src *Source, rate float64, keep time.Duration) (*stream, error) {
	if _, err := src.read(); err != nil {
		return nil, err
	}
	st := &stream{src: src, rate: rate, period: int64(float64(time.Second) / rate), fresh: true}
	st.cap = int(math.Ceil(keep.Seconds()*rate)) + 1
	st.newSegment(keep, int64(sysx.BootNow()))
	return st, nil
}

// sample reads the source into its ring and sets when the next sample is
// due. A read that fails stores nothing; its slot counts as missed when
// the next read succeeds.
func (st *stream) sample(keep time.Duration) error {
	changed, err := st.src.read()
	ts := int64(sysx.BootNow())
	if err != nil {
		if st.fresh {
			st.due = ts + st.period
		} else {
			st.due = st.origin + ((ts-st.origin)/st.period+1)*st.period
		}
		return err
	}
	if changed {
		st.newSegment(keep, ts)
	}
	st.begun = st.fresh || changed
	if st.fresh {
		st.origin, st.slot, st.fresh = ts, 0, false
	} else {
		slot := (ts - st.origin) / st.period
		if gap := uint64(slot - st.slot - 1); slot > st.slot+1 {
			st.missed += gap
			st.last.missed += gap
		}
		st.slot = slot
	}
	seg := st.cur
	w := len(seg.fields)
	st.src.values(seg.vals[seg.next*w : (seg.next+1)*w])
	seg.ts[seg.next] = uint64(ts)
	seg.next = (seg.next + 1) % st.cap
	seg.n = min(seg.n+1, st.cap)
	st.last = seg
	st.due = st.origin + (st.slot+1)*st.period
	return nil
}

// newSegment starts a ring for the source's current fields.
func (st *stream) newSegment(keep time.Duration, now int64) {
	if st.cur != nil && st.cur.n > 0 {
		st.old = append(st.old, st.cur)
	}
	f := append([]snapshot.SeriesField(nil), st.src.Fields()...)
	st.cur = &segment{fields: f, ts: make([]uint64, st.cap), vals: make([]uint64, st.cap*len(f))}
	st.prune(keep, now)
}

// prune drops closed segments whose newest sample is older than keep.
func (st *stream) prune(keep time.Duration, now int64) {
	kept := st.old[:0]
	for _, seg := range st.old {
		if newest := seg.ts[(seg.next+st.cap-1)%st.cap]; now-int64(newest) <= int64(keep) {
			kept = append(kept, seg)
		}
	}
	clear(st.old[len(kept):])
	st.old = kept
}

// bytes is the memory the stream's rings hold.
func (st *stream) bytes() uint64 {
	n := uint64(st.cap) * uint64(1+len(st.cur.fields)) * 8
	for _, seg := range st.old {
		n += uint64(st.cap) * uint64(1+len(seg.fields)) * 8
	}
	return n
}

// series copies the rings, a Series per segment, oldest first.
func (st *stream) series(out []*snapshot.Series) []*snapshot.Series {
	for _, seg := range append(append([]*segment(nil), st.old...), st.cur) {
		if seg.n == 0 {
			continue
		}
		w := len(seg.fields)
		ser := &snapshot.Series{Source: st.src.Name, RateHz: st.rate, Missed: seg.missed,
			Fields: append([]snapshot.SeriesField(nil), seg.fields...), TS: make([]uint64, seg.n), Values: make([][]uint64, w)}
		for f := range ser.Values {
			ser.Values[f] = make([]uint64, seg.n)
		}
		first := (seg.next - seg.n + st.cap) % st.cap
		for i := 0; i < seg.n; i++ {
			k := (first + i) % st.cap
			ser.TS[i] = seg.ts[k]
			for f := 0; f < w; f++ {
				ser.Values[f][i] = seg.vals[k*w+f]
			}
		}
		out = append(out, ser)
	}
	return out
}
