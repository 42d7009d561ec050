package symbols

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/rewindtrace/rewind/snapshot"
)

// kernel keeps a kallsyms file read, parsed and sorted, and reads it again
// only when the kernel's text may have changed: /proc/kallsyms takes tens
// of milliseconds of kernel time to generate (some 120,000 lines), and the
// core kernel's symbols never change.
//
// What changes them:
//   - Modules loading and unloading. Their names, sizes, states and load
//     addresses in the modules file (/proc/modules) are compared at each
//     lookup, a read of a few kilobytes; use counts are left out, as
//     they change without the symbols changing.
//   - BPF programs: with net.core.bpf_jit_kallsyms, each JIT-compiled
//     program (and trampoline, dispatcher) is a "[bpf]" symbol. Frames in
//     them are real: a stack sample can land in a BPF program running in
//     the kernel, rewind's own among them, and a stale table would name
//     such a frame after whatever symbol precedes it. So the set of loaded
//     programs' ids (BPF_PROG_GET_NEXT_ID, one system call a program) is
//     compared too. It needs CAP_SYS_ADMIN; without it BPF programs are
//     not looked at, and frames in programs loaded since the last read
//     may be misnamed.
//
// Left out: ftrace and kprobe trampolines allocated since the last read
// ("[__builtin__ftrace]", "[__builtin__kprobes]"), which change with no
// module or BPF program changing; a frame in one may be misnamed.
//
// A kernel is safe for concurrent use: lookups share one table, and one
// caller reads the file when it changed while the others wait for it.
type kernel struct {
	kallsyms, modules string
	// bpfProgs identifies the loaded BPF programs: ok is false when they
	// cannot be listed. A variable for tests.
	bpfProgs func() (id uint64, ok bool)

	mu     sync.Mutex
	table  *kernelTable
	modKey string // the modules and BPF programs the table was read with
	bpfKey uint64
	bpfOK  bool
	reads  int // of kallsyms, for tests
}

// newKernel returns a kernel reading kallsyms (/proc/kallsyms) when the
// modules file (/proc/modules) or the loaded BPF programs change. A
// modules file that cannot be read counts as one that does not change (a
// kernel built without modules has none).
func newKernel(kallsyms, modules string) *kernel {
	return &kernel{kallsyms: kallsyms, modules: modules, bpfProgs: loadedBPFPrograms}
}

var shared struct {
	sync.Mutex
	kernels map[string]*kernel
}

// sharedKernel is the process's kernel for kallsyms, with the modules file
// next to it: recording sessions in one process share the table.
func sharedKernel(kallsyms string) *kernel {
	shared.Lock()
	defer shared.Unlock()
	if k := shared.kernels[kallsyms]; k != nil {
		return k
	}
	if shared.kernels == nil {
		shared.kernels = map[string]*kernel{}
	}
	k := newKernel(kallsyms, filepath.Join(filepath.Dir(kallsyms), "modules"))
	shared.kernels[kallsyms] = k
	return k
}

// Symbols returns the functions that hold addrs, each once, by address. An
// address in no function (data, a gap, hidden addresses) is left out.
func (k *kernel) Symbols(addrs map[uint64]bool) ([]snapshot.KernelSymbol, error) {
	t, err := k.current()
	if err != nil {
		return nil, err
	}
	return t.lookup(addrs), nil
}

// current returns the table, read again if the modules or the BPF
// programs changed since it was read.
func (k *kernel) current() (*kernelTable, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	// The keys are taken before kallsyms is read, so a change while it is
	// read shows at the next lookup; and under the lock, so a caller with
	// an older view cannot replace the table with one keyed to it.
	mods := modulesKey(k.modules)
	bpf, bpfOK := k.bpfProgs()
	if k.table != nil && mods == k.modKey && bpf == k.bpfKey && bpfOK == k.bpfOK {
		return k.table, nil
	}
	f, err := os.Open(k.kallsyms)
	k.reads++
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	defer f.Close()
	t, err := parseKallsyms(f, k.table)
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	// With addresses hidden (kptr_restrict, no privilege) the table is
	// empty: read it again next time rather than keep nothing.
	if len(t.start) > 0 {
		k.table, k.modKey, k.bpfKey, k.bpfOK = t, mods, bpf, bpfOK
	}
	return t, nil
}

// modulesKey is what of the modules file tells the symbols apart: each
// module's name, size, state and address, not its use count.
func modulesKey(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var key strings.Builder
	for line := range strings.Lines(string(b)) {
		// name size refcount deps state address [taints]
		f := strings.Fields(line)
		if len(f) < 6 {
			key.WriteString(line)
			continue
		}
		fmt.Fprintf(&key, "%s %s %s %s\n", f[0], f[1], f[4], f[5])
	}
	return key.String()
}

