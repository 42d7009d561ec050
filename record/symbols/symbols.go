// Package symbols captures, at snapshot time, what reading stack samples
// offline needs from this machine: the kernel functions (/proc/kallsyms)
// the samples' kernel frames fall in, and the executable mappings, with
// build ids, of the processes they sampled.
package symbols

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/rewindtrace/rewind/internal/elfid"
	"github.com/rewindtrace/rewind/snapshot"
)

// Refs are the addresses and processes a snapshot's stack samples refer to.
// They are not safe for concurrent use: fill one Refs per goroutine, and
// Merge them.
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
//
// The kernel symbols come from a table kept for the kallsyms path, shared
// by every caller in the process: kallsyms is read once, and again only
// when the modules file next to it (/proc/modules for /proc/kallsyms) or
// the loaded BPF programs changed. Capture is safe for concurrent use, on
// Refs no goroutine is changing.
func Capture(refs *Refs, kallsyms, proc string, cache *BuildIDs) (*snapshot.Symbols, error) {
	s := &snapshot.Symbols{Kernel: []snapshot.KernelSymbol{}, Procs: []snapshot.ProcMaps{}}
	if len(refs.Kernel) > 0 {
		k, err := sharedKernel(kallsyms).Symbols(refs.Kernel)
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

// processMaps reads a process's executable file mappings.
func processMaps(proc string, pid uint32, cache *BuildIDs) ([]snapshot.Mapping, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/maps", proc, pid))
	if err != nil {
		return nil, err
	}
	return ParseMaps(b, fmt.Sprintf("%s/%d/map_files", proc, pid), cache), nil
}

// ParseMaps reads the executable file mappings of a /proc/PID/maps text.
// Each file's build id is read through mapFiles (/proc/PID/map_files: the
// mapped file itself, even if replaced or deleted since) when it is not
// "", else from the file at the mapped path.
func ParseMaps(b []byte, mapFiles string, cache *BuildIDs) []snapshot.Mapping {
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
			// map_files names are unpadded, unlike maps' ranges.
			key := fs[3] + ":" + fs[4]
			if mapFiles != "" {
				m.BuildID = cache.Get(fmt.Sprintf("%s/%x-%x", mapFiles, start, end), key)
			}
			if m.BuildID == "" {
				m.BuildID = cache.Get(m.Path, key+":path")
			}
		}
		out = append(out, m)
	}
	return out
}

// BuildIDs caches files' build ids by device and inode, across snapshots.
// Its zero value is empty and ready; it is safe for concurrent use.
type BuildIDs struct {
	mu  sync.Mutex
	ids map[string]string
}

// Get returns the build id of the file at path, identified by key. A nil
// cache reads the file each time.
func (c *BuildIDs) Get(path, key string) string {
	if c == nil {
		return elfid.BuildID(path)
	}
	c.mu.Lock()
	id, ok := c.ids[key]
	c.mu.Unlock()
	if ok {
		return id
	}
	id = elfid.BuildID(path) // outside the lock: it reads the file
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil {
		c.ids = map[string]string{}
	}
	c.ids[key] = id
	return id
}

// Warm reads the kernel symbols of kallsyms into the table Capture shares,
// so that the first snapshot with stacks finds them ready.
func Warm(kallsyms string) error {
	_, err := sharedKernel(kallsyms).current()
	return err
}
