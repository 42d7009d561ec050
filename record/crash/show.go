package crash

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/klauspost/compress/zstd"

	"github.com/rewindtrace/rewind/internal/symbolize"
	"github.com/rewindtrace/rewind/internal/units"
	"github.com/rewindtrace/rewind/record/symbols"
	"github.com/rewindtrace/rewind/snapshot"
)

// Fault is what the core says of the crash: the crashing thread's program
// counter, the signal's code and, for a fault, its address.
type Fault struct {
	Code int32 // si_code
	// Addr is the faulting address (si_addr) of SIGSEGV, SIGBUS, SIGILL
	// and SIGFPE; HasAddr says whether the signal carries one.
	Addr    uint64
	HasAddr bool
	PC      uint64
	SP      uint64
	// Func names the function at PC, when its file has symbols; Module
	// is that file.
	Func, Module string
	// Caller is the innermost function of the crashing executable itself
	// on the stack, when PC is in a library (abort() raises the signal in
	// libc): found by scanning the stack for return addresses into the
	// executable, as a debugger does without unwind tables.
	Caller string
}

// Note types of an ELF core (<linux/elf.h>).
const (
	ntPRStatus = 1
	ntSigInfo  = 0x53494749
	// coreHead is how much of a core ReadFault decompresses: the ELF
	// header, the program headers and the notes come first.
	coreHead = 16 << 20
)

// pcOffset and spOffset are where the program counter and the stack
// pointer sit in struct elf_prstatus: pr_reg starts at 112; on x86_64 rip
// is its 17th register and rsp its 20th, on arm64 pc its 33rd and sp its
// 32nd.
var (
	pcOffset = map[elf.Machine]int{elf.EM_X86_64: 112 + 16*8, elf.EM_AARCH64: 112 + 32*8}
	spOffset = map[elf.Machine]int{elf.EM_X86_64: 112 + 19*8, elf.EM_AARCH64: 112 + 31*8}
)

// stackScan bounds the stack ReadFault scans for a caller.
const stackScan = 64 << 10

// ReadFault reads the crash's signal details and program counter from the
// notes of a record's core, and names the function with the mappings the
// record saved (proc/maps).
func ReadFault(dir string, r *Record) (*Fault, error) {
	if r.Core.File == "" {
		return nil, fmt.Errorf("crash record %s has no core (%s)", r.ID, r.Core.Dropped)
	}
	f, err := os.Open(filepath.Join(dir, r.ID, r.Core.File))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	head, err := io.ReadAll(io.LimitReader(dec, coreHead))
	if err != nil {
		return nil, fmt.Errorf("crash record %s: decompress the core: %w", r.ID, err)
	}
	ef, err := elf.NewFile(bytes.NewReader(head))
	if err != nil {
		return nil, fmt.Errorf("crash record %s: the core: %w", r.ID, err)
	}
	fault := &Fault{}
	found := false
	for _, p := range ef.Progs {
		if p.Type != elf.PT_NOTE || p.Off+p.Filesz > uint64(len(head)) {
			continue
		}
		notes := head[p.Off : p.Off+p.Filesz]
		for len(notes) >= 12 {
			namesz, descsz, typ := ef.ByteOrder.Uint32(notes), ef.ByteOrder.Uint32(notes[4:]), ef.ByteOrder.Uint32(notes[8:])
			nameEnd := 12 + align4(namesz)
			descEnd := nameEnd + align4(descsz)
			if descEnd > uint64(len(notes)) {
				break
			}
			desc := notes[nameEnd : nameEnd+uint64(descsz)]
			switch typ {
			case ntPRStatus:
				// The dumping thread's comes first.
				if off, ok := pcOffset[ef.Machine]; ok && !found && len(desc) >= off+8 && len(desc) >= spOffset[ef.Machine]+8 {
					fault.PC, found = ef.ByteOrder.Uint64(desc[off:]), true
					fault.SP = ef.ByteOrder.Uint64(desc[spOffset[ef.Machine]:])
				}
			case ntSigInfo:
				if len(desc) >= 24 {
					fault.Code = int32(ef.ByteOrder.Uint32(desc[8:]))
					switch sig := ef.ByteOrder.Uint32(desc); sig {
					case 4, 7, 8, 11: // SIGILL, SIGBUS, SIGFPE, SIGSEGV
						fault.Addr, fault.HasAddr = ef.ByteOrder.Uint64(desc[16:]), true
					}
				}
			}
			notes = notes[descEnd:]
		}
	}
	if !found {
		return fault, fmt.Errorf("crash record %s: the core has no thread status note", r.ID)
	}
	maps, err := os.ReadFile(filepath.Join(dir, r.ID, "proc", "maps"))
	if err != nil {
		return fault, nil // no mappings: no names
	}
	syms := &snapshot.Symbols{Procs: []snapshot.ProcMaps{{PID: uint32(r.PID), Maps: symbols.ParseMaps(maps, "", nil)}}}
	sym := symbolize.New(syms)
	pc := sym.User(uint32(r.PID), fault.PC, true)
	fault.Func, fault.Module = pc.Func, pc.Module
	if pc.Module == r.Exe {
		return fault, nil
	}
	// Scan the stack for the first return address into the executable.
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD || fault.SP < p.Vaddr || fault.SP >= p.Vaddr+p.Filesz || p.Off+p.Filesz > uint64(len(head)) {
			continue
		}
		stack := head[p.Off+(fault.SP-p.Vaddr) : p.Off+p.Filesz]
		stack = stack[:min(len(stack), stackScan)]
		for i := 0; i+8 <= len(stack); i += 8 {
			ret := ef.ByteOrder.Uint64(stack[i:])
			if f := sym.User(uint32(r.PID), ret, false); f.Module == r.Exe && f.Func != "" {
				fault.Caller = f.Func
				return fault, nil
			}
		}
	}
	return fault, nil
}

