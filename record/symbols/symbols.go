// Package symbols captures, at snapshot time, what reading stack samples
// offline needs from this machine: the kernel functions (/proc/kallsyms)
// the samples' kernel frames fall in, and the executable mappings, with
// build ids, of the processes they sampled.
package symbols

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/rewindtrace/rewind/internal/elfid"
	"github.com/rewindtrace/rewind/snapshot"
)

// Refs are the addresses and processes a snapshot's stack samples refer to.
type Refs struct {
	Kernel map[uint64]bool
	PIDs   map[uint32]bool
}

// NewRefs returns empty Refs.
func NewRefs() *Refs { return &Refs{Kernel: map[uint64]bool{}, PIDs: map[uint32]bool{}} }

// Add records one stack sample: kframes kernel frames, then user frames.
func (r *Refs) Add(pid uint32, kframes int, frames []uint64) {
	for i, f := range frames {
		if i < kframes {
			r.Kernel[f] = true
		} else {
			r.PIDs[pid] = true
			return
		}
	}
}

// Merge adds o's references to r.
func (r *Refs) Merge(o *Refs) {
	for a := range o.Kernel {
		r.Kernel[a] = true
	}
	for p := range o.PIDs {
		r.PIDs[p] = true
	}
}

// Empty reports whether there is nothing to capture.
func (r *Refs) Empty() bool { return len(r.Kernel) == 0 && len(r.PIDs) == 0 }

// Capture reads the kernel symbols and process mappings refs need. What it
// cannot read (kallsyms hidden, a process gone) it leaves out: the frames
// stay raw addresses.
func Capture(refs *Refs, kallsyms, proc string, cache *BuildIDs) (*snapshot.Symbols, error) {
	s := &snapshot.Symbols{Kernel: []snapshot.KernelSymbol{}, Procs: []snapshot.ProcMaps{}}
	if len(refs.Kernel) > 0 {
		k, err := kernelSymbols(kallsyms, refs.Kernel)
		if err != nil {
			return nil, err
		}
		s.Kernel = k
	}
	pids := make([]uint32, 0, len(refs.PIDs))
	for p := range refs.PIDs {
		pids = append(pids, p)
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	for _, pid := range pids {
		maps, err := processMaps(proc, pid, cache)
		if err != nil {
			continue // gone: its frames stay addresses
		}
		s.Procs = append(s.Procs, snapshot.ProcMaps{PID: pid, Maps: maps})
	}
	return s, nil
}

type ksym struct {
	addr       uint64
	name, mod  string
	isFunction bool
}

// kernelSymbols returns the functions of kallsyms that hold addrs.
func kernelSymbols(path string, addrs map[uint64]bool) ([]snapshot.KernelSymbol, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	defer f.Close()
	var all []ksym
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		// ffffffff81000000 T _stext [module]
		line := sc.Text()
		fs := strings.Fields(line)
		if len(fs) < 3 {
			continue
		}
		a, err := strconv.ParseUint(fs[0], 16, 64)
		if err != nil || a == 0 {
			continue // hidden by kptr_restrict, or not an address
		}
		k := ksym{addr: a, name: fs[2], isFunction: strings.ContainsAny(fs[1], "tTwW")}
		if len(fs) > 3 {
			k.mod = strings.Trim(fs[3], "[]")
		}
		all = append(all, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].addr < all[j].addr })
	seen := map[int]bool{}
	var out []snapshot.KernelSymbol
	for a := range addrs {
		i := sort.Search(len(all), func(i int) bool { return all[i].addr > a }) - 1
		if i < 0 || seen[i] || !all[i].isFunction {
			continue
		}
		seen[i] = true
		end := ^uint64(0)
		if i+1 < len(all) {
			end = all[i+1].addr
		}
		out = append(out, snapshot.KernelSymbol{Start: all[i].addr, End: end, Name: all[i].name, Module: all[i].mod})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out, nil
}

// processMaps reads a process's executable file mappings.
func processMaps(proc string, pid uint32, cache *BuildIDs) ([]snapshot.Mapping, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/maps", proc, pid))
	if err != nil {
		return nil, err
	}
	var out []snapshot.Mapping
	for _, line := range strings.Split(string(b), "\n") {
		// 55d0c6a00000-55d0c6a2c000 r-xp 00002000 fe:00 1234 /usr/bin/ls
		fs := strings.Fields(line)
		if len(fs) < 6 || !strings.Contains(fs[1], "x") {
			continue
		}
		lo, hi, ok := strings.Cut(fs[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		off, err3 := strconv.ParseUint(fs[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		m := snapshot.Mapping{Start: start, End: end, Offset: off, Path: strings.Join(fs[5:], " ")}
		if strings.HasPrefix(m.Path, "/") {
			// The mapped file itself, even if replaced or deleted since
			// (map_files names are unpadded, unlike maps' ranges).
			key := fs[3] + ":" + fs[4]
			if m.BuildID = cache.Get(fmt.Sprintf("%s/%d/map_files/%x-%x", proc, pid, start, end), key); m.BuildID == "" {
				m.BuildID = cache.Get(m.Path, key+":path")
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// BuildIDs caches files' build ids by device and inode, across snapshots.
// It is not safe for concurrent use.
type BuildIDs struct {
	ids map[string]string
}

// Get returns the build id of the file at path, identified by key. A nil
// cache reads the file each time.
func (c *BuildIDs) Get(path, key string) string {
	if c == nil {
		return elfid.BuildID(path)
	}
	if c.ids == nil {
		c.ids = map[string]string{}
	}
	if id, ok := c.ids[key]; ok {
		return id
	}
	id := elfid.BuildID(path)
	c.ids[key] = id
	return id
}
