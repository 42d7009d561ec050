package record

import (
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/rewindtrace/rewind/bpf"
	"github.com/rewindtrace/rewind/snapshot/schema"
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

// ListEvents says, for every catalogue event, whether this machine can
// record it and why not. As root it loads the programs, so the verifier's
// verdict counts (verified is true); otherwise it checks the kernel's BTF.
func ListEvents(kernelBTF string) (out []EventStatus, verified bool, err error) {
	catalog, err := bpf.Catalog()
	if err != nil {
		return nil, false, err
	}
	var unsupported map[string]string
	if os.Geteuid() == 0 {
		cpus, err := ebpf.PossibleCPU()
		if err != nil {
			return nil, false, err
		}
		objs, err := bpf.Load(bpf.Options{CPUs: cpus, SlotsPerCPU: bpf.MinSlots, SelfTGID: uint32(os.Getpid()), KernelBTF: kernelBTF})
		if err != nil {
			return nil, false, err
		}
		unsupported = objs.Unsupported()
		objs.Close()
		verified = true
	} else {
		var kernel *btf.Spec
		if kernelBTF != "" {
			if kernel, err = btf.LoadSpec(kernelBTF); err != nil {
				return nil, false, fmt.Errorf("load kernel BTF %s: %w", kernelBTF, err)
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
	return out, verified, nil
}
