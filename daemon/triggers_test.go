package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/analyze"
	"github.com/rewindtrace/rewind/analyze/hist"
	"github.com/rewindtrace/rewind/bpf"
	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/daemon/client"
	"github.com/rewindtrace/rewind/internal/testchild"
	"github.com/rewindtrace/rewind/record/counters"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/snaptest"
)

// sleeper is the "sleep" child: on its pinned thread, it prints its
// thread id, then for each line "N D" makes N nanosleep calls of D each
// and prints how many of them took longer than REWIND_TEST_SLOW; "crash"
// writes through a nil pointer (SIGSEGV).
func sleeper() {
	// Work on a thread of its own, not the main one, so that the thread
	// id is not the process id: a filter on it then keeps this thread
	// only, not the runtime's (whose sysmon sleeps with nanosleep too).
	runtime.LockOSThread()
	done := make(chan struct{})
	go func() {
		sleeperThread()
		close(done)
	}()
	<-done
	os.Exit(0)
}

func sleeperThread() {
	if err := testchild.Pin(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Block the signals the runtime sends its threads (preemption's
	// SIGURG), which would cut a sleep short and make it two calls; the
	// crash's SIGSEGV stays deliverable.
	var set unix.Sigset_t
	for sig := 1; sig <= 64; sig++ {
		if sig != int(unix.SIGSEGV) {
			set.Val[(sig-1)/64] |= 1 << ((sig - 1) % 64)
		}
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	slow, _ := time.ParseDuration(os.Getenv("REWIND_TEST_SLOW"))
	fmt.Println(syscall.Gettid())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "crash" {
			var p *int
			*p = 1
		}
		var n int
		var d time.Duration
		var ds string
		fmt.Sscan(sc.Text(), &n, &ds)
		d, _ = time.ParseDuration(ds)
		over := 0
		for range n {
			ts := syscall.NsecToTimespec(int64(d))
			start := time.Now()
			// Not RawSyscall: the runtime would preempt the "running"
			// goroutine with a signal that cuts the sleep short.
			if _, _, e := syscall.Syscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0); e != 0 {
				fmt.Fprintln(os.Stderr, "nanosleep:", e)
				os.Exit(2)
			}
			if slow > 0 && time.Since(start) > slow {
				over++
			}
		}
		fmt.Println(over)
	}
}

// sleepChild drives a "sleep" child.
type sleepChild struct {
	*testchild.Child
	tid int
}

func startSleeper(t *testing.T, env ...string) *sleepChild {
	c := testchild.Start(t, "sleep", env)
	return &sleepChild{Child: c, tid: int(c.Int(t))}
}

// sleep makes n calls of d and returns how many the child saw take longer
// than its REWIND_TEST_SLOW.
func (c *sleepChild) sleep(t *testing.T, n int, d time.Duration) int {
	t.Helper()
	if _, err := fmt.Fprintf(c.Stdin, "%d %s\n", n, d); err != nil {
		t.Fatal(err)
	}
	return int(c.Int(t))
}

// waitTriggers polls the session's triggers until ok says they are done.
func waitTriggers(t *testing.T, c *client.Client, session string, what string, ok func([]api.Trigger) bool) []api.Trigger {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.Triggers(context.Background(), session)
		must(t, err)
		if ok(out.Triggers) {
			return out.Triggers
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(out, "", "  ")
			t.Fatalf("after 30s, still waiting for %s; triggers:\n%s", what, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sleepCall is one nanosleep call as a snapshot holds it.
type sleepCall struct{ enter, exit uint64 }

// nanosleeps returns the thread's nanosleep calls whose entry and exit the
// snapshot holds, and its signal events by name.
func nanosleeps(t *testing.T, path string, tid int) (calls []sleepCall, signals map[string]int, last uint64) {
	t.Helper()
	r := snaptest.Open(t, path)
	s := r.Schema()
	enter, exit := s.ByName("sys_enter"), s.ByName("sys_exit")
	type ev struct {
		ts    uint64
		enter bool
	}
	var evs []ev
	signals = map[string]int{}
	var c snapshot.Chunk
	for _, sec := range r.Chunks() {
		must(t, r.ReadChunk(sec, &c))
		for i := 0; i < c.Len(); i++ {
			last = max(last, c.TS[i])
			if c.TID[i] != uint32(tid) {
				continue
			}
			name := s.ByID(c.Type[i]).Name
			if strings.HasPrefix(name, "signal_") {
				signals[name]++
			}
			row := int(c.Row[i])
			switch {
			case c.Type[i] == enter.ID && c.Column(enter.ID, enter.Field("id")).Int(row) == syscall.SYS_NANOSLEEP:
				evs = append(evs, ev{c.TS[i], true})
			case c.Type[i] == exit.ID && c.Column(exit.ID, exit.Field("id")).Int(row) == syscall.SYS_NANOSLEEP:
				evs = append(evs, ev{c.TS[i], false})
			}
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].ts < evs[j].ts })
	for i := 0; i+1 < len(evs); i++ {
		if evs[i].enter && !evs[i+1].enter {
			calls = append(calls, sleepCall{evs[i].ts, evs[i+1].ts})
			i++
		}
	}
	return calls, signals, last
}

func readMeta(t *testing.T, path string) *snapshot.Meta {
	t.Helper()
	return snaptest.Open(t, path).Meta()
}

// TestSyscallTrigger: "nanosleep slower than 50ms" for one thread fires
// once for its single 100ms call and not for its 10ms ones (unless the
// machine made one of those slow too: the recorded calls are the ground
// truth); the snapshot it takes after a 300ms delay reaches past the
// firing by the delay and holds the firing call's entry and exit.
func TestSyscallTrigger(t *testing.T) {
	_, c := startDaemon(t, Config{})
	child := startSleeper(t)
	create(t, c, api.CreateRequest{Name: "slow"})
	act(t, c, "slow", "enable-event", api.EventsRequest{Events: []string{"syscalls"}})
	act(t, c, "slow", "track", api.TrackRequest{PIDs: []uint32{uint32(child.tid)}})
	act(t, c, "slow", "start", nil)
	const delay = 300 * time.Millisecond
	_, err := c.AddTrigger(context.Background(), "slow", api.TriggerRequest{Name: "slowsleep",
		Condition: fmt.Sprintf("syscall > 50ms syscall=nanosleep pid=%d", child.tid), Delay: api.Duration(delay)})
	must(t, err)

	child.sleep(t, 3, 10*time.Millisecond)
	child.sleep(t, 1, 100*time.Millisecond)
	child.sleep(t, 2, 10*time.Millisecond)
	// Keep the thread busy with short sleeps until the snapshot is taken,
	// so that the snapshot has events past the delay.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := fmt.Fprintf(child.Stdin, "%d %s\n", 10, time.Millisecond); err != nil {
				return
			}
			if _, err := child.Line(); err != nil {
				return
			}
		}
	}()
	trigs := waitTriggers(t, c, "slow", "the trigger's snapshot", func(ts []api.Trigger) bool { return len(ts) == 1 && ts[0].Snapshots >= 1 })
	close(stop)
	wg.Wait()
	// Ground truth: every nanosleep the thread made, from a snapshot of
	// the whole run.
	all := snap(t, c, "slow", api.SnapshotRequest{Name: "all.rwd"})
	calls, _, _ := nanosleeps(t, all.Path, child.tid)
	slow := 0
	for _, call := range calls {
		if call.exit-call.enter > uint64(50*time.Millisecond) {
			slow++
		}
	}
	if slow < 1 {
		t.Fatalf("the snapshot of the run holds no nanosleep over 50ms among %d calls", len(calls))
	}
	// A slow call while the snapshot was pending is covered by it.
	trigs = waitTriggers(t, c, "slow", "every match read", func(ts []api.Trigger) bool {
		return ts[0].Fired+ts[0].Suppressed["pending"] == uint64(slow)
	})
	tr := trigs[0]
	if tr.Matches != uint64(slow) || tr.Fired < 1 {
		t.Fatalf("trigger matched %d and fired %d times; the thread made %d nanosleep calls over 50ms (of %d)", tr.Matches, tr.Fired, slow, len(calls))
	}
	if slow != 1 {
		t.Logf("the machine made %d of the 10ms calls slower than 50ms too; each fired", slow-1)
	}
	// The trigger's own snapshot.
	path := tr.LastSnapshot
	m := readMeta(t, path)
	f := m.Trigger.Firing
	if m.Trigger.Kind != snapshot.TriggerCondition || f == nil || f.Trigger != "slowsleep" || f.TID != uint32(child.tid) ||
		f.What != "nanosleep" || f.Unit != "ns" || f.Value <= float64(50*time.Millisecond) || f.DelayNS != uint64(delay) {
		t.Fatalf("trigger metadata %+v, firing %+v", m.Trigger, f)
	}
	held, _, last := nanosleeps(t, path, child.tid)
	if last < f.TS+uint64(delay) {
		t.Errorf("snapshot ends %v after the firing, before the %v delay", time.Duration(last-f.TS), delay)
	}
	found := false
	for _, call := range held {
		// The watch and the recording programs read the clock apart.
		if call.exit+uint64(time.Millisecond) >= f.TS && call.exit <= f.TS+uint64(time.Millisecond) && call.exit-call.enter > uint64(50*time.Millisecond) {
			found = true
		}
	}
	if !found {
		t.Errorf("the trigger's snapshot holds no nanosleep entry and exit ending at the firing (%d ns); calls %v", f.TS, held)
	}
}