func align4(n uint32) uint64 { return (uint64(n) + 3) &^ 3 }

// Show writes what a developer reads first of a crash record: the
// process, the signal and fault address, the crashing function, the core,
// the snapshots and what they tell of the seconds before, and the commands
// that open the core.
func Show(w io.Writer, dir string, r *Record) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("crash", "%s", r.ID)
	row("process", "%s, pid %d, thread %d, uid %d gid %d", r.Exe, r.PID, r.TID, r.UID, r.GID)
	if len(r.Cmdline) > 0 {
		row("command", "%s", strings.Join(r.Cmdline, " "))
	}
	row("time", "%s", r.Time.Format("2006-01-02 15:04:05 UTC"))
	sig := fmt.Sprintf("%s (%d)", r.SignalName, r.Signal)
	fault, ferr := ReadFault(dir, r)
	if fault != nil {
		sig += fmt.Sprintf(", si_code %d", fault.Code)
		if fault.HasAddr {
			sig += fmt.Sprintf(", fault address %#x", fault.Addr)
		}
	}
	row("signal", "%s", sig)
	if fault != nil && ferr == nil {
		fn := fault.Func
		switch {
		case fn != "" && fault.Module != "" && fault.Module != r.Exe:
			fn += " in " + fault.Module
		case fn == "" && fault.Module != "":
			fn = fault.Module + " (no symbol there)"
		case fn == "":
			fn = "(no mapping or symbol: the binary is stripped or gone)"
		}
		if fault.Caller != "" {
			fn += ", called from " + fault.Caller
		}
		row("crashed in", "%s at pc %#x", fn, fault.PC)
	}
	core := "none: " + r.Core.Dropped
	if r.Core.File != "" {
		core = fmt.Sprintf("%s (%s", filepath.Join(dir, r.ID, r.Core.File), units.FormatSize(r.Core.Saved))
		if r.Core.Truncated {
			core += fmt.Sprintf(" of %s: cut at --max-core", units.FormatSize(r.Core.Bytes))
		}
		core += ")"
	}
	row("core", "%s", core)
	for _, snap := range r.Snapshots {
		p := filepath.Join(dir, r.ID, snap)
		row("snapshot", "%s (rewind analyze %s; rewind view --around trigger:2s %s)", p, p, p)
	}
	if r.Daemon != "" {
		row("snapshots", "none: %s", r.Daemon)
	}
	if r.Chain != nil {
		chain := fmt.Sprintf("%s got %s", r.Chain.Target, units.FormatSize(r.Chain.Bytes))
		if r.Chain.Error != "" {
			chain += ": " + r.Chain.Error
		}
		row("chained", "%s", chain)
	}
	for _, e := range r.Errors {
		row("error", "%s", e)
	}
	if ferr != nil && r.Core.File != "" {
		row("error", "%v", ferr)
	}
	tw.Flush()
	for _, snap := range r.Snapshots {
		story, err := ReadStory(filepath.Join(dir, r.ID, snap), r)
		if err != nil {
			fmt.Fprintf(w, "\n%s: %v\n", snap, err)
			continue
		}
		fmt.Fprintf(w, "\n%s", story)
	}
	if r.Core.File != "" {
		fmt.Fprintf(w, "\nopen the core:\n  zstd -d %s -o /tmp/%s.core\n  gdb %s /tmp/%s.core\n", filepath.Join(dir, r.ID, r.Core.File), r.ID, r.Exe, r.ID)
	}
	return nil
}
