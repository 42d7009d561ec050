package daemon

import (
	"cmp"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/record"
	"github.com/rewindtrace/rewind/record/crash"
	"github.com/rewindtrace/rewind/snapshot"
)

// crashRoutes serves the crash handler (record/crash): POST /v1/crash
// snapshots every recording session into the crash record being made,
// with the crash as the trigger.
func (d *Daemon) crashRoutes(mux *http.ServeMux, v string) {
	mux.HandleFunc("POST "+v+"/crash", d.handle(func(r *http.Request) (any, error) {
		var req api.CrashRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		if !filepath.IsAbs(req.Dir) {
			return nil, failf(http.StatusBadRequest, "crash: directory %q: want an absolute path", req.Dir)
		}
		// The handler runs as root; the daemon writes there as root.
		if p, _ := r.Context().Value(peerKey{}).(peer); p.cred == nil || p.cred.Uid != 0 {
			return nil, failf(http.StatusForbidden, "crash: only root (the kernel's crash handler) may ask for crash snapshots")
		}
		if fi, err := os.Stat(req.Dir); err != nil || !fi.IsDir() {
			return nil, failf(http.StatusBadRequest, "crash: %q is not a directory", req.Dir)
		}
		sig := sysx.SignalName(req.Signal)
		trig := snapshot.Trigger{Kind: snapshot.TriggerCrash, Signal: sig, Detail: fmt.Sprintf("%s in pid %d (%s)", sig, req.PID, req.Exe),
			Firing: &snapshot.Firing{Trigger: "crash", Condition: "core dump", TS: sysx.BootNow(), CPU: -1, TID: uint32(req.TID), PID: uint32(req.PID),
				Comm: req.Comm, Value: float64(req.Signal), Unit: "signal", What: sig}}
		d.m.crashHandled(req.PID)
		if req.Core != "" {
			d.met.crashes.WithLabelValues(req.Core).Inc()
		}
		out := api.CrashReply{Snapshots: []api.CrashSnapshot{}}
		for _, s := range d.m.list() {
			s.mu.Lock()
			started := s.started
			s.mu.Unlock()
			if !started {
				continue
			}
			cs := api.CrashSnapshot{Session: s.name}
			res, err := s.rec.Snapshot(r.Context(), record.SnapshotRequest{Path: filepath.Join(req.Dir, s.name+".rwd"), Trigger: trig})
			if err == nil {
				err = d.private(res.Path)
			}
			if err != nil {
				cs.Error = err.Error()
				d.met.crashSnaps.WithLabelValues("failed").Inc()
			} else {
				cs.Path, cs.Events, cs.Lost = res.Path, res.Events, res.Lost
				d.met.crashSnaps.WithLabelValues("ok").Inc()
			}
			out.Snapshots = append(out.Snapshots, cs)
		}
		return out, nil
	}))
}

// crashDir is where the crash trigger action writes records: the daemon's
// crash_dir, else the installed handler's, else the default.
func (m *manager) crashDir() string {
	if m.cfg.Crash.Dir != "" {
		return m.cfg.Crash.Dir
	}
	if st, err := crash.LoadState(cmp.Or(m.cfg.Crash.State, crash.DefaultState)); err == nil {
		return st.Dir
	}
	return crash.DefaultDir
}

// crashWait is how long the crash action waits for the kernel's handler
// to report the same crash before writing a record of its own.
const crashWait = crash.Bound

// crashRecord is the crash trigger action: it starts a record at once
// (reading /proc while the process may still be there), waits for the
// kernel's handler to report the crash, and, if it does not, writes the
// record without a core, with the session's snapshot.
func (wt *watcher) crashRecord(a *armed, fr snapshot.Firing) {
	p, err := crash.Begin(wt.s.m.crashDir(), int(fr.PID), int(fr.TID), int(fr.Value), fr.Comm)
	if err != nil {
		wt.failed(a, fmt.Errorf("crash record: %w", err))
		return
	}
	if wt.handledWithin(int(fr.PID), crashWait) {
		p.Discard()
		wt.mu.Lock()
		a.crashesHandled++
		wt.mu.Unlock()
		return
	}
	if wt.ctx.Err() != nil {
		p.Discard()
		return
	}
	path, err := p.Commit(fmt.Sprintf("the kernel ran no core handler for this crash within %v (the process was not dumpable, or core_pattern is not rewind's)", crashWait),
		func(dir string) ([]string, error) {
			trig := snapshot.Trigger{Kind: snapshot.TriggerCrash, Signal: fr.What, Detail: fmt.Sprintf("%s in pid %d, trigger %s", fr.What, fr.PID, a.req.Name), Firing: &fr}
			res, err := wt.s.rec.Snapshot(wt.ctx, record.SnapshotRequest{Path: filepath.Join(dir, wt.s.name+".rwd"), Trigger: trig})
			if err != nil {
				return nil, err
			}
			return []string{filepath.Base(res.Path)}, nil
		})
	if err != nil {
		wt.failed(a, fmt.Errorf("crash record: %w", err))
		return
	}
	logf("session %s: trigger %s: crash record %s", wt.s.name, a.req.Name, path)
	wt.mu.Lock()
	a.crashRecords++
	a.lastPath = path
	wt.mu.Unlock()
}

// handledWithin waits up to d for the kernel's handler to report pid's
// crash; false when it did not, or the watcher closed.
func (wt *watcher) handledWithin(pid int, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !wt.s.m.wasHandled(pid) {
		select {
		case <-wt.ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
	return true
}