// TestTriggerPolicy: with every:3, six slow calls fire twice; the notify
// action POSTs each firing.
func TestTriggerPolicy(t *testing.T) {
	_, c := startDaemon(t, Config{})
	child := startSleeper(t, "REWIND_TEST_SLOW=50ms")
	var mu sync.Mutex
	var posted []api.TriggerFiring
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var f api.TriggerFiring
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			t.Errorf("POST body: %v", err)
		}
		mu.Lock()
		posted = append(posted, f)
		mu.Unlock()
	}))
	defer srv.Close()
	create(t, c, api.CreateRequest{Name: "policy"})
	act(t, c, "policy", "enable-event", api.EventsRequest{Events: []string{"sched_switch"}})
	act(t, c, "policy", "start", nil)
	_, err := c.AddTrigger(context.Background(), "policy", api.TriggerRequest{Name: "third",
		Condition: fmt.Sprintf("syscall > 20ms syscall=nanosleep pid=%d", child.tid), Rate: "every:3",
		Actions: []string{api.ActionNotify}, Post: srv.URL})
	must(t, err)
	// Six calls of 60ms: all over the threshold.
	if n := child.sleep(t, 6, 60*time.Millisecond); n != 6 {
		t.Fatalf("child saw %d of 6 calls over 50ms", n)
	}
	trigs := waitTriggers(t, c, "policy", "six matches, two POSTs", func(ts []api.Trigger) bool {
		mu.Lock()
		defer mu.Unlock()
		return ts[0].Matches == 6 && len(posted) == 2
	})
	tr := trigs[0]
	if tr.Fired != 2 || tr.Suppressed["policy"] != 4 || tr.Snapshots != 0 {
		t.Errorf("every:3 over 6 matches: fired %d, suppressed %v, snapshots %d; want 2, 4 by policy, 0", tr.Fired, tr.Suppressed, tr.Snapshots)
	}
	mu.Lock()
	defer mu.Unlock()
	if posted[0].Firing.Count != 3 || posted[1].Firing.Count != 6 || posted[0].Session != "policy" || posted[0].Firing.TID != uint32(child.tid) {
		t.Errorf("POSTed firings %+v", posted)
	}
	// The policy and the kernel's counts survive nothing else: removing
	// the trigger detaches its programs.
	_, err = c.RemoveTrigger(context.Background(), "policy", "third")
	must(t, err)
}

