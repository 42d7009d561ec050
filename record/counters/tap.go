package counters

import (
	"errors"

	"github.com/rewindtrace/rewind/snapshot"
)

// Sample is one sample of one source, as a tap sees it the moment it is
// taken.
type Sample struct {
	// Source names the source ("cpu", "cgroup:/sys/fs/cgroup/app", ...).
	Source string
	// RateHz is the rate the source is sampled at.
	RateHz float64
	// TS is when the sample was taken, CLOCK_BOOTTIME ns.
	TS int64
	// Fields describe Values. The slice is shared and must not be
	// modified; it may be kept: it stays the same slice (same first
	// element) until the source's fields change, and then a new one comes.
	Fields []snapshot.SeriesField
	// Values holds one value per field, as Series.Values does (signed
	// fields as int64 bit patterns, fixed point as Div says). It points
	// into the sampler's ring: valid only during the call; copy what is
	// needed.
	Values []uint64
	// Fresh says this sample starts anew: the source's first, the first
	// with new fields, or the first after a Start that begins the
	// source's grid again (it was stopped for longer than a period). A
	// rate against the previous sample of the source means nothing then;
	// otherwise it is the rate over the time between the two, stopped
	// time included.
	Fresh bool
}

// Value returns field f's value in its unit, as Series.Value does.
func (s *Sample) Value(f int) float64 {
	v := float64(s.Values[f])
	if s.Fields[f].Signed {
		v = float64(int64(s.Values[f]))
	}
	if d := s.Fields[f].Div; d > 1 {
		v /= float64(d)
	}
	return v
}

// tapFn is one tap set on a Sampler.
type tapFn struct {
	id uint64
	fn func(Sample)
}

// Tap calls fn with every sample of every source, as it is taken, on the
// sampling thread, from the next sample on; a failed read calls nothing.
// Calling remove stops it: once remove returns, fn is not called again.
// remove may be called twice, and after Close.
//
// fn runs holding the Sampler's lock, between two reads of the sources:
// it must return quickly (every moment it takes delays the samples after
// it), and must not call the Sampler (remove included), nor anything
// that waits for a method of the Sampler (the Recorder holding it), or it
// deadlocks. A
// Sampler with no tap pays one length check per sample.
//
// After Close, Tap returns ErrClosed.
func (s *Sampler) Tap(fn func(Sample)) (remove func(), err error) {
	if fn == nil {
		return nil, errors.New("counter tap: nil function")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	s.tapID++
	id := s.tapID
	s.taps = append(s.taps, tapFn{id, fn})
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, t := range s.taps {
			if t.id == id {
				s.taps = append(s.taps[:i:i], s.taps[i+1:]...)
				return
			}
		}
	}, nil
}

// tap hands the sample st just took to the taps. The caller holds mu.
func (s *Sampler) tap(st *stream) {
	if len(s.taps) == 0 {
		return
	}
	seg := st.cur
	w := len(seg.fields)
	k := (seg.next + st.cap - 1) % st.cap
	smp := Sample{Source: st.src.Name, RateHz: st.rate, TS: int64(seg.ts[k]), Fields: seg.fields,
		Values: seg.vals[k*w : (k+1)*w : (k+1)*w], Fresh: st.begun}
	for _, t := range s.taps {
		t.fn(smp)
	}
}
