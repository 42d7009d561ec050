package record

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/rewindtrace/rewind/bpf"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/ringbuf"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// cpuSample is the event of CPU stack samples: it attaches to a perf event
// on every CPU at the stack sampling rate, not to a tracepoint.
const cpuSample = kinds.CPUSample

// Events are the names of the events selected, in catalogue order: the
// ones recording while the recorder records.
func (r *Recorder) Events() ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == Closed {
		return nil, os.ErrClosed
	}
	return slices.Clone(r.events), nil
}

// Enable selects events, given by name or group as in Config.Events
// ("stacks" turns stack sampling on). While recording they start at once,
// attaching their programs the first time; otherwise with Start. An event
// named one by one that this kernel cannot record is an error and changes
// nothing; one a group brings in is skipped (Unavailable says why).
func (r *Recorder) Enable(list ...string) error {
	events, explicit, err := SelectEvents(list)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == Closed {
		return os.ErrClosed
	}
	names, _, err := r.recordable(events, explicit)
	if err != nil {
		return err
	}
	var add []string
	for _, name := range names {
		if !slices.Contains(r.events, name) {
			add = append(add, name)
		}
	}
	if r.state == Recording {
		for i, name := range add {
			if err := r.attach(name); err != nil {
				for _, done := range add[:i] {
					r.detach(done)
				}
				return err
			}
		}
	}
	r.events = r.ordered(append(r.events, add...))
	return nil
}

// Disable deselects events, by name or group; while recording they stop at
// once. Their programs are detached, so a disabled event costs nothing per
// tracepoint hit, but stay loaded: enabling one again attaches it without
// reloading anything.
func (r *Recorder) Disable(list ...string) error {
	events, _, err := SelectEvents(list)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == Closed {
		return os.ErrClosed
	}
	var errs []error
	for _, e := range events {
		i := slices.Index(r.events, e.Name)
		if i < 0 {
			continue
		}
		if r.state == Recording {
			errs = append(errs, r.detach(e.Name))
		}
		r.events = slices.Delete(r.events, i, i+1)
	}
	return errors.Join(errs...)
}

// ordered sorts event names in catalogue order.
func (r *Recorder) ordered(names []string) []string {
	slices.SortFunc(names, func(a, b string) int {
		return int(r.schema.ByName(a).ID) - int(r.schema.ByName(b).ID)
	})
	return names
}

// SetStackRate sets how many times a second each CPU's stack is sampled
// while cpu_sample is selected; sampling, it restarts at the new rate.
func (r *Recorder) SetStackRate(hz int) error {
	if hz < 1 || hz > MaxStackRate {
		return fmt.Errorf("stack sampling rate %d Hz: want 1 to %d", hz, MaxStackRate)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == Closed {
		return os.ErrClosed
	}
	old := r.stackRate
	r.stackRate = hz
	if r.state != Recording || !slices.Contains(r.events, cpuSample) || old == hz {
		return nil
	}
	if err := r.objs.DisableSamples(); err != nil {
		return err
	}
	return r.objs.EnableSamples(hz)
}

// StackRate is the CPU stack sampling rate, in samples a second per CPU,
// used while cpu_sample is selected.
func (r *Recorder) StackRate() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stackRate
}

// SetFilter replaces the in-kernel filter while recording goes on; empty
// lists lift it. The change is atomic: each event is judged by the old
// filter or by the new one. Snapshots record the filter active when they
// are taken.
func (r *Recorder) SetFilter(pids []uint32, comms, cgroups []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == Closed {
		return os.ErrClosed
	}
	return r.setFilter(pids, comms, cgroups)
}

// setFilter sets the filter; call with mu held, or from New.
func (r *Recorder) setFilter(pids []uint32, comms, cgroups []string) error {
	f := bpf.Filter{PIDs: pids, Comms: comms}
	var paths []string
	for _, c := range cgroups {
		path, err := cgroupPath(c)
		if err != nil {
			return err
		}
		id, err := sysx.CgroupID(path)
		if err != nil {
			return err
		}
		f.CgroupIDs = append(f.CgroupIDs, id)
		paths = append(paths, path)
	}
	if err := r.objs.SetFilter(f); err != nil {
		return err
	}
	r.filter = snapshot.Filter{PIDs: slices.Clone(pids), Comms: slices.Clone(comms), Cgroups: paths}
	return nil
}

// Filter returns the filter in force.
func (r *Recorder) Filter() (snapshot.Filter, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == Closed {
		return snapshot.Filter{}, os.ErrClosed
	}
	return r.filter, nil
}

// cgroupPath resolves a cgroup given absolutely or relative to the cgroup2
// mount.
// CgroupID returns the id of a cgroup v2 given as for the filter: a path,
// or a path under the cgroup2 mount.
func CgroupID(c string) (uint64, error) {
	path, err := cgroupPath(c)
	if err != nil {
		return 0, err
	}
	return sysx.CgroupID(path)
}

func cgroupPath(c string) (string, error) {
	if filepath.IsAbs(c) {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	mnt, err := sysx.Cgroup2Mount()
	if err != nil {
		return "", fmt.Errorf("cgroup %s: %w", c, err)
	}
	path := filepath.Join(mnt, c)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("cgroup %s: not a directory here or under %s", c, mnt)
	}
	return path, nil
}

// AddCounters starts sampling more counter sources, given as in
// Config.Counters (NAME, NAME@HZ, cgroup:PATH, default, all).
func (r *Recorder) AddCounters(sources ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == Closed {
		return os.ErrClosed
	}
	return r.counters.Add(sources, 0)
}

// RemoveCounters stops sampling counter sources, by name; their samples go
// with them.
func (r *Recorder) RemoveCounters(names ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == Closed {
		return os.ErrClosed
	}
	return r.counters.Remove(names)
}

// Unavailable returns the events a group asked for at New that this kernel
// cannot record, with the reason; snapshots carry it too.
func (r *Recorder) Unavailable() map[string]string { return maps.Clone(r.unavailable) }

// CPUs is the number of per-CPU rings.
func (r *Recorder) CPUs() int { return r.ring.CPUs() }

// BufferBytes is the kernel tier's size per CPU.
func (r *Recorder) BufferBytes() uint64 { return r.ring.SlotsPerCPU() * ringbuf.SlotSize }

// CopyBytes is the memory per CPU that snapshots copy the ring into.
func (r *Recorder) CopyBytes() uint64 { return r.ring.CopyBytes() }

// Config is the configuration the recorder was made with.
func (r *Recorder) Config() Config { return r.cfg }
