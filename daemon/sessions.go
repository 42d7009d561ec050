package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/internal/retention"
	"github.com/rewindtrace/rewind/internal/units"
	"github.com/rewindtrace/rewind/record"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// statusError is an error with the HTTP status the API replies with.
type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

func failf(status int, format string, args ...any) error {
	return &statusError{status, fmt.Errorf(format, args...)}
}

// manager holds the sessions. It is safe for concurrent use: mu guards the
// map, and each session serialises its own changes.
type manager struct {
	mu       sync.Mutex
	sessions map[string]*session
	cfg      Config
	// observe, when set, is told how long each snapshot took.
	observe func(session string, took time.Duration)
	// handled holds the processes whose crash the kernel's handler told
	// of (POST /v1/crash), and when, for the crash trigger action.
	handledMu sync.Mutex
	handled   map[int]time.Time
}

// crashHandled notes that the handler reports pid's crash.
func (m *manager) crashHandled(pid int) {
	m.handledMu.Lock()
	defer m.handledMu.Unlock()
	now := time.Now()
	for p, t := range m.handled {
		if now.Sub(t) > time.Minute {
			delete(m.handled, p)
		}
	}
	m.handled[pid] = now
}

// wasHandled says whether the handler reported pid's crash in the last
// minute.
func (m *manager) wasHandled(pid int) bool {
	m.handledMu.Lock()
	defer m.handledMu.Unlock()
	t, ok := m.handled[pid]
	return ok && time.Since(t) < time.Minute
}

// session is one recorder and what the commands set on it.
type session struct {
	name    string
	output  string
	req     api.CreateRequest
	observe func(session string, took time.Duration)

	// mu serialises changes (the filter is rebuilt from tracked, the
	// state follows Start and Stop); the recorder is safe on its own for
	// snapshots and figures.
	mu      sync.Mutex
	rec     *record.Recorder
	started bool
	tracked tracked
	// watch holds the triggers and live histograms.
	watch *watcher
	// m is the manager holding the session.
	m *manager
	// retention caps output after each snapshot; retMu runs one pass at a
	// time.
	retention retention.Policy
	retMu     sync.Mutex
}

// tracked is the session's filter as track and untrack left it.
type tracked struct {
	pids      []uint32
	comms     []string
	cgroups   []string
	cgroupIDs []uint64 // of cgroups
}

func newManager(cfg Config) *manager {
	return &manager{sessions: map[string]*session{}, cfg: cfg, handled: map[int]time.Time{}}
}

// get returns the named session or a 404.
func (m *manager) get(name string) (*session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[name]
	if !ok {
		return nil, failf(http.StatusNotFound, "no session %q (rewind status lists them)", name)
	}
	return s, nil
}

// create loads a session's recorder with nothing enabled: events,
// filters and counters come with the commands that follow, as in LTTng.
func (m *manager) create(req api.CreateRequest) (*session, error) {
	if err := api.CheckName("session name", req.Name); err != nil {
		return nil, failf(http.StatusBadRequest, "%v", err)
	}
	if req.BufferSize == 0 {
		req.BufferSize = m.cfg.BufferSize
	}
	if req.Output == "" {
		req.Output = filepath.Join(m.cfg.OutputRoot, req.Name)
	}
	if !filepath.IsAbs(req.Output) {
		return nil, failf(http.StatusBadRequest, "output directory %q: want an absolute path", req.Output)
	}
	m.mu.Lock()
	if _, ok := m.sessions[req.Name]; ok {
		m.mu.Unlock()
		return nil, failf(http.StatusConflict, "session %q exists already", req.Name)
	}
	// Reserve the name while the recorder loads, outside the lock.
	s := &session{name: req.Name, output: req.Output, req: req, observe: m.observe, retention: m.cfg.Retention, m: m}
	if r := req.Retention; r != nil {
		if r.MaxFiles < 0 || r.MaxAge < 0 {
			m.mu.Lock()
			delete(m.sessions, req.Name)
			m.mu.Unlock()
			return nil, failf(http.StatusBadRequest, "retention: max files and max age cannot be negative")
		}
		s.retention = retention.Policy{MaxFiles: r.MaxFiles, MaxBytes: r.MaxBytes, MaxAge: r.MaxAge.D()}
	}
	m.sessions[req.Name] = s
	m.mu.Unlock()
	ok := false
	defer func() {
		if !ok {
			m.mu.Lock()
			delete(m.sessions, req.Name)
			m.mu.Unlock()
		}
	}()
	if err := fitsInMemory(req); err != nil {
		return nil, err
	}
	if err := outputDir(req.Output, m.cfg.Group); err != nil {
		return nil, failf(http.StatusBadRequest, "output directory: %v", err)
	}
	rec, err := record.New(record.Config{
		Events:       []string{kinds.GroupDefault},
		BufferSize:   req.BufferSize,
		HistoryBytes: req.Memory,
		HistoryAge:   req.History.D(),
		Counters:     []string{"none"},
		Version:      m.cfg.Version,
	})
	if err != nil {
		return nil, failf(http.StatusBadRequest, "session %s: %v", req.Name, err)
	}
	if err := rec.Disable(kinds.GroupDefault); err != nil {
		rec.Close()
		return nil, err
	}
	s.rec = rec
	s.watch = newWatcher(s)
	ok = true
	return s, nil
}

