package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// haveFetchAtomics reports whether the verifier takes a fetching atomic
// (BPF_ATOMIC | BPF_FETCH, 5.12 on) by loading a program of six
// instructions that uses one on the stack. Kernels without them refuse it
// with EINVAL ("BPF_STX uses reserved fields").
func haveFetchAtomics() (bool, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SocketFilter,
		Instructions: fetchProbe(),
		License:      "GPL",
	})
	if err == nil {
		prog.Close()
		return true, nil
	}
	if errors.Is(err, unix.EINVAL) {
		return false, nil
	}
	return false, fmt.Errorf("probe for BPF fetching atomics: %w", err)
}

// fetchProbe is the probe's program: a fetch-and-add on a stack slot.
func fetchProbe() asm.Instructions {
	fetchAdd := asm.FetchAdd.Mem(asm.RFP, asm.R1, asm.DWord, -8)
	// cilium/ebpf v0.22 encodes the immediate from Constant before it
	// derives Constant from the opcode, so without this the kernel is
	// sent a plain atomic add (imm 0), which every kernel takes.
	fetchAdd.Constant = int64(asm.FetchAdd >> 8)
	return asm.Instructions{
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
		fetchAdd,
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
}
