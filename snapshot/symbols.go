package snapshot

import "sort"

// Symbols is what reading stack samples offline needs from the recording
// machine: the kernel functions their kernel frames fall in, and the
// executable mappings of the processes their user frames belong to.
type Symbols struct {
	// Kernel holds the functions kernel frames fall in, by start address.
	Kernel []KernelSymbol `json:"kernel"`
	// Procs are the mappings of the processes sampled, as /proc/<pid>/maps
	// read them at snapshot time (processes gone by then are missing).
	Procs []ProcMaps `json:"procs"`
}

// KernelSymbol is one kernel function, from /proc/kallsyms.
type KernelSymbol struct {
	Start uint64 `json:"start"`
	End   uint64 `json:"end"` // the next symbol's start
	Name  string `json:"name"`
	// Module is the loadable module the function is in, "" for the kernel.
	Module string `json:"module,omitempty"`
}

// ProcMaps are one process's executable mappings.
type ProcMaps struct {
	PID  uint32    `json:"pid"`
	Maps []Mapping `json:"maps"`
}

// Mapping is one executable mapping of a file.
type Mapping struct {
	Start  uint64 `json:"start"`
	End    uint64 `json:"end"`
	Offset uint64 `json:"offset"` // file offset of Start
	Path   string `json:"path"`
	// BuildID identifies the file's contents: "gnu:<hex>" from its
	// .note.gnu.build-id, or "go:<id>" from a Go binary's build id.
	BuildID string `json:"build_id,omitempty"`
}

// Kernel returns the function addr falls in, or nil.
func (s *Symbols) KernelSymbol(addr uint64) *KernelSymbol {
	i := sort.Search(len(s.Kernel), func(i int) bool { return s.Kernel[i].Start > addr }) - 1
	if i < 0 || addr >= s.Kernel[i].End {
		return nil
	}
	return &s.Kernel[i]
}

// Mapping returns process pid's mapping that holds addr, or nil.
func (s *Symbols) Mapping(pid uint32, addr uint64) *Mapping {
	for i := range s.Procs {
		if s.Procs[i].PID != pid {
			continue
		}
		for j := range s.Procs[i].Maps {
			if m := &s.Procs[i].Maps[j]; addr >= m.Start && addr < m.End {
				return m
			}
		}
	}
	return nil
}

// WriteSymbols writes the symbols section, compressed.
func (w *Writer) WriteSymbols(s *Symbols) error {
	sort.Slice(s.Kernel, func(i, j int) bool { return s.Kernel[i].Start < s.Kernel[j].Start })
	return w.jsonSection(KindSymbols, s, true)
}

// Symbols reads the symbols section; a file without one (no stack samples,
// or written before format 1.1) returns an empty Symbols. A damaged section
// returns an empty Symbols and a *CorruptionError, which Damage also
// reports afterwards.
func (r *Reader) Symbols() (*Symbols, error) {
	s := &Symbols{}
	if r.symbols == nil {
		return s, nil
	}
	if err := r.readJSON(*r.symbols, s); err != nil {
		return &Symbols{}, r.damaged(err)
	}
	sort.Slice(s.Kernel, func(i, j int) bool { return s.Kernel[i].Start < s.Kernel[j].Start })
	return s, nil
}