// TestSignalTrigger: a SIGSEGV trigger fires for a crashing child and its
// snapshot holds the child's signal_generate and signal_deliver.
func TestSignalTrigger(t *testing.T) {
	_, c := startDaemon(t, Config{})
	// Its panic is expected: no goroutine dump in the test's output.
	child := startSleeper(t, "GOTRACEBACK=none")
	create(t, c, api.CreateRequest{Name: "crash"})
	act(t, c, "crash", "enable-event", api.EventsRequest{Events: []string{"signals", "process"}})
	act(t, c, "crash", "track", api.TrackRequest{PIDs: []uint32{uint32(child.Pid())}})
	act(t, c, "crash", "start", nil)
	_, err := c.AddTrigger(context.Background(), "crash", api.TriggerRequest{Name: "segv",
		Condition: fmt.Sprintf("signal SIGSEGV pid=%d", child.Pid()), Delay: api.Duration(100 * time.Millisecond)})
	must(t, err)
	// The Go runtime turns the SIGSEGV into a panic and exit status 2.
	_, err = c.AddTrigger(context.Background(), "crash", api.TriggerRequest{Name: "died",
		Condition: fmt.Sprintf("exit pid=%d", child.Pid()), Actions: []string{api.ActionNotify}})
	must(t, err)
	fmt.Fprintln(child.Stdin, "crash")
	child.Cmd.Wait()
	trigs := waitTriggers(t, c, "crash", "the crash's snapshot and exit", func(ts []api.Trigger) bool { return ts[0].Snapshots == 1 && ts[1].Fired == 1 })
	if f := trigs[1].Last; f == nil || f.What != "exit status 2" || f.PID != uint32(child.Pid()) {
		t.Errorf("exit firing %+v, want exit status 2 of pid %d", f, child.Pid())
	}
	m := readMeta(t, trigs[0].LastSnapshot)
	if f := m.Trigger.Firing; f == nil || f.What != "SIGSEGV" || f.PID != uint32(child.Pid()) || f.Value != 11 {
		t.Fatalf("firing %+v", f)
	}
	_, signals, _ := nanosleeps(t, trigs[0].LastSnapshot, child.tid)
	if signals["signal_generate"] == 0 || signals["signal_deliver"] == 0 {
		t.Errorf("the snapshot holds the crashing thread's signals %v, want signal_generate and signal_deliver", signals)
	}
}

