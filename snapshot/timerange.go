package snapshot

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Range is a closed interval of timestamps in the file's clock.
type Range struct {
	From, To uint64
}

// All is the range of every timestamp.
var All = Range{0, math.MaxUint64}

// RangeError says which setting of a time range is wrong: Bound is "from",
// "to" or "around", Value what was given for it.
type RangeError struct {
	Bound, Value string
	Err          error
}

func (e *RangeError) Error() string { return fmt.Sprintf("%s %q: %v", e.Bound, e.Value, e.Err) }
func (e *RangeError) Unwrap() error { return e.Err }

// ParseRange resolves a range's bounds from and to against the span
// [first, last] of a snapshot. An offset like "1.5s" is that long after
// first; "-2s" is that long before last; "" is the span's edge. Its errors
// are *RangeError.
func ParseRange(from, to string, first, last uint64) (Range, error) {
	r := Range{From: first, To: last}
	var err error
	if from != "" {
		if r.From, err = resolveOffset(from, first, last); err != nil {
			return r, &RangeError{"from", from, err}
		}
	}
	if to != "" {
		if r.To, err = resolveOffset(to, first, last); err != nil {
			return r, &RangeError{"to", to, err}
		}
	}
	if r.From > r.To {
		return r, &RangeError{"from", from, fmt.Errorf("comes after the end of the range, %q", to)}
	}
	return r, nil
}

func resolveOffset(s string, first, last uint64) (uint64, error) {
	neg := strings.HasPrefix(s, "-")
	d, err := time.ParseDuration(strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+"))
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 1.5s, 200ms or -2s (before the end)")
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration")
	}
	if neg {
		if uint64(d) > last-first {
			return first, nil
		}
		return last - uint64(d), nil
	}
	return min(first+uint64(d), last), nil
}

// Anchors of a window given with AroundRange.
const (
	// AroundTrigger is the event that fired the trigger (Firing.TS).
	AroundTrigger = "trigger"
	// AroundTaken is when the snapshot was triggered (Meta.TakenNS).
	AroundTaken = "taken"
)

// AroundRange resolves spec, "trigger:D" or "taken:D" with D a duration
// such as 200ms, to the timestamps within D before and after a moment of
// the snapshot with metadata m, both ends included, clipped to the span
// [first, last] of its events (a last of 0, no span known, clips nothing).
//
// The moment of "taken" is m.TakenNS. That of "trigger" is the event that
// fired the trigger, m.Trigger.Firing.TS; a snapshot without a firing
// (taken by hand, on a signal, or by an older recorder) has no such event,
// so "trigger" falls back to m.TakenNS there and noFiring reports it.
// A window that holds none of the span is an error, as are a bad spec and
// a negative D. Its errors are *RangeError with Bound "around".
func AroundRange(spec string, m *Meta, first, last uint64) (r Range, noFiring bool, err error) {
	fail := func(err error) (Range, bool, error) {
		return Range{}, false, &RangeError{"around", spec, err}
	}
	anchor, dur, ok := strings.Cut(spec, ":")
	if !ok || (anchor != AroundTrigger && anchor != AroundTaken) {
		return fail(fmt.Errorf("want %s:D or %s:D, with D a duration such as 200ms", AroundTrigger, AroundTaken))
	}
	d, err := time.ParseDuration(dur)
	if err != nil {
		return fail(fmt.Errorf("duration %q: want a duration such as 200ms or 1.5s", dur))
	}
	if d < 0 {
		return fail(fmt.Errorf("duration %q: want 0 or more, how far the window reaches either side", dur))
	}
	at, what := m.TakenNS, "the moment the snapshot was taken"
	if anchor == AroundTrigger {
		if f := m.Trigger.Firing; f != nil {
			at, what = f.TS, "the trigger's firing"
		} else {
			noFiring = true
		}
	}
	r = Range{From: 0, To: math.MaxUint64}
	if at > uint64(d) {
		r.From = at - uint64(d)
	}
	if at <= math.MaxUint64-uint64(d) {
		r.To = at + uint64(d)
	}
	if last == 0 {
		return r, noFiring, nil
	}
	switch {
	case r.To < first:
		return fail(fmt.Errorf("%s is %v before the first event: none lies within %v of it", what, time.Duration(first-at), d))
	case r.From > last:
		return fail(fmt.Errorf("%s is %v after the last event: none lies within %v of it", what, time.Duration(at-last), d))
	}
	r.From, r.To = max(r.From, first), min(r.To, last)
	return r, noFiring, nil
}
