package snapshot

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestAroundRange(t *testing.T) {
	const ms = 1_000_000
	fired := &Meta{TakenNS: 1500 * ms, Trigger: Trigger{Kind: TriggerCondition, Firing: &Firing{TS: 1000 * ms}}}
	manual := &Meta{TakenNS: 1500 * ms, Trigger: Trigger{Kind: TriggerManual}}
	// The events span 500ms to 2s.
	const first, last = 500 * ms, 2000 * ms
	for _, c := range []struct {
		spec     string
		m        *Meta
		noSpan   bool // Span found no times: first and last 0
		want     Range
		noFiring bool
		err      string // part of the error; "" for none
	}{
		{spec: "trigger:200ms", m: fired, want: Range{800 * ms, 1200 * ms}},
		{spec: "taken:200ms", m: fired, want: Range{1300 * ms, 1700 * ms}},
		{spec: "trigger:0s", m: fired, want: Range{1000 * ms, 1000 * ms}},
		{spec: "trigger:1.5s", m: fired, want: Range{first, last}},
		{spec: "taken:600ms", m: fired, want: Range{900 * ms, last}},
		// Without a firing, "trigger" is when the snapshot was taken.
		{spec: "trigger:200ms", m: manual, want: Range{1300 * ms, 1700 * ms}, noFiring: true},
		{spec: "taken:200ms", m: manual, want: Range{1300 * ms, 1700 * ms}},
		// No span known: nothing to clip against, and no wrap at the ends
		// of the clock.
		{spec: "trigger:2s", m: fired, noSpan: true, want: Range{0, 3000 * ms}},
		{spec: "trigger:1ns", m: &Meta{Trigger: Trigger{Firing: &Firing{TS: math.MaxUint64}}}, noSpan: true, want: Range{math.MaxUint64 - 1, math.MaxUint64}},

		{spec: "trigger", m: fired, err: "want trigger:D or taken:D"},
		{spec: "", m: fired, err: "want trigger:D or taken:D"},
		{spec: "firing:200ms", m: fired, err: "want trigger:D or taken:D"},
		{spec: "Trigger:200ms", m: fired, err: "want trigger:D or taken:D"},
		{spec: "200ms", m: fired, err: "want trigger:D or taken:D"},
		{spec: "trigger:", m: fired, err: `duration "": want a duration`},
		{spec: "trigger:200", m: fired, err: `duration "200": want a duration`},
		{spec: "trigger:1.5s:2s", m: fired, err: `duration "1.5s:2s"`},
		{spec: "trigger:-200ms", m: fired, err: `duration "-200ms": want 0 or more`},
		{spec: "trigger:100ms", m: &Meta{Trigger: Trigger{Firing: &Firing{TS: 100 * ms}}}, err: "the trigger's firing is 400ms before the first event: none lies within 100ms of it"},
		{spec: "taken:100ms", m: &Meta{TakenNS: 2300 * ms}, err: "the moment the snapshot was taken is 300ms after the last event"},
	} {
		lo, hi := uint64(first), uint64(last)
		if c.noSpan {
			lo, hi = 0, 0
		}
		got, noFiring, err := AroundRange(c.spec, c.m, lo, hi)
		if c.err != "" {
			var re *RangeError
			if !errors.As(err, &re) || re.Bound != "around" || re.Value != c.spec || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: got %v, %v; want a RangeError for around containing %q", c.spec, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want || noFiring != c.noFiring {
			t.Errorf("%q: got %+v, no firing %v, %v; want %+v, %v", c.spec, got, noFiring, err, c.want, c.noFiring)
		}
	}
}

func FuzzAroundRange(f *testing.F) {
	for _, s := range []string{"trigger:200ms", "taken:1.5s", "trigger:-1s", "taken:", "x:1s", "trigger:9223372036854775807ns"} {
		f.Add(s, uint64(1000), uint64(500), uint64(2000))
	}
	f.Fuzz(func(t *testing.T, spec string, at, first, last uint64) {
		if first > last {
			first, last = last, first
		}
		m := &Meta{TakenNS: at, Trigger: Trigger{Firing: &Firing{TS: at}}}
		r, _, err := AroundRange(spec, m, first, last)
		if err != nil {
			return
		}
		if r.From > r.To || (last != 0 && (r.From < first || r.To > last)) {
			t.Fatalf("%q at %d in [%d, %d]: got %+v", spec, at, first, last, r)
		}
		if at < r.From || at > r.To {
			if last == 0 || (at >= first && at <= last) {
				t.Fatalf("%q at %d in [%d, %d]: %+v leaves out the moment itself", spec, at, first, last, r)
			}
		}
	})
}
