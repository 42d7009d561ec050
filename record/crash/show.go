package crash

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"

	"github.com/rewindtrace/rewind/internal/symbolize"
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
