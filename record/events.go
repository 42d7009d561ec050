package record

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rewindtrace/rewind/bpf"
)

// SelectEvents expands a list of event names and groups ("sched",
// "syscalls", "process", "default", "all") into catalogue events, in id
// order. An empty list means "default".
func SelectEvents(list []string) ([]bpf.Event, error) {
	catalog, err := bpf.Catalog()
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		list = []string{"default"}
	}
	want := map[string]bool{}
	for _, item := range list {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		matched := false
		for _, e := range catalog {
			if item == "all" || e.Name == item || e.Group == item || item == "default" && isDefault(e.Group) {
				want[e.Name] = true
				matched = true
			}
		}
		if !matched {
			return nil, fmt.Errorf("unknown event or group %q; groups: %s, all, default; events: %s", item, strings.Join(groupNames(catalog), ", "), strings.Join(eventNames(catalog), ", "))
		}
	}
	var out []bpf.Event
	for _, e := range catalog {
		if want[e.Name] {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no events selected")
	}
	return out, nil
}

func isDefault(group string) bool {
	for _, g := range bpf.DefaultGroups {
		if g == group {
			return true
		}
	}
	return false
}

func groupNames(catalog []bpf.Event) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range catalog {
		if !seen[e.Group] {
			seen[e.Group] = true
			out = append(out, e.Group)
		}
	}
	sort.Strings(out)
	return out
}

func eventNames(catalog []bpf.Event) []string {
	var out []string
	for _, e := range catalog {
		out = append(out, e.Name)
	}
	return out
}
