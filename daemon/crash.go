package daemon

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/record"
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