// runDelay is a thread's time spent waiting to run so far, from the
// kernel's schedstat.
func runDelay(t *testing.T, pid, tid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/schedstat", pid, tid))
	must(t, err)
	f := strings.Fields(string(b))
	ns, err := strconv.ParseInt(f[1], 10, 64)
	must(t, err)
	return time.Duration(ns)
}

// TestRunqTrigger: a run-queue trigger fires for two hogs pinned to one
// CPU, and not for a thread sleeping and waking on another CPU, when the
// kernel's schedstat says that thread never waited as long in all.
func TestRunqTrigger(t *testing.T) {
	_, c := startDaemon(t, Config{})
	const threshold = 2 * time.Millisecond
	sleepy := startSleeper(t, testchild.PinEnv+"=1")
	var hogs []*testchild.Child
	var hogTIDs []int
	for range 2 {
		h := testchild.Start(t, "hog", []string{testchild.PinEnv + "=0", "REWIND_TEST_SPIN=20s"})
		hogs = append(hogs, h)
		hogTIDs = append(hogTIDs, int(h.Int(t)))
	}
	create(t, c, api.CreateRequest{Name: "runq"})
	act(t, c, "runq", "enable-event", api.EventsRequest{Events: []string{"sched"}})
	act(t, c, "runq", "start", nil)
	for i, tid := range hogTIDs {
		_, err := c.AddTrigger(context.Background(), "runq", api.TriggerRequest{Name: fmt.Sprintf("hog%d", i),
			Condition: fmt.Sprintf("runq > %s pid=%d", threshold, tid), Actions: []string{api.ActionNotify}, Cooldown: api.Duration(time.Hour)})
		must(t, err)
	}
	_, err := c.AddTrigger(context.Background(), "runq", api.TriggerRequest{Name: "idle",
		Condition: fmt.Sprintf("runq > %s pid=%d", threshold, sleepy.tid), Actions: []string{api.ActionNotify}})
	must(t, err)
	before := runDelay(t, sleepy.Pid(), sleepy.tid)
	sleepy.sleep(t, 20, time.Millisecond)
	waited := runDelay(t, sleepy.Pid(), sleepy.tid) - before
	trigs := waitTriggers(t, c, "runq", "both hogs' firings", func(ts []api.Trigger) bool { return ts[0].Fired == 1 && ts[1].Fired == 1 })
	for i, tr := range trigs[:2] {
		if tr.Last == nil || tr.Last.TID != uint32(hogTIDs[i]) || tr.Last.CPU != 0 || tr.Last.Value <= float64(threshold) {
			t.Errorf("hog %d's firing %+v: want its tid %d on cpu 0 above %v", i, tr.Last, hogTIDs[i], threshold)
		}
	}
	idle := trigs[2]
	if waited < threshold {
		if idle.Matches != 0 {
			t.Errorf("the sleeper on cpu 1 waited %v in all, yet its trigger matched %d times: %+v", waited, idle.Matches, idle.Last)
		}
	} else {
		t.Logf("could not keep cpu 1 idle: the sleeper waited %v in all to run; not judging its trigger (%d matches)", waited, idle.Matches)
	}
	for _, h := range hogs {
		h.Cmd.Process.Kill()
	}
}

