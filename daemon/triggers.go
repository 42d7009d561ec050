package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rewindtrace/rewind/bpf"
	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/formats/info"
	"github.com/rewindtrace/rewind/internal/counterexpr"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/record/counters"
	"github.com/rewindtrace/rewind/record/trigger"
	"github.com/rewindtrace/rewind/snapshot"
)

// triggerRoutes serves the sessions' triggers and live histograms.
func (d *Daemon) triggerRoutes(mux *http.ServeMux, v string) {
	mux.HandleFunc("POST "+v+"/sessions/{name}/triggers", d.handle(func(r *http.Request) (any, error) {
		var req api.TriggerRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		s, err := d.m.get(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		if err := s.watch.add(req); err != nil {
			return nil, err
		}
		return api.Triggers{Session: s.name, Triggers: s.watch.list()}, nil
	}))
	mux.HandleFunc("GET "+v+"/sessions/{name}/triggers", d.handle(func(r *http.Request) (any, error) {
		s, err := d.m.get(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		return api.Triggers{Session: s.name, Triggers: s.watch.list()}, nil
	}))
	mux.HandleFunc("DELETE "+v+"/sessions/{name}/triggers/{trigger}", d.handle(func(r *http.Request) (any, error) {
		s, err := d.m.get(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		if err := s.watch.remove(r.PathValue("trigger")); err != nil {
			return nil, err
		}
		return api.Triggers{Session: s.name, Triggers: s.watch.list()}, nil
	}))
	for action, remove := range map[string]bool{"enable-histogram": false, "disable-histogram": true} {
		mux.HandleFunc("POST "+v+"/sessions/{name}/"+action, d.session(func(s *session, r *http.Request) error {
			var req api.HistogramsRequest
			if err := decode(r, &req); err != nil {
				return err
			}
			return s.watch.setHistograms(req.Histograms, remove)
		}))
	}
}

// histNames are the live histograms by the names the API takes.
var histNames = map[string]uint32{"syscall": bpf.HistSyscall, "runq": bpf.HistRunq, "offcpu": bpf.HistOffCPU, "block": bpf.HistBlock}

// watcher is a session's triggers and live histograms: the kernel's watch
// programs (loaded when the first trigger or histogram is set), the
// goroutine reading their firings, and the conditions user space
// evaluates (counters, lost events). It is safe for concurrent use: mu
// guards everything but the firing loop's reads.
type watcher struct {
	s        *session
	mu       sync.Mutex
	w        *bpf.Watch
	triggers []*armed // in the order they were added
	hists    uint32
	filter   bpf.Filter // the session's tracked tasks, for the histograms
	loaded   time.Time  // when the watch programs loaded
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// armed is one trigger and what it has done.
type armed struct {
	req    api.TriggerRequest
	cond   *trigger.Condition
	slot   int // the kernel's trigger slot, -1 when user space evaluates it
	policy trigger.Policy
	// stop ends a condition user space evaluates.
	stop func()

	// pending is set while the trigger's snapshot is being taken.
	pending           bool
	snapshots, errors uint64
	// crashRecords and crashesHandled count the crash action's records
	// and the crashes it left to the kernel's handler.
	crashRecords, crashesHandled uint64
	lastErr                      string
	last                         *snapshot.Firing
	lastPath                     string
}

func newWatcher(s *session) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	return &watcher{s: s, ctx: ctx, cancel: cancel}
}

// load loads the watch programs on first use; call with mu held.
func (wt *watcher) load() error {
	if wt.w != nil {
		return nil
	}
	w, err := bpf.LoadWatch(bpf.WatchOptions{SelfTGID: uint32(os.Getpid())})
	if err != nil {
		return err
	}
	if err := w.SetFilter(wt.filter); err != nil {
		w.Close()
		return err
	}
	wt.w, wt.loaded = w, time.Now()
	wt.wg.Add(1)
	go wt.readFirings(w)
	return nil
}

// readFirings hands each firing of the kernel's conditions to its trigger
// until the watch closes.
func (wt *watcher) readFirings(w *bpf.Watch) {
	defer wt.wg.Done()
	for {
		f, err := w.ReadFiring()
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil {
			logf("session %s: triggers: %v", wt.s.name, err)
			continue
		}
		wt.mu.Lock()
		var a *armed
		for _, t := range wt.triggers {
			if t.slot == f.Trigger {
				a = t
			}
		}
		if a == nil { // removed meanwhile
			wt.mu.Unlock()
			continue
		}
		fr := snapshot.Firing{TS: f.TS, CPU: f.CPU, TID: f.TID, PID: f.PID, Comm: f.Comm, Value: float64(f.Value), What: trigger.What(a.cond, f)}
		wt.matchLocked(a, fr)
		wt.mu.Unlock()
	}
}

// match counts a match of a's condition and, when the policy lets it
// fire, runs the actions.
func (wt *watcher) match(a *armed, fr snapshot.Firing) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	wt.matchLocked(a, fr)
}

func (wt *watcher) matchLocked(a *armed, fr snapshot.Firing) {
	actions := a.req.Actions
	if len(actions) == 0 {
		actions = []string{api.ActionSnapshot}
	}
	snap := slices.Contains(actions, api.ActionSnapshot)
	notify := slices.Contains(actions, api.ActionNotify)
	crashAct := slices.Contains(actions, api.ActionCrash)
	if snap && a.pending {
		// One snapshot at a time per trigger: the one under way covers
		// this match, and a burst of matches takes no pile of them.
		a.policy.Pass(trigger.SuppressedPending)
		return
	}
	fire, why := a.policy.Match(time.Now())
	if !fire {
		// Log suppression sparingly: the 1st, 2nd, 4th, 8th... by reason.
		if n := a.policy.Suppressed[why]; n&(n-1) == 0 {
			logf("session %s: trigger %s: match %d passed (%s)", wt.s.name, a.req.Name, a.policy.Matches, why)
		}
		return
	}
	fr.Trigger, fr.Condition, fr.Unit, fr.Count = a.req.Name, a.cond.Text, a.cond.Unit(), a.policy.Matches
	fr.DelayNS = uint64(a.req.Delay.D())
	a.last = &fr
	a.pending = snap
	if notify {
		logf("session %s: trigger %s fired: %s (%s; tid %d pid %d comm %q, cpu %d)",
			wt.s.name, a.req.Name, fr.Condition, info.FiringValue(&fr), fr.TID, fr.PID, fr.Comm, fr.CPU)
	}
	if crashAct {
		wt.wg.Add(1)
		go func() {
			defer wt.wg.Done()
			wt.crashRecord(a, fr)
		}()
	}
	wt.wg.Add(1)
	go func() {
		defer wt.wg.Done()
		var path string
		if snap {
			path = wt.snapshot(a, fr)
			wt.mu.Lock()
			a.pending = false
			wt.mu.Unlock()
		}
		if notify && a.req.Post != "" {
			if err := wt.post(a, fr, path); err != nil {
				wt.failed(a, err)
			}
		}
	}()
}

// snapshot waits out the post-trigger delay, then snapshots the session
// with the firing in its metadata.
func (wt *watcher) snapshot(a *armed, fr snapshot.Firing) string {
	if d := a.req.Delay.D(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-wt.ctx.Done():
			t.Stop()
			return ""
		}
	}
	trig := snapshot.Trigger{Kind: snapshot.TriggerCondition, Detail: a.req.Name + ": " + fr.Condition, Firing: &fr}
	rep, err := wt.s.snapshot(wt.ctx, api.SnapshotRequest{}, trig, nil)
	if err != nil {
		wt.failed(a, fmt.Errorf("snapshot: %w", err))
		return ""
	}
	wt.mu.Lock()
	a.snapshots++
	a.lastPath = rep.Path
	wt.mu.Unlock()
	logf("session %s: trigger %s: snapshot %s: %d events, %d lost", wt.s.name, a.req.Name, rep.Path, rep.Events, rep.Lost)
	return rep.Path
}

// post sends the firing as JSON to the trigger's URL.
func (wt *watcher) post(a *armed, fr snapshot.Firing, path string) error {
	host, _ := os.Hostname()
	body, err := json.Marshal(api.TriggerFiring{Host: host, Session: wt.s.name, Firing: fr, Snapshot: path})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(wt.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.req.Post, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("notify %s: %w", a.req.Post, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("notify %s: %s", a.req.Post, resp.Status)
	}
	return nil
}

func (wt *watcher) failed(a *armed, err error) {
	wt.mu.Lock()
	a.errors++
	a.lastErr = err.Error()
	wt.mu.Unlock()
	logf("session %s: trigger %s: %v", wt.s.name, a.req.Name, err)
}

// add arms a trigger.
func (wt *watcher) add(req api.TriggerRequest) error {
	cond, err := trigger.Parse(req.Condition)
	if err != nil {
		return failf(http.StatusBadRequest, "%v", err)
	}
	a := &armed{req: req, cond: cond, slot: -1}
	if err := a.policy.ParseRate(req.Rate); err != nil {
		return failf(http.StatusBadRequest, "%v", err)
	}
	if req.Cooldown < 0 || req.MaxPerHour < 0 || req.Delay < 0 {
		return failf(http.StatusBadRequest, "trigger: cooldown, max-per-hour and delay cannot be negative")
	}
	a.policy.Cooldown, a.policy.MaxPerHour = req.Cooldown.D(), req.MaxPerHour
	for _, act := range req.Actions {
		switch act {
		case api.ActionSnapshot, api.ActionNotify:
		case api.ActionCrash:
			if cond.Kind != trigger.Signal {
				return failf(http.StatusBadRequest, "trigger action crash: for signal conditions only (signal SIGSEGV,SIGABRT,SIGBUS)")
			}
		default:
			return failf(http.StatusBadRequest, "trigger action %q: want %s, %s or %s", act, api.ActionSnapshot, api.ActionNotify, api.ActionCrash)
		}
	}
	if req.Post != "" {
		u, err := url.Parse(req.Post)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return failf(http.StatusBadRequest, "trigger post URL %q: want http://HOST/PATH or https://", req.Post)
		}
		if !slices.Contains(req.Actions, api.ActionNotify) {
			return failf(http.StatusBadRequest, "trigger post URL %q: it is the notify action's; add --action notify", req.Post)
		}
	}
	wt.mu.Lock()
	defer wt.mu.Unlock()
	for i := 1; a.req.Name == ""; i++ {
		if name := fmt.Sprintf("trigger%d", i); wt.find(name) == nil {
			a.req.Name = name
		}
	}
	if err := api.CheckName("trigger name", a.req.Name); err != nil {
		return failf(http.StatusBadRequest, "%v", err)
	}
	if wt.find(a.req.Name) != nil {
		return failf(http.StatusConflict, "session %s has a trigger %s already", wt.s.name, a.req.Name)
	}
	switch {
	case cond.Kernel != nil:
		used := map[int]bool{}
		for _, t := range wt.triggers {
			used[t.slot] = true
		}
		for i := 0; i < bpf.MaxWatchTriggers && a.slot < 0; i++ {
			if !used[i] {
				a.slot = i
			}
		}
		if a.slot < 0 {
			return failf(http.StatusConflict, "session %s has %d triggers evaluated in the kernel already, the most it takes", wt.s.name, bpf.MaxWatchTriggers)
		}
		if err := wt.load(); err != nil {
			return err
		}
		if err := wt.w.SetTrigger(a.slot, cond.Kernel); err != nil {
			return failf(http.StatusBadRequest, "trigger %s: %v", a.req.Name, err)
		}
	case cond.Kind == trigger.Lost:
		a.stop = wt.watchLost(a)
	case cond.Kind == trigger.Counter:
		stop, err := wt.watchCounter(a)
		if err != nil {
			return failf(http.StatusBadRequest, "trigger %s: %v", a.req.Name, err)
		}
		a.stop = stop
	}
	wt.triggers = append(wt.triggers, a)
	return nil
}

func (wt *watcher) find(name string) *armed {
	for _, t := range wt.triggers {
		if t.req.Name == name {
			return t
		}
	}
	return nil
}

// remove disarms a trigger.
func (wt *watcher) remove(name string) error {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	a := wt.find(name)
	if a == nil {
		return failf(http.StatusNotFound, "session %s has no trigger %q (rewind list-triggers -s %s)", wt.s.name, name, wt.s.name)
	}
	if a.slot >= 0 {
		if err := wt.w.SetTrigger(a.slot, nil); err != nil {
			return err
		}
	}
	if a.stop != nil {
		a.stop()
	}
	wt.triggers = slices.DeleteFunc(wt.triggers, func(t *armed) bool { return t == a })
	return nil
}

// list renders the triggers for the API.
func (wt *watcher) list() []api.Trigger {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	var matched [bpf.MaxWatchTriggers]uint64
	if wt.w != nil {
		if st, err := wt.w.Stats(); err == nil {
			matched = st.Matched
		}
	}
	out := []api.Trigger{}
	for _, a := range wt.triggers {
		t := api.Trigger{TriggerRequest: a.req, Matches: a.policy.Matches, Fired: a.policy.Fired, Snapshots: a.snapshots,
			Errors: a.errors, LastError: a.lastErr, Last: a.last, LastSnapshot: a.lastPath,
			CrashRecords: a.crashRecords, CrashesHandled: a.crashesHandled}
		// The kernel counts matches whose firing user space has not read
		// yet, or lost: the larger count is the truth.
		if a.slot >= 0 {
			t.Matches = max(t.Matches, matched[a.slot])
		}
		if len(a.policy.Suppressed) > 0 {
			t.Suppressed = map[string]uint64{}
			for k, v := range a.policy.Suppressed {
				t.Suppressed[k] = v
			}
		}
		out = append(out, t)
	}
	return out
}

func (wt *watcher) requests() []api.TriggerRequest {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	var out []api.TriggerRequest
	for _, a := range wt.triggers {
		out = append(out, a.req)
	}
	return out
}

// setHistograms turns the named live histograms on (off, with remove).
func (wt *watcher) setHistograms(names []string, remove bool) error {
	if len(names) == 0 {
		return failf(http.StatusBadRequest, "no histograms given: want %s or all", strings.Join(histList(), ", "))
	}
	var mask uint32
	for _, n := range names {
		if n == "all" {
			for _, m := range histNames {
				mask |= m
			}
			continue
		}
		m, ok := histNames[n]
		if !ok {
			return failf(http.StatusBadRequest, "no histogram %q: want %s or all", n, strings.Join(histList(), ", "))
		}
		mask |= m
	}
	wt.mu.Lock()
	defer wt.mu.Unlock()
	next := wt.hists | mask
	if remove {
		next = wt.hists &^ mask
	}
	if next != 0 {
		if err := wt.load(); err != nil {
			return err
		}
	}
	if wt.w == nil {
		return nil
	}
	if err := wt.w.SetHistograms(next); err != nil {
		return err
	}
	wt.hists = next
	return nil
}

func histList() []string {
	var out []string
	for n := range histNames {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// histograms names the live histograms on.
func (wt *watcher) histograms() []string {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	var out []string
	for n, m := range histNames {
		if wt.hists&m != 0 {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// setFilter follows the session's tracked tasks for the histograms.
func (wt *watcher) setFilter(f bpf.Filter) error {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	wt.filter = f
	if wt.w == nil {
		return nil
	}
	return wt.w.SetFilter(f)
}

// close disarms everything, waits for actions under way (a pending
// post-trigger delay is cut short) and unloads the programs.
func (wt *watcher) close() error {
	wt.cancel()
	wt.mu.Lock()
	for _, a := range wt.triggers {
		if a.stop != nil {
			a.stop()
		}
	}
	var err error
	if wt.w != nil {
		err = wt.w.Close()
	}
	wt.mu.Unlock()
	wt.wg.Wait()
	return err
}

// watchLost checks the session's lost events once a second and matches
// when more than the condition's count were lost since the last check.
func (wt *watcher) watchLost(a *armed) func() {
	ctx, cancel := context.WithCancel(wt.ctx)
	wt.wg.Add(1)
	go func() {
		defer wt.wg.Done()
		prev, _ := wt.s.lost()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			n, cpu := wt.s.lost()
			if n > prev && n-prev > a.cond.Lost {
				wt.match(a, snapshot.Firing{TS: sysx.BootNow(), CPU: cpu, Value: float64(n - prev), What: "events lost"})
			}
			prev = n
		}
	}()
	return cancel
}

// lost is the session's lost events so far, and the CPU that lost most.
func (s *session) lost() (uint64, int) {
	st, err := s.rec.Stats()
	if err != nil {
		return 0, -1
	}
	var n, most uint64
	cpu := -1
	for i, c := range st.CPUs {
		l := c.Dropped + c.Lost
		n += l
		if l > most {
			most, cpu = l, i
		}
	}
	return n, cpu
}

// watchFilter is the session's filter for the live histograms; call with
// s.mu held.
func (s *session) watchFilter() bpf.Filter {
	return bpf.Filter{PIDs: s.tracked.pids, Comms: s.tracked.comms, CgroupIDs: s.tracked.cgroupIDs}
}

// watchCounter matches when the counter expression crosses its threshold,
// from every sample of the session's counters (the source must be
// sampled). The tap runs on the sampling thread under the sampler's
// lock: it hands firings over through a channel, never taking wt.mu.
func (wt *watcher) watchCounter(a *armed) (func(), error) {
	e, err := counterexpr.Parse(a.cond.Expr)
	if err != nil {
		return nil, err
	}
	st, err := wt.s.rec.Stats()
	if err != nil {
		return nil, err
	}
	if _, ok := st.Counters.Sources[e.Source]; !ok {
		return nil, fmt.Errorf("the session samples no %s counters: rewind enable-counter -s %s %s first", e.Source, wt.s.name, e.Source)
	}
	m := counterexpr.NewMatcher(e)
	firings := make(chan counterexpr.Firing, 64)
	var dropped uint64 // under the sampler's lock
	var buf []counterexpr.Firing
	remove, err := wt.s.rec.TapCounters(func(smp counters.Sample) {
		buf = m.Feed(smp, buf[:0])
		for _, f := range buf {
			select {
			case firings <- f:
			default:
				dropped++
			}
		}
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(wt.ctx)
	wt.wg.Add(1)
	go func() {
		defer wt.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case f := <-firings:
				wt.match(a, snapshot.Firing{TS: uint64(f.TS), CPU: -1, Value: f.Value, What: f.String()})
			}
		}
	}()
	return func() {
		remove()
		cancel()
	}, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "rewind: daemon: "+format+"\n", args...)
}
