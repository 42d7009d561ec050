// Package symbolize names the frames of a snapshot's stack samples, offline:
// kernel frames from the symbols the snapshot carries, user frames from the
// symbol tables of the mapped files when they are on this machine and are
// the same files (their build ids match), Go binaries included. A frame it
// cannot name keeps its address.
package symbolize

import (
	"debug/elf"
	"debug/gosym"
	"fmt"
	"sort"
	"strings"

	"github.com/rewindtrace/rewind/internal/elfid"
	"github.com/rewindtrace/rewind/snapshot"
)

// Frame is a named frame.
type Frame struct {
	Addr uint64
	// Func is the function's name, "" when unknown.
	Func string
	// Module is the kernel module or the file the function is in.
	Module string
	Kernel bool
}

// String prints the function, or the address when it has no name.
func (f Frame) String() string {
	if f.Func != "" {
		return f.Func
	}
	if f.Module != "" {
		return fmt.Sprintf("%s+%#x", f.Module, f.Addr)
	}
	return fmt.Sprintf("%#x", f.Addr)
}

// Symbolizer names frames. It is not safe for concurrent use.
type Symbolizer struct {
	syms  *snapshot.Symbols
	files map[string]*file // by path and build id
	// Root prefixes the mapped files' paths, to read them from a copy of
	// the recording machine's filesystem.
	Root string
}

// New returns a Symbolizer for the snapshot's symbols.
func New(s *snapshot.Symbols) *Symbolizer {
	return &Symbolizer{syms: s, files: map[string]*file{}}
}

// Kernel names a kernel frame.
func (s *Symbolizer) Kernel(addr uint64) Frame {
	f := Frame{Addr: addr, Kernel: true}
	if k := s.syms.KernelSymbol(addr); k != nil {
		f.Func, f.Module = k.Name, k.Module
	}
	return f
}

// User names a user frame of process pid. Return addresses (every frame
// but the innermost) are looked up one byte back, inside the call.
func (s *Symbolizer) User(pid uint32, addr uint64, leaf bool) Frame {
	f := Frame{Addr: addr}
	m := s.syms.Mapping(pid, addr)
	if m == nil {
		return f
	}
	f.Module = m.Path
	if !strings.HasPrefix(m.Path, "/") {
		return f // [vdso], [anon:...]
	}
	file := s.open(m)
	if file == nil {
		return f
	}
	pc := addr
	if !leaf && pc > 0 {
		pc--
	}
	f.Func = file.lookup(pc - m.Start + m.Offset)
	return f
}

func (s *Symbolizer) open(m *snapshot.Mapping) *file {
	key := m.Path + "\x00" + m.BuildID
	if f, ok := s.files[key]; ok {
		return f
	}
	f := openFile(s.Root+m.Path, m.BuildID)
	s.files[key] = f
	return f
}

// file is one ELF file's functions.
type file struct {
	loads []elf.ProgHeader
	funcs []fn // by address
	table *gosym.Table
}

type fn struct {
	addr, size uint64
	name       string
}

// openFile reads an ELF file's function symbols, if it is the file with
// that build id; nil otherwise.
func openFile(path, buildID string) *file {
	ef, err := elf.Open(path)
	if err != nil {
		return nil
	}
	defer ef.Close()
	if buildID != "" && elfid.BuildID(path) != buildID {
		return nil // not the file that was mapped
	}
	f := &file{}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			f.loads = append(f.loads, p.ProgHeader)
		}
	}
	syms, _ := ef.Symbols()
	dyn, _ := ef.DynamicSymbols()
	for _, sy := range append(syms, dyn...) {
		if elf.ST_TYPE(sy.Info) == elf.STT_FUNC && sy.Value != 0 {
			f.funcs = append(f.funcs, fn{sy.Value, sy.Size, sy.Name})
		}
	}
	sort.Slice(f.funcs, func(i, j int) bool { return f.funcs[i].addr < f.funcs[j].addr })
	if len(f.funcs) == 0 {
		// A stripped Go binary still has its pc table.
		if pcln := ef.Section(".gopclntab"); pcln != nil {
			if data, err := pcln.Data(); err == nil {
				text := ef.Section(".text")
				if text != nil {
					f.table, _ = gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
				}
			}
		}
	}
	return f
}

// lookup names the function at file offset off.
func (f *file) lookup(off uint64) string {
	vaddr, ok := uint64(0), false
	for _, p := range f.loads {
		if off >= p.Off && off < p.Off+p.Filesz {
			vaddr, ok = off-p.Off+p.Vaddr, true
			break
		}
	}
	if !ok {
		return ""
	}
	if f.table != nil {
		if fn := f.table.PCToFunc(vaddr); fn != nil {
			return fn.Name
		}
		return ""
	}
	i := sort.Search(len(f.funcs), func(i int) bool { return f.funcs[i].addr > vaddr }) - 1
	if i < 0 {
		return ""
	}
	if s := f.funcs[i]; s.size == 0 || vaddr < s.addr+s.size {
		return s.name
	}
	return ""
}
