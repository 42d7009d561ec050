package counters

import (
	"fmt"
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
	seen := map[string]bool{}
	add := func(n string, exp bool) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
		explicit[n] = explicit[n] || exp
	}
	if len(list) == 0 {
		list = []string{"default"}
	}
	for _, item := range list {
		name, hz, hasRate := strings.Cut(item, "@")
		switch {
		case name == "none":
			continue
		case name == "default" || name == "all":
			set := Default
			if name == "all" {
				set = Names
			}
			for _, n := range set {
				add(n, false)
			}
		case name == "cgroup" || (!strings.HasPrefix(name, "cgroup:") && !contains(Names, name)):
			return nil, nil, nil, fmt.Errorf("unknown source %q; counter sources: %s, cgroup:PATH, default, all, none", name, strings.Join(Names, ", "))
		default:
			add(name, true)
		}
		if hasRate {
			r, err := strconv.ParseFloat(strings.TrimSuffix(strings.ToLower(hz), "hz"), 64)
			if err != nil || r < 1 || r > MaxRate {
				return nil, nil, nil, fmt.Errorf("counter source %q: rate %q: want 1 to %d samples a second", name, hz, MaxRate)
			}
			switch name {
			case "default":
				for _, n := range Default {
					rates[n] = r
				}
			case "all":
				for _, n := range Names {
					rates[n] = r
				}
			default:
				rates[name] = r
			}
		}
	}
	return names, rates, explicit, nil
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// checkRate validates a rate setting: 1 to MaxRate samples a second.
func checkRate(what string, hz float64) error {
	if hz < 1 || hz > MaxRate {
		return fmt.Errorf("%s %g Hz: want 1 to %d samples a second", what, hz, MaxRate)
	}
	return nil
}