// TestLiveHistogram: the live syscall histogram of a thread's 200 × 2.5ms
// nanosleeps counts exactly those calls and has its median in the bucket
// rewind analyze finds for a snapshot of the same calls; a real Prometheus
// scrapes it as a native histogram.
func TestLiveHistogram(t *testing.T) {
	d, c := startDaemon(t, Config{Listen: "127.0.0.1:0"})
	child := startSleeper(t)
	create(t, c, api.CreateRequest{Name: "live"})
	act(t, c, "live", "enable-event", api.EventsRequest{Events: []string{"syscalls"}})
	act(t, c, "live", "track", api.TrackRequest{PIDs: []uint32{uint32(child.tid)}})
	act(t, c, "live", "enable-histogram", api.HistogramsRequest{Histograms: []string{"syscall"}})
	act(t, c, "live", "start", nil)
	s, err := d.m.get("live")
	must(t, err)
	const n = 200
	child.sleep(t, n, 2500*time.Microsecond)
	hists, _, _, ok, err := s.watch.read()
	must(t, err)
	if !ok {
		t.Fatal("no live histograms")
	}
	live := hists[bpf.HistKey{Hist: bpf.HistSyscall, Label: syscall.SYS_NANOSLEEP}]
	if live == nil {
		t.Fatalf("no live nanosleep histogram in %v", hists)
	}
	var count uint64
	var idx []int
	for i, k := range live.Buckets {
		count += k
		idx = append(idx, i)
	}
	if count != n {
		t.Fatalf("live histogram counts %d nanosleep calls, want %d (buckets %v, sum %d)", count, n, live.Buckets, live.Sum)
	}
	sort.Ints(idx)
	var cum uint64
	median := -1
	for _, i := range idx {
		cum += live.Buckets[i]
		if median < 0 && cum >= n/2 {
			median = i
		}
	}
	rep := snap(t, c, "live", api.SnapshotRequest{Name: "live.rwd"})
	r := snaptest.Open(t, rep.Path)
	res, err := analyze.Run(r, analyze.Options{Only: []string{analyze.SyscallLatency}, TIDs: []uint32{uint32(child.tid)}})
	must(t, err)
	sr := res.Find(analyze.SyscallLatency, analyze.Label{Name: "by", Value: "syscall"}, analyze.Label{Name: "syscall", Value: "nanosleep"})
	if sr == nil || sr.Hist.Count() != n {
		t.Fatalf("rewind analyze finds %v nanosleep calls, want %d", sr, n)
	}
	p50 := sr.Hist.Quantile(0.5)
	if got := hist.Index(p50, bpf.HistM); got != median {
		// The watch and the recording programs read the clock a few
		// hundred ns apart: a median that close to a bound may cross it.
		lo, hi := hist.Bounds(median, bpf.HistM)
		if p50+5000 < lo || p50 > hi+5000 {
			t.Errorf("analyze's p50 %v is in bucket %d, the live histogram's median in bucket %d [%d, %d]", time.Duration(p50), got, median, lo, hi)
		}
	}

	// A real Prometheus, asking for native histograms.
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("REWIND_REQUIRE_KERNEL") == "1" {
			t.Fatal("prometheus not found; `make test` installs it (scripts/deps.sh test)")
		}
		t.Skip("no prometheus")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rewind\n    static_configs:\n      - targets: ['%s']\n", d.HTTPAddr())
	must(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644))
	addr := freePort(t)
	prom := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--enable-feature=native-histograms")
	prom.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var log strings.Builder
	prom.Stdout, prom.Stderr = &log, &log
	must(t, prom.Start())
	t.Cleanup(func() { prom.Process.Kill(); prom.Wait() })
	query := "http://" + addr + "/api/v1/query?query=" + url.QueryEscape(`histogram_count(rewind_syscall_latency_seconds{session="live",syscall="nanosleep"})`)
	deadline := time.Now().Add(90 * time.Second)
	for {
		v, err := queryValue(query)
		if err == nil && v == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus's histogram_count of the live nanosleep histogram is not %d after 90s (last: %v, %v); its log:\n%s", n, v, err, log.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	q50 := "http://" + addr + "/api/v1/query?query=" + url.QueryEscape(`histogram_quantile(0.5, rewind_syscall_latency_seconds{session="live",syscall="nanosleep"})`)
	v, err := queryValue(q50)
	must(t, err)
	// The kernel's buckets are 1/8 of a power of two wide, the native
	// ones 2^(1/8) (9%), and each kernel bucket lands in the native one
	// of its midpoint: within 20%.
	if math.Abs(v*1e9-float64(p50)) > 0.2*float64(p50) {
		t.Errorf("Prometheus's median %.6fs, analyze's %v", v, time.Duration(p50))
	}
}

