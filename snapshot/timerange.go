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

// RangeError says which bound of a time range is wrong: Bound is "from" or
// "to", Value what was given for it.
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
