package record

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/rewindtrace/rewind/bpf"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot"
)

// Events are the names of the events being recorded.
func (r *Recorder) Events() []string {
	r.filterMu.Lock()
	defer r.filterMu.Unlock()
	return append([]string(nil), r.events...)
}

// SetFilter replaces the in-kernel filter while recording goes on; empty
// lists lift it. Snapshots record the filter active when they are taken.
func (r *Recorder) SetFilter(pids []uint32, comms, cgroups []string) error {
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
	r.filterMu.Lock()
	r.filter = snapshot.Filter{PIDs: pids, Comms: comms, Cgroups: paths}
	r.filterMu.Unlock()
	return nil
}

// cgroupPath resolves a cgroup given absolutely or relative to the cgroup2
// mount.
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

// Enable turns an event on while recording goes on, attaching its program
// the first time; Disable turns it off. Neither reloads anything.
func (r *Recorder) Enable(name string) error {
	if err := r.objs.Enable(name); err != nil {
		return err
	}
	r.filterMu.Lock()
	defer r.filterMu.Unlock()
	for _, e := range r.events {
		if e == name {
			return nil
		}
	}
	r.events = append(r.events, name)
	return nil
}

// Disable turns an event off; see Enable.
func (r *Recorder) Disable(name string) error {
	if err := r.objs.Disable(name); err != nil {
		return err
	}
	r.filterMu.Lock()
	defer r.filterMu.Unlock()
	for i, e := range r.events {
		if e == name {
			r.events = append(r.events[:i:i], r.events[i+1:]...)
		}
	}
	return nil
}

// Unavailable returns the events a group asked for that this kernel cannot
// record, with the reason; snapshots carry it too.
func (r *Recorder) Unavailable() map[string]string { return r.unavailable }
