package trigger

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Reasons a match did not fire.
const (
	SuppressedPolicy     = "policy"       // every:N or once-after:N passed it
	SuppressedCooldown   = "cooldown"     // within the cooldown of the last firing
	SuppressedMaxPerHour = "max_per_hour" // the hour's firings were used up
	// SuppressedPending: the trigger's previous snapshot was still
	// waiting out its delay or being taken, and covers this match.
	SuppressedPending = "pending"
)

// Policy decides which matches of a condition fire: LTTng's every:N (every
// Nth match) and once-after:N (the Nth match, once), then a cooldown after
// each firing and a cap per sliding hour. It counts what it suppressed, by
// reason. A Policy is not safe for concurrent use.
type Policy struct {
	Every      uint64 // fire on every Nth match; 0 or 1: on each
	OnceAfter  uint64 // fire once, on the Nth match; 0: not this policy
	Cooldown   time.Duration
	MaxPerHour int // 0: no cap

	Matches    uint64
	Fired      uint64
	Suppressed map[string]uint64
	last       time.Time
	hour       []time.Time // firings in the last hour, oldest first
}

// ParseRate reads "every:N" or "once-after:N" into p (empty: every match).
func (p *Policy) ParseRate(s string) error {
	if s == "" {
		return nil
	}
	kind, v, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(v, 10, 64)
	if !ok || err != nil || n == 0 {
		return fmt.Errorf("rate policy %q: want every:N or once-after:N with N at least 1", s)
	}
	switch kind {
	case "every":
		p.Every = n
	case "once-after":
		p.OnceAfter = n
	default:
		return fmt.Errorf("rate policy %q: want every:N or once-after:N", s)
	}
	return nil
}

// Rate renders the rate policy as ParseRate reads it.
func (p *Policy) Rate() string {
	switch {
	case p.OnceAfter > 0:
		return fmt.Sprintf("once-after:%d", p.OnceAfter)
	case p.Every > 1:
		return fmt.Sprintf("every:%d", p.Every)
	}
	return ""
}

// Pass counts one match that did not reach the policy, for why.
func (p *Policy) Pass(why string) {
	p.Matches++
	if p.Suppressed == nil {
		p.Suppressed = map[string]uint64{}
	}
	p.Suppressed[why]++
}

// Match counts one match at now and says whether it fires, or why not.
func (p *Policy) Match(now time.Time) (bool, string) {
	p.Matches++
	why := p.judge(now)
	if why != "" {
		if p.Suppressed == nil {
			p.Suppressed = map[string]uint64{}
		}
		p.Suppressed[why]++
		return false, why
	}
	p.Fired++
	p.last = now
	p.hour = append(p.hour, now)
	return true, ""
}

func (p *Policy) judge(now time.Time) string {
	switch {
	case p.OnceAfter > 0 && p.Matches != p.OnceAfter:
		return SuppressedPolicy
	case p.Every > 1 && p.Matches%p.Every != 0:
		return SuppressedPolicy
	case p.Cooldown > 0 && p.Fired > 0 && now.Sub(p.last) < p.Cooldown:
		return SuppressedCooldown
	}
	if p.MaxPerHour > 0 {
		for len(p.hour) > 0 && now.Sub(p.hour[0]) >= time.Hour {
			p.hour = p.hour[1:]
		}
		if len(p.hour) >= p.MaxPerHour {
			return SuppressedMaxPerHour
		}
	}
	return ""
}
