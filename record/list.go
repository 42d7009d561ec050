package record

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/rewindtrace/rewind/bpf"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// EventStatus is a catalogue event and whether this machine can record it.
type EventStatus struct {
	Name       string         `json:"name"`
	Group      string         `json:"group"`
	Tracepoint string         `json:"tracepoint"`
	Default    bool           `json:"default"`
	Supported  bool           `json:"supported"`
	Reason     string         `json:"reason,omitempty"`
	Fields     []schema.Field `json:"fields"`
}

// EventList is what this machine can record: `rewind list --events
// --json` (docs/JSON.md).
type EventList struct {
	// Verified says the programs were loaded, so the verifier's verdict
	// counts; otherwise only the kernel's BTF was checked.
	Verified bool `json:"verified"`
	// Build is which build of the programs this kernel loads (verified
	// lists only): bpf.Objects.Build.
	Build  string        `json:"build,omitempty"`
	Events []EventStatus `json:"events"`
	// Groups are the events each group (and "all", "default") selects.
	Groups map[string][]string `json:"groups"`
}

// List says, for every catalogue event, whether this machine can record
// it and why not, and which events each group selects.
func List(kernelBTF string) (*EventList, error) {
	u, err := sysx.GetUname()
	if err != nil {
		return nil, err
	}
	if err := checkKernelVersion(u.Release); err != nil {
		return nil, err
	}
	events, build, err := listEvents(kernelBTF)
	if err != nil {
		return nil, err
	}
	l := &EventList{Verified: build != "", Build: build, Events: events, Groups: map[string][]string{}}
	for _, e := range events {
		l.Groups[e.Group] = append(l.Groups[e.Group], e.Name)
		l.Groups[kinds.GroupAll] = append(l.Groups[kinds.GroupAll], e.Name)
		if e.Default {
			l.Groups[kinds.GroupDefault] = append(l.Groups[kinds.GroupDefault], e.Name)
		}
	}
	return l, nil
}

// WriteText prints the list as a table, what is not supported and why,
// and the groups.
func (l *EventList) WriteText(w io.Writer) error {
	byGroup := append([]EventStatus(nil), l.Events...)
	sort.SliceStable(byGroup, func(i, j int) bool { return byGroup[i].Group < byGroup[j].Group })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tGROUP\tDEFAULT\tSUPPORTED\tFIELDS")
	var missing []EventStatus
	for _, e := range byGroup {
		def, ok := "", "yes"
		if e.Default {
			def = "yes"
		}
		if !e.Supported {
			ok = "no (below)"
			missing = append(missing, e)
		}
		var fields []string
		for _, f := range e.Fields {
			fields = append(fields, f.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, e.Group, def, ok, strings.Join(fields, ","))
	}
	tw.Flush()
	if len(missing) > 0 {
		fmt.Fprintln(w, "\nnot supported here:")
		for _, e := range missing {
			fmt.Fprintf(w, "  %s: %s\n", e.Name, e.Reason)
		}
	}
	names := make([]string, 0, len(l.Groups))
	for g := range l.Groups {
		names = append(names, g)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "\ngroups (for --events):")
	for _, g := range names {
		fmt.Fprintf(w, "  %-10s %s\n", g, strings.Join(l.Groups[g], ","))
	}
	if l.Build != "" {
		fmt.Fprintf(w, "\nprograms: %s\n", l.Build)
	}
	if !l.Verified {
		fmt.Fprintln(w, "\nchecked against the kernel's BTF only; as root, list also loads the programs, so the verifier's verdict counts")
	}
	return nil
}

// listEvents says, for every catalogue event, whether this machine can
// record it and why not. As root it loads the programs, so the verifier's
// verdict counts, and returns which build it loaded; otherwise it checks
// the kernel's BTF and build is "".
func listEvents(kernelBTF string) (out []EventStatus, build string, err error) {
	catalog, err := bpf.Catalog()
	if err != nil {
		return nil, "", err
	}
	var unsupported map[string]string
	if os.Geteuid() == 0 {
		cpus, err := ebpf.PossibleCPU()
		if err != nil {
			return nil, "", err
		}
		objs, err := bpf.Load(bpf.Options{CPUs: cpus, SlotsPerCPU: bpf.MinSlots, SelfTGID: uint32(os.Getpid()), KernelBTF: kernelBTF})
		if err != nil {
			return nil, "", err
		}
		unsupported = objs.Unsupported()
		build = objs.Build()
		objs.Close()
	} else {
		var kernel *btf.Spec
		if kernelBTF != "" {
			if kernel, err = btf.LoadSpec(kernelBTF); err != nil {
				return nil, "", fmt.Errorf("load kernel BTF %s: %w", kernelBTF, err)
			}
		}
		support := bpf.Support(kernel)
		unsupported = map[string]string{}
		for _, e := range catalog {
			if why := support(e); why != "" {
				unsupported[e.Name] = why
			}
		}
	}
	for _, e := range catalog {
		why, bad := unsupported[e.Name]
		out = append(out, EventStatus{Name: e.Name, Group: e.Group, Tracepoint: e.Tracepoint, Default: isDefault(e.Group),
			Supported: !bad, Reason: why, Fields: e.Fields})
	}
	return out, build, nil
}