// TestCounterTrigger: a counter condition that holds fires once, on the
// first sample, and not again while it keeps holding; a condition on a
// source the session does not sample is refused.
func TestCounterTrigger(t *testing.T) {
	d, c := startDaemon(t, Config{})
	create(t, c, api.CreateRequest{Name: "counted"})
	act(t, c, "counted", "enable-event", api.EventsRequest{Events: []string{"sched_switch"}})
	_, err := c.AddTrigger(context.Background(), "counted", api.TriggerRequest{Condition: "counter memory:MemAvailable > 1B", Actions: []string{api.ActionNotify}})
	if err == nil || !strings.Contains(err.Error(), "enable-counter -s counted memory") {
		t.Fatalf("a condition on a source not sampled: %v", err)
	}
	act(t, c, "counted", "enable-counter", api.CountersRequest{Counters: []string{"memory@100"}})
	act(t, c, "counted", "start", nil)
	_, err = c.AddTrigger(context.Background(), "counted", api.TriggerRequest{Condition: "counter memory:MemAvailable > 1B", Actions: []string{api.ActionNotify}})
	must(t, err)
	trigs := waitTriggers(t, c, "counted", "the counter's firing", func(ts []api.Trigger) bool { return ts[0].Fired == 1 })
	if f := trigs[0].Last; f == nil || f.Value <= 1 || !strings.Contains(f.What, "MemAvailable") || trigs[0].Name != "trigger1" {
		t.Fatalf("trigger %+v, firing %+v", trigs[0], f)
	}
	// Twenty more samples: the condition still holds, and fires no more.
	sess, err := d.m.get("counted")
	must(t, err)
	seen := make(chan struct{}, 1000)
	remove, err := sess.rec.TapCounters(func(counters.Sample) {
		select {
		case seen <- struct{}{}:
		default:
		}
	})
	must(t, err)
	for range 20 {
		select {
		case <-seen:
		case <-time.After(30 * time.Second):
			t.Fatal("no counter sample in 30s")
		}
	}
	remove()
	out, err := c.Triggers(context.Background(), "counted")
	must(t, err)
	if out.Triggers[0].Fired != 1 {
		t.Errorf("a condition that kept holding fired %d times, want once", out.Triggers[0].Fired)
	}
}

// TestTriggersSaved: a session's triggers and live histograms are in its
// definition and come back when it is loaded.
func TestTriggersSaved(t *testing.T) {
	_, c := startDaemon(t, Config{})
	create(t, c, api.CreateRequest{Name: "kept"})
	req := api.TriggerRequest{Name: "slow", Condition: "syscall > 1s", Rate: "once-after:2", Cooldown: api.Duration(time.Minute), MaxPerHour: 3, Delay: api.Duration(time.Second)}
	_, err := c.AddTrigger(context.Background(), "kept", req)
	must(t, err)
	act(t, c, "kept", "enable-histogram", api.HistogramsRequest{Histograms: []string{"runq", "offcpu"}})
	def, err := c.Definition(context.Background(), "kept")
	must(t, err)
	must(t, c.Destroy(context.Background(), "kept"))
	_, err = c.Load(context.Background(), *def)
	must(t, err)
	out, err := c.Triggers(context.Background(), "kept")
	must(t, err)
	if len(out.Triggers) != 1 || !reflectEqualJSON(t, out.Triggers[0].TriggerRequest, req) {
		t.Errorf("loaded triggers %+v, want %+v", out.Triggers, req)
	}
	if s := getSession(t, c, "kept"); strings.Join(s.Histograms, ",") != "offcpu,runq" || strings.Join(s.Triggers, ",") != "slow" {
		t.Errorf("loaded session keeps histograms %v and triggers %v", s.Histograms, s.Triggers)
	}
	// Bad requests name what is wrong.
	for _, bad := range []api.TriggerRequest{
		{Condition: "syscall > soon"},
		{Condition: "oom", Actions: []string{"reboot"}},
		{Condition: "oom", Rate: "often"},
		{Condition: "oom", Post: "ftp://x", Actions: []string{"notify"}},
		{Condition: "oom", Name: "slow"},
	} {
		if _, err := c.AddTrigger(context.Background(), "kept", bad); err == nil {
			t.Errorf("trigger %+v accepted", bad)
		}
	}
	if _, err := c.RemoveTrigger(context.Background(), "kept", "nope"); !isStatus(err, http.StatusNotFound) {
		t.Errorf("removing a trigger that does not exist: %v", err)
	}
}
