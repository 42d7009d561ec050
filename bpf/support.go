package bpf

import (
	"fmt"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// Support returns a function that says why this kernel cannot record an
// event, or "" when it can, from what needs no privileges: the tracepoint's
// BTF (tp_btf attaches by it) and the hardware the event reports on. kernel
// is the kernel's BTF, or nil for the running kernel's own. Whether the
// verifier accepts the program is known only when Load tries it.
func Support(kernel *btf.Spec) func(Event) string {
	var (
		once sync.Once
		err  error
	)
	return func(e Event) string {
		if e.Program == "" {
			return "rewind's BPF object for this architecture has no program for it"
		}
		once.Do(func() {
			if kernel == nil {
				kernel, err = btf.LoadKernelSpec()
			}
		})
		if err != nil {
			return fmt.Sprintf("no kernel BTF: %v", err)
		}
		var fn *btf.Typedef
		if e.PerfEvent() {
			return ""
		}
		if kernel.TypeByName("btf_trace_"+e.Tracepoint, &fn) != nil {
			return fmt.Sprintf("this kernel has no %s tracepoint (no btf_trace_%s in its BTF)", e.Tracepoint, e.Tracepoint)
		}
		if why := hardware[e.Name]; why != nil {
			return why()
		}
		return ""
	}
}

// hardware holds events a kernel may have but a machine never fires.
var hardware = map[string]func() string{
	kinds.CPUFrequency: func() string {
		if _, err := os.Stat("/sys/devices/system/cpu/cpu0/cpufreq"); err != nil {
			return "no cpufreq driver on this machine (/sys/devices/system/cpu/cpu0/cpufreq is missing), so the frequency never changes"
		}
		return ""
	},
}

// maxArgs mirrors RW_MAX_ARGS in include/ring.h.
const maxArgs = 8

// setArgSizes writes rw_tp_argsize (include/ring.h): for each event's
// tracepoint, the size of each argument this kernel passes, from the
// prototype of btf_trace_<tracepoint> in its BTF (kernel, or the running
// kernel's when nil). A tracepoint the kernel lacks keeps zeros; Support
// reports it.
func setArgSizes(spec *ebpf.CollectionSpec, events []Event, kernel *btf.Spec) error {
	v, ok := spec.Variables["rw_tp_argsize"]
	if !ok {
		return fmt.Errorf("the BPF object has no rw_tp_argsize")
	}
	sizes := make([]uint8, v.Size())
	if kernel == nil {
		var err error
		if kernel, err = btf.LoadKernelSpec(); err != nil {
			return fmt.Errorf("no kernel BTF: %w", err)
		}
	}
	for _, e := range events {
		if e.Tracepoint == "" {
			continue
		}
		args, err := TracepointArgs(kernel, e.Tracepoint)
		if err != nil {
			continue
		}
		row := int(e.ID) * maxArgs
		if row+maxArgs > len(sizes) {
			return fmt.Errorf("event %s: id %d beyond rw_tp_argsize", e.Name, e.ID)
		}
		for i, size := range args {
			if i < maxArgs {
				sizes[row+i] = uint8(min(size, 255))
			}
		}
	}
	if err := v.Set(sizes); err != nil {
		return fmt.Errorf("set rw_tp_argsize: %w", err)
	}
	return nil
}

// TracepointArgs returns the size in bytes of each argument the kernel
// passes to a tracepoint's BPF programs, from btf_trace_<name> in its BTF:
// a pointer to a function whose first parameter is the programs' context.
func TracepointArgs(kernel *btf.Spec, tracepoint string) ([]int, error) {
	var fn *btf.Typedef
	if err := kernel.TypeByName("btf_trace_"+tracepoint, &fn); err != nil {
		return nil, fmt.Errorf("no btf_trace_%s: %w", tracepoint, err)
	}
	ptr, ok := btf.UnderlyingType(fn.Type).(*btf.Pointer)
	if !ok {
		return nil, fmt.Errorf("btf_trace_%s is a %s, not a function pointer", tracepoint, fn.Type)
	}
	proto, ok := btf.UnderlyingType(ptr.Target).(*btf.FuncProto)
	if !ok || len(proto.Params) == 0 {
		return nil, fmt.Errorf("btf_trace_%s does not point to a function with a context", tracepoint)
	}
	var sizes []int
	for _, p := range proto.Params[1:] {
		n, err := btf.Sizeof(p.Type)
		if err != nil {
			return nil, fmt.Errorf("btf_trace_%s argument %s: %w", tracepoint, p.Name, err)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}
