package record

import (
	"fmt"
	"sort"
	"strings"

	"github.com/rewindtrace/rewind/bpf"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// SelectEvents expands a list of event names and groups ("sched",
// "syscalls", "process", "default", "all", ...) into catalogue events, in id
// order. An empty list means "default". explicit holds the events named
// one by one, which must be recordable, unlike those a group brings in.
func SelectEvents(list []string) (events []bpf.Event, explicit map[string]bool, err error) {
	catalog, err := bpf.Catalog()
	if err != nil {
		return nil, nil, err
	}
	explicit = map[string]bool{}
	if len(list) == 0 {
		list = []string{kinds.GroupDefault}
	}
	want := map[string]bool{}
	for _, item := range list {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		matched := false
		for _, e := range catalog {
			if item == kinds.GroupAll || e.Name == item || e.Group == item || item == kinds.GroupDefault && isDefault(e.Group) {
				want[e.Name] = true
				matched = true
				explicit[e.Name] = explicit[e.Name] || e.Name == item
			}
		}
		if !matched {
			return nil, nil, fmt.Errorf("unknown event or group %q; groups: %s, all, default; events: %s", item, strings.Join(GroupNames(catalog), ", "), strings.Join(eventNames(catalog), ", "))
		}
	}
	for _, e := range catalog {
		if want[e.Name] {
			events = append(events, e)
		}
	}
	if len(events) == 0 {
		return nil, nil, fmt.Errorf("no events selected")
	}
	return events, explicit, nil
}

func isDefault(group string) bool {
	for _, g := range kinds.DefaultGroups {
		if g == group {
			return true
		}
	}
	return false
}

// GroupNames are the catalogue's groups, sorted.
func GroupNames(catalog []bpf.Event) []string {
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