// destroy closes a session's recorder; its snapshots stay.
func (m *manager) destroy(name string) error {
	m.mu.Lock()
	s, ok := m.sessions[name]
	if ok && s.rec != nil {
		delete(m.sessions, name)
	}
	m.mu.Unlock()
	if !ok || s.rec == nil {
		return failf(http.StatusNotFound, "no session %q (rewind status lists them)", name)
	}
	return errors.Join(s.watch.close(), s.rec.Close())
}

// list returns the sessions in name order (those still loading left out).
func (m *manager) list() []*session {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*session
	for _, s := range m.sessions {
		if s.rec != nil {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// closeAll stops and closes every session (SIGTERM).
func (m *manager) closeAll() error {
	var errs []error
	for _, s := range m.list() {
		errs = append(errs, m.destroy(s.name))
	}
	return errors.Join(errs...)
}

func (s *session) enable(events []string) error {
	if len(events) == 0 {
		return failf(http.StatusBadRequest, "enable-event: no events given")
	}
	if err := s.rec.Enable(events...); err != nil {
		return failf(http.StatusBadRequest, "%v", err)
	}
	return nil
}

func (s *session) disable(events []string) error {
	if len(events) == 0 {
		return failf(http.StatusBadRequest, "disable-event: no events given")
	}
	if err := s.rec.Disable(events...); err != nil {
		return failf(http.StatusBadRequest, "%v", err)
	}
	return nil
}

// track adds to the filter (untrack, remove true, takes away) and sets
// the result in the kernel at once.
func (s *session) track(req api.TrackRequest, remove bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.tracked
	switch {
	case remove && req.All:
		next = tracked{}
	case len(req.PIDs)+len(req.Comms)+len(req.Cgroups) == 0:
		return failf(http.StatusBadRequest, "give pids, comms or cgroups (or all, to untrack everything)")
	case remove:
		next.pids = without(next.pids, req.PIDs)
		next.comms = without(next.comms, req.Comms)
		next.cgroups = without(next.cgroups, req.Cgroups)
	default:
		next.pids = union(next.pids, req.PIDs)
		next.comms = union(next.comms, req.Comms)
		next.cgroups = union(next.cgroups, req.Cgroups)
	}
	next.cgroupIDs = nil
	for _, c := range next.cgroups {
		id, err := record.CgroupID(c)
		if err != nil {
			return failf(http.StatusBadRequest, "%v", err)
		}
		next.cgroupIDs = append(next.cgroupIDs, id)
	}
	if err := s.rec.SetFilter(next.pids, next.comms, next.cgroups); err != nil {
		return failf(http.StatusBadRequest, "%v", err)
	}
	s.tracked = next
	if err := s.watch.setFilter(s.watchFilter()); err != nil {
		return fmt.Errorf("live histograms: %w", err)
	}
	return nil
}

func union[T comparable](have, add []T) []T {
	out := slices.Clone(have)
	for _, v := range add {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func without[T comparable](have, drop []T) []T {
	return slices.DeleteFunc(slices.Clone(have), func(v T) bool { return slices.Contains(drop, v) })
}

func (s *session) counters(names []string, remove bool) error {
	if len(names) == 0 {
		return failf(http.StatusBadRequest, "no counter sources given")
	}
	var err error
	if remove {
		err = s.rec.RemoveCounters(names...)
	} else {
		err = s.rec.AddCounters(names...)
	}
	if err != nil {
		return failf(http.StatusBadRequest, "%v", err)
	}
	return nil
}

func (s *session) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	events, err := s.rec.Events()
	if err != nil {
		return err
	}
	if len(events) == 0 {
		return failf(http.StatusConflict, "session %s has no events enabled: rewind enable-event -s %s default (or other events)", s.name, s.name)
	}
	if err := s.rec.Start(); err != nil {
		return err
	}
	s.started = true
	return nil
}

func (s *session) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.Stop()
}

// snapshot writes a snapshot into the session's output directory (req
// names the file) or, when w is not nil, to w.
func (s *session) snapshot(ctx context.Context, req api.SnapshotRequest, trig snapshot.Trigger, w *snapshotWriter) (*api.SnapshotReply, error) {
	if req.Name != "" {
		if err := api.CheckName("snapshot name", req.Name); err != nil {
			return nil, failf(http.StatusBadRequest, "%v", err)
		}
	}
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil, failf(http.StatusConflict, "session %s has never been started: there is nothing to snapshot (rewind start -s %s)", s.name, s.name)
	}
	sr := record.SnapshotRequest{Dir: s.output, Trigger: trig}
	switch {
	case w != nil:
		sr = record.SnapshotRequest{Writer: w, Trigger: trig}
	case req.Name != "":
		sr = record.SnapshotRequest{Path: filepath.Join(s.output, req.Name), Trigger: trig}
	}
	start := time.Now()
	res, err := s.rec.Snapshot(ctx, sr)
	if err != nil {
		return nil, err
	}
	if s.observe != nil {
		s.observe(s.name, time.Since(start))
	}
	rep := &api.SnapshotReply{Session: s.name, Path: res.Path, Bytes: res.Bytes, Events: res.Events, Lost: res.Lost, Samples: res.Samples}
	if w == nil {
		rep.Removed = s.retain()
	}
	return rep, nil
}

// retainByAge applies the sessions' age caps once a minute, so that old
// snapshots go even when no new one is taken, until ctx ends.
func (m *manager) retainByAge(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, s := range m.list() {
			if s.retention.MaxAge > 0 {
				s.retain()
			}
		}
	}
}

// retain applies the session's retention caps to its output directory and
// returns what it deleted; a failure is logged, not the snapshot's.
func (s *session) retain() []string {
	p := s.retention
	if p.MaxFiles == 0 && p.MaxBytes == 0 && p.MaxAge == 0 {
		return nil
	}
	s.retMu.Lock()
	defer s.retMu.Unlock()
	res, err := retention.Apply(s.output, p, time.Now())
	if err != nil {
		logf("session %s: retention in %s: %v", s.name, s.output, err)
	}
	for _, path := range res.Removed {
		logf("session %s: retention removed %s", s.name, path)
	}
	return res.Removed
}

// state renders the session for the API.
func (s *session) state() (api.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.rec.Stats()
	if err != nil {
		return api.Session{}, err
	}
	events, err := s.rec.Events()
	if err != nil {
		return api.Session{}, err
	}
	out := api.Session{Name: s.name, State: stateName(st.State, s.started), Output: s.output, BufferSize: s.rec.BufferBytes(),
		History: s.req.History, Memory: s.req.Memory, Events: events, Unavailable: s.rec.Unavailable(),
		Tracked:  api.TrackRequest{PIDs: s.tracked.pids, Comms: s.tracked.comms, Cgroups: s.tracked.cgroups},
		Counters: []string{}, Stats: &st, Histograms: s.watch.histograms()}
	if p := s.retention; p != (retention.Policy{}) {
		out.Retention = &api.Retention{MaxFiles: p.MaxFiles, MaxBytes: p.MaxBytes, MaxAge: api.Duration(p.MaxAge)}
	}
	for _, t := range s.watch.requests() {
		out.Triggers = append(out.Triggers, t.Name)
	}
	if out.Events == nil {
		out.Events = []string{}
	}
	for name := range st.Counters.Sources {
		out.Counters = append(out.Counters, name)
	}
	sort.Strings(out.Counters)
	return out, nil
}

// stateName is a session's state for the API and the metrics: created
// (never started), recording or stopped.
func stateName(rec record.State, started bool) string {
	switch {
	case rec == record.Recording:
		return "recording"
	case started:
		return "stopped"
	}
	return "created"
}

// fitsInMemory refuses a session whose rings, snapshot copy and history
// cap exceed the memory the kernel says is available.
func fitsInMemory(req api.CreateRequest) error {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	ring := uint64(record.SlotsFor(req.BufferSize)) * 64 * uint64(cpus)
	// Snapshots copy the rings into a buffer of 1.25 times their size.
	need := ring + ring*5/4 + req.Memory
	avail, err := memAvailable()
	if err != nil {
		return err
	}
	if need > avail {
		return failf(http.StatusInsufficientStorage, "session %s does not fit in memory: %s of kernel rings (%d CPUs × %s), %s to copy them for snapshots and %s of history need %s; the kernel has %s available (MemAvailable)",
			req.Name, units.FormatSize(ring), cpus, units.FormatSize(ring/uint64(cpus)), units.FormatSize(ring*5/4), units.FormatSize(req.Memory),
			units.FormatSize(need), units.FormatSize(avail))
	}
	return nil
}

// memAvailable reads MemAvailable from /proc/meminfo, in bytes.
func memAvailable() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo MemAvailable: %w", err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("/proc/meminfo has no MemAvailable")
}
