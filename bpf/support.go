package bpf

import (
	"fmt"
	"os"
	"sync"

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