// loadedBPFPrograms hashes the ids of the loaded BPF programs; ids are not
// reused, so the hash changes when a program is loaded or unloaded.
func loadedBPFPrograms() (uint64, bool) {
	h := fnv.New64a()
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return h.Sum64(), true
		}
		if err != nil {
			return 0, false
		}
		id = next
		fmt.Fprintf(h, "%d,", id)
	}
}

// kernelTable is kallsyms' functions, sorted by address: 22 bytes a
// function besides its name (some 45 with it: 5.5 MB for 120,000), held
// between snapshots.
type kernelTable struct {
	start, end []uint64 // end: the next symbol's address, of any kind
	name       []uint32 // function i's name is names[name[i]:name[i+1]]
	mod        []uint16 // index in mods; 0 is the core kernel
	names      string
	mods       []string
	nsyms      int // symbols of any kind, and the bytes of their names
	nraw       int
}

// parseKallsyms reads kallsyms' text: "ffffffff81000000 T _stext", with
// "\t[module]" after a module's symbols. Zero addresses (hidden by
// kptr_restrict) are skipped. The table read before, if any, sizes the
// buffers.
func parseKallsyms(r io.Reader, last *kernelTable) (*kernelTable, error) {
	type sym struct {
		addr       uint64
		name       uint32 // offset in raw, length nameLen
		nameLen    uint16
		mod        uint16
		isFunction bool
	}
	t := &kernelTable{mods: []string{""}}
	modIdx := map[string]uint16{"": 0}
	nsyms, nraw := 1<<10, 1<<14
	if last != nil {
		nsyms, nraw = last.nsyms+1<<10, last.nraw+1<<14
	}
	syms := make([]sym, 0, nsyms)
	raw := make([]byte, 0, nraw) // every name, one after the other
	funcs := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		addr, line, _ := bytes.Cut(sc.Bytes(), []byte{' '})
		typ, line, _ := bytes.Cut(line, []byte{' '})
		name, mod, _ := bytes.Cut(line, []byte{'\t'})
		if len(typ) != 1 || len(name) == 0 || len(name) > 0xffff {
			continue
		}
		a, err := strconv.ParseUint(string(addr), 16, 64)
		if err != nil || a == 0 {
			continue // hidden, or not an address
		}
		s := sym{addr: a, name: uint32(len(raw)), nameLen: uint16(len(name)), isFunction: strings.IndexByte("tTwW", typ[0]) >= 0}
		if m := bytes.Trim(mod, "[] "); len(m) > 0 {
			i, ok := modIdx[string(m)]
			if !ok && len(t.mods) <= 0xffff {
				i = uint16(len(t.mods))
				modIdx[string(m)] = i
				t.mods = append(t.mods, string(m))
			}
			s.mod = i
		}
		raw = append(raw, name...)
		syms = append(syms, s)
		if s.isFunction {
			funcs++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// Stable: of the symbols at one address, the first function listed
	// names it.
	slices.SortStableFunc(syms, func(a, b sym) int { return cmp.Compare(a.addr, b.addr) })
	t.start, t.end = make([]uint64, 0, funcs), make([]uint64, 0, funcs)
	t.name, t.mod = make([]uint32, 0, funcs+1), make([]uint16, 0, funcs)
	names := make([]byte, 0, len(raw))
	for i := 0; i < len(syms); {
		j := i + 1
		for j < len(syms) && syms[j].addr == syms[i].addr {
			j++
		}
		if f := slices.IndexFunc(syms[i:j], func(s sym) bool { return s.isFunction }); f >= 0 {
			s := syms[i+f]
			end := ^uint64(0)
			if j < len(syms) {
				end = syms[j].addr
			}
			t.start = append(t.start, s.addr)
			t.end = append(t.end, end)
			t.name = append(t.name, uint32(len(names)))
			t.mod = append(t.mod, s.mod)
			names = append(names, raw[s.name:s.name+uint32(s.nameLen)]...)
		}
		i = j
	}
	t.name = append(t.name, uint32(len(names)))
	t.names = string(names)
	t.nsyms, t.nraw = len(syms), len(raw)
	return t, nil
}

// lookup returns the functions that hold addrs, each once, by address.
func (t *kernelTable) lookup(addrs map[uint64]bool) []snapshot.KernelSymbol {
	idx := make([]int, 0, len(addrs))
	for a := range addrs {
		i, found := slices.BinarySearch(t.start, a)
		if !found {
			i-- // the last function starting below a
		}
		if i >= 0 && a < t.end[i] {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	out := make([]snapshot.KernelSymbol, len(idx))
	for k, i := range idx {
		out[k] = snapshot.KernelSymbol{Start: t.start[i], End: t.end[i], Name: t.names[t.name[i]:t.name[i+1]], Module: t.mods[t.mod[i]]}
	}
	return out
}
