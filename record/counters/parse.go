package counters

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ParseSources splits a list of sources as Config.Sources and Sampler.Add
// take them: names, "cgroup:PATH", the groups "default" and "all", "none",
// and a rate per item written NAME@HZ. explicit says which names were
// asked for by name rather than through a group. An empty list is
// "default".
func ParseSources(list []string) (names []string, rates map[string]float64, explicit map[string]bool, err error) {
	rates, explicit = map[string]float64{}, map[string]bool{}
	if len(list) == 0 {
		list = []string{"default"}
	}
	for _, item := range list {
		name, hz, hasRate := strings.Cut(item, "@")
		var set []string
		byName := false
		switch {
		case name == "none":
			continue
		case name == "default":
			set = Default
		case name == "all":
			set = Names
		case strings.HasPrefix(name, "cgroup:") || slices.Contains(Names, name):
			set, byName = []string{name}, true
		default:
			return nil, nil, nil, fmt.Errorf("unknown source %q; counter sources: %s, cgroup:PATH, default, all, none", name, strings.Join(Names, ", "))
		}
		var r float64
		if hasRate {
			if r, err = strconv.ParseFloat(strings.TrimSuffix(strings.ToLower(hz), "hz"), 64); err != nil {
				return nil, nil, nil, fmt.Errorf("counter source %q: rate %q: not a number of samples a second", name, hz)
			}
			if err := checkRate(fmt.Sprintf("counter source %q: rate", name), r); err != nil {
				return nil, nil, nil, err
			}
		}
		for _, n := range set {
			if _, seen := explicit[n]; !seen {
				names = append(names, n)
			}
			explicit[n] = explicit[n] || byName
			if hasRate {
				rates[n] = r
			}
		}
	}
	return names, rates, explicit, nil
}

// checkRate validates a rate setting: 1 to MaxRate samples a second (NaN
// is not).
func checkRate(what string, hz float64) error {
	if !(hz >= 1 && hz <= MaxRate) {
		return fmt.Errorf("%s %g Hz: want 1 to %d samples a second", what, hz, MaxRate)
	}
	return nil
}
