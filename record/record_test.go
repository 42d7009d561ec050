package record

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/internal/testchild"
	"github.com/rewindtrace/rewind/internal/testkernel"
	"github.com/rewindtrace/rewind/record/counters"
	"github.com/rewindtrace/rewind/ringbuf"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/snaptest"
)

// The test binary doubles as the workload: REWIND_TEST_CHILD selects what
// the child does once it reads a byte from stdin.
func TestMain(m *testing.M) {
	switch os.Getenv("REWIND_TEST_CHILD") {
	case "":
		os.Exit(m.Run())
	case "getppid":
		if err := testchild.Pin(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		n, _ := strconv.Atoi(os.Getenv("REWIND_TEST_N"))
		var b [1]byte
		os.Stdin.Read(b[:])
		for i := 0; i < n; i++ {
			// getppid ignores its arguments; the tracepoint still records
			// them, which numbers every call.
			syscall.RawSyscall(syscall.SYS_GETPPID, uintptr(i), 0, 0)
		}
		os.Exit(0)
	case "spin":
		// getppid flat out on one CPU until stdin closes.
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(0)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			os.Exit(2)
		}
		var stop atomic.Bool
		go func() { var b [1]byte; os.Stdin.Read(b[:]); stop.Store(true) }()
		for !stop.Load() {
			for i := 0; i < 1000; i++ {
				syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
			}
		}
		os.Exit(0)
	case "sleep":
		// Sleep on one thread, so that every wakeup is of the main thread.
		runtime.LockOSThread()
		ts := unix.Timespec{Nsec: 5e6}
		for i := 0; i < 10; i++ {
			unix.Nanosleep(&ts, nil)
		}
		os.Exit(0)
	case "busy":
		busyMain()
		os.Exit(0)
	case "step":
		stepMain()
		os.Exit(0)
	default:
		if childMain(os.Getenv("REWIND_TEST_CHILD")) {
			os.Exit(0)
		}
	}
	os.Exit(3)
}

type child struct {
	cmd   *exec.Cmd
	start *os.File
}

// startChild starts a paused child that will call getppid n times.
func startChild(t *testing.T, n, cpu int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REWIND_TEST_CHILD=getppid", "REWIND_TEST_N="+strconv.Itoa(n))
	if cpu >= 0 {
		cmd.Env = append(cmd.Env, testchild.PinEnv+"="+strconv.Itoa(cpu))
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stderr = r, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() { w.Close(); cmd.Process.Kill(); cmd.Wait() })
	return &child{cmd: cmd, start: w}
}

func (c *child) run(t *testing.T) {
	t.Helper()
	if _, err := c.start.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
}

// call is one getppid the child made, as recorded.
type call struct {
	enters, exits int
}

// readGetppid reads a snapshot and returns, by call number, what was
// recorded of the child's getppid calls, and the file's summary.
func readGetppid(t *testing.T, path string, pid int) (map[uint64]*call, *snapshot.Reader, *snapshot.Summary) {
	t.Helper()
	r := snaptest.Open(t, path)
	s := r.Schema()
	enter, exit := s.ByName("sys_enter"), s.ByName("sys_exit")
	calls := map[uint64]*call{}
	var c snapshot.Chunk
	var exitOrder []int64
	for _, sec := range r.Chunks() {
		if err := r.ReadChunk(sec, &c); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < c.Len(); i++ {
			if c.PID[i] != uint32(pid) {
				continue
			}
			switch c.Type[i] {
			case enter.ID:
				if c.Column(enter.ID, enter.Field("id")).Int(int(c.Row[i])) != syscall.SYS_GETPPID {
					continue
				}
				n := c.Column(enter.ID, enter.Field("args")).UintAt(int(c.Row[i]), 0)
				if calls[n] == nil {
					calls[n] = &call{}
				}
				calls[n].enters++
			case exit.ID:
				row := int(c.Row[i])
				if c.Column(exit.ID, exit.Field("id")).Int(row) != syscall.SYS_GETPPID {
					continue
				}
				exitOrder = append(exitOrder, c.Column(exit.ID, exit.Field("ret")).Int(row))
			}
		}
	}
	for _, ret := range exitOrder {
		if ret != int64(os.Getpid()) {
			t.Fatalf("getppid returned %d, want the test's pid %d", ret, os.Getpid())
		}
	}
	// sys_exit carries no argument, so match exits to calls by count.
	for n := uint64(0); int(n) < len(exitOrder) && calls[n] != nil; n++ {
		calls[n].exits++
	}
	sum, err := snapshot.Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	return calls, r, sum
}

func TestExactSyscallCount(t *testing.T) {
	testkernel.Require(t)
	const n = 2500
	ch := startChild(t, n, -1)
	rec, err := Start(Config{Events: []string{"syscalls"}, BufferSize: 16 << 20, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ch.run(t)
	path := filepath.Join(t.TempDir(), "exact.rwd")
	res, err := rec.Snapshot(path, snapshot.Trigger{Kind: snapshot.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot: %d events, %d lost, %d bytes, read %v, total %v", res.Events, res.Lost, res.Bytes, res.ReadTime, res.Total)
	calls, _, sum := readGetppid(t, path, ch.cmd.Process.Pid)
	if len(calls) != n {
		t.Fatalf("recorded %d distinct getppid calls, want %d", len(calls), n)
	}
	enters, exits := 0, 0
	for i := uint64(0); i < n; i++ {
		c := calls[i]
		if c == nil || c.enters != 1 {
			t.Fatalf("call %d recorded %+v, want one enter", i, c)
		}
		enters += c.enters
		exits += c.exits
	}
	if enters != n || exits != n {
		t.Fatalf("%d sys_enter and %d sys_exit, want %d each", enters, exits, n)
	}
	if sum.Lost != 0 {
		t.Errorf("snapshot reports %d lost events", sum.Lost)
	}
}

// With buffers too small for the calls, the snapshot keeps the newest ones:
// each CPU's window is contiguous, or its gaps are counted as lost.
func TestSmallBufferWindow(t *testing.T) {
	testkernel.Require(t)
	const n = 20000
	ch := startChild(t, n, 0)
	pid := ch.cmd.Process.Pid
	rec, err := Start(Config{Events: []string{"syscalls"}, BufferSize: 64 << 10, PIDs: []uint32{uint32(pid)}, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ch.run(t)
	path := filepath.Join(t.TempDir(), "small.rwd")
	if _, err := rec.Snapshot(path, snapshot.Trigger{Kind: snapshot.TriggerManual}); err != nil {
		t.Fatal(err)
	}
	calls, _, sum := readGetppid(t, path, pid)
	slots := int(SlotsFor(64 << 10))
	if len(calls) == 0 || len(calls) > slots {
		t.Fatalf("%d calls in a window of %d slots", len(calls), slots)
	}
	lo, hi := uint64(n), uint64(0)
	for i := range calls {
		lo, hi = min(lo, i), max(hi, i)
	}
	missing := int(hi-lo+1) - len(calls)
	var cpu0 *snapshot.CPUSummary
	for i := range sum.PerCPU {
		if sum.PerCPU[i].CPU == 0 {
			cpu0 = &sum.PerCPU[i]
		}
	}
	if cpu0 == nil {
		t.Fatalf("no window for CPU 0: %+v", sum.PerCPU)
	}
	t.Logf("calls %d..%d retained (%d missing), cpu 0 window %d..%d ns, %d events, %d lost", lo, hi, missing, cpu0.FirstTS, cpu0.LastTS, cpu0.Events, cpu0.Lost)
	if hi != n-1 {
		t.Errorf("newest retained call is %d, want %d", hi, n-1)
	}
	// Two events (enter and exit) per missing call must show up as lost.
	if missing > 0 && cpu0.Lost < uint64(missing) {
		t.Errorf("%d calls inside the window are missing but only %d events are counted lost", missing, cpu0.Lost)
	}
	if cpu0.LastTS <= cpu0.FirstTS {
		t.Errorf("cpu 0 window [%d, %d] is empty", cpu0.FirstTS, cpu0.LastTS)
	}
}

// A child that sleeps shows up switched out in state S, woken, switched
// back in by name; its fork, exec (with the full path, which spans several
// slots) and exit are recorded.
func TestSchedAndProcessEvents(t *testing.T) {
	testkernel.Require(t)
	rec, err := Start(Config{Events: []string{"sched", "process"}, BufferSize: 16 << 20, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	// A long path exercises multi-slot records.
	dir := filepath.Join(t.TempDir(), "a-rather-long-directory-name-for-the-exec-record", "and-another-level-of-it")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sleeper.test")
	if err := os.Link(os.Args[0], bin); err != nil {
		b, _ := os.ReadFile(os.Args[0])
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "REWIND_TEST_CHILD=sleep")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v %s", err, out)
	}
	pid := uint32(cmd.Process.Pid)
	path := filepath.Join(t.TempDir(), "sched.rwd")
	if _, err := rec.Snapshot(path, snapshot.Trigger{Kind: snapshot.TriggerManual}); err != nil {
		t.Fatal(err)
	}
	r := snaptest.Open(t, path)
	s := r.Schema()
	sw, wk := s.ByName("sched_switch"), s.ByName("sched_waking")
	fork, execE, exit := s.ByName("sched_process_fork"), s.ByName("sched_process_exec"), s.ByName("sched_process_exit")
	var sleeps, wakes, switchIns, forks, execs, exits int
	var c snapshot.Chunk
	for _, sec := range r.Chunks() {
		if err := r.ReadChunk(sec, &c); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < c.Len(); i++ {
			row := int(c.Row[i])
			col := func(e *schema.Event, f string) *snapshot.Column { return c.Column(e.ID, e.Field(f)) }
			switch c.Type[i] {
			case sw.ID:
				if c.TID[i] == pid && col(sw, "prev_state").Uint(row) == 1 && string(col(sw, "prev_comm").Bytes(row)) == "sleeper.test" {
					sleeps++
				}
				if uint32(col(sw, "next_tid").Uint(row)) == pid && string(col(sw, "next_comm").Bytes(row)) == "sleeper.test" {
					switchIns++
				}
			case wk.ID:
				if uint32(col(wk, "target_tid").Uint(row)) == pid && uint32(col(wk, "target_pid").Uint(row)) == pid {
					wakes++
				}
			case fork.ID:
				if uint32(col(fork, "child_pid").Uint(row)) == pid && c.PID[i] == uint32(os.Getpid()) {
					forks++
				}
			case execE.ID:
				if c.TID[i] == pid {
					if got := string(col(execE, "filename").Bytes(row)); got != bin {
						t.Errorf("exec filename %q, want %q", got, bin)
					}
					if uint32(col(execE, "old_tid").Uint(row)) != pid {
						t.Errorf("exec old_tid %d", col(execE, "old_tid").Uint(row))
					}
					execs++
				}
			case exit.ID:
				if c.TID[i] == pid {
					exits++
				}
			}
		}
	}
	t.Logf("sleeps %d wakes %d switch-ins %d forks %d execs %d exits %d", sleeps, wakes, switchIns, forks, execs, exits)
	if sleeps < 5 || wakes < 5 || switchIns < 5 {
		t.Errorf("want at least 5 sleeps in state S, wakeups and switch-ins of the child")
	}
	if forks != 1 || execs != 1 || exits != 1 {
		t.Errorf("want one fork, exec and exit of the child")
	}
}

func TestFreePath(t *testing.T) {
	dir := t.TempDir()
	name := FileName("host/with slash", time.Date(2026, 11, 21, 6, 30, 0, 123e6, time.UTC))
	if name != "rewind-host_with_slash-20261121T063000.123Z.rwd" {
		t.Fatalf("FileName = %q", name)
	}
	want := []string{name, "rewind-host_with_slash-20261121T063000.123Z-1.rwd", "rewind-host_with_slash-20261121T063000.123Z-2.rwd"}
	for _, w := range want {
		p := freePath(dir, name)
		if filepath.Base(p) != w {
			t.Fatalf("freePath = %s, want %s", filepath.Base(p), w)
		}
		os.WriteFile(p, nil, 0o644)
	}
}

// Snapshots taken back to back while one CPU records millions of events a
// second lose nothing: every window is complete, and each one starts at or
// before where the previous one ended, so no sequence number falls between.
// The ring (64 MiB, a million slots) holds more than is written between two
// snapshots; with a smaller one the writers would lap it between snapshots,
// which no snapshot can help.
func TestBackToBackSnapshotsLoseNothing(t *testing.T) {
	testkernel.Require(t)
	rec, err := Start(Config{Events: []string{"syscalls"}, BufferSize: 64 << 20, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "REWIND_TEST_CHILD=spin")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	dir := t.TempDir()
	var prev *ringbuf.Window
	start := time.Now()
	var first uint64
	for i := 0; i < 10; i++ {
		res, err := rec.SnapshotTo(dir, snapshot.Trigger{Kind: snapshot.TriggerManual})
		if err != nil {
			t.Fatal(err)
		}
		w := res.Windows[0]
		if i == 0 {
			first = w.Next
		}
		t.Logf("snapshot %d: cpu 0 %v; read %v, total %v", i, w, res.ReadTime, res.Total)
		if w.Lost != 0 {
			t.Errorf("snapshot %d lost %d events on cpu 0", i, w.Lost)
		}
		if prev != nil && w.First > prev.Next {
			t.Errorf("snapshot %d starts at seq %d, after the previous one ended at %d: %d events fell between", i, w.First, prev.Next, w.First-prev.Next)
		}
		if w.Next-w.First < rec.ring.SlotsPerCPU() && w.First > 0 {
			t.Errorf("snapshot %d holds %d slots of a full ring of %d", i, w.Next-w.First, rec.ring.SlotsPerCPU())
		}
		prev = w
	}
	rate := float64(prev.Next-first) / time.Since(start).Seconds()
	t.Logf("cpu 0 recorded %.2f M events/s during the snapshots", rate/1e6)
	if rate < 1e6 {
		t.Logf("the workload reached only %.2f M events/s; the test is weaker than intended", rate/1e6)
	}
}

// The compressed tier and the kernel tier meet without a gap or a
// duplicate: every call appears once, though the calls fill the kernel ring
// several times over.
func TestHistoryTierSeam(t *testing.T) {
	testkernel.Require(t)
	const n = 150000
	ch := startChild(t, n, 0)
	pid := ch.cmd.Process.Pid
	rec, err := Start(Config{Events: []string{"syscalls"}, BufferSize: 4 << 20, PIDs: []uint32{uint32(pid)},
		HistoryBytes: 64 << 20, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ch.run(t)
	path := filepath.Join(t.TempDir(), "seam.rwd")
	res, err := rec.Snapshot(path, snapshot.Trigger{Kind: snapshot.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := rec.History()
	t.Logf("snapshot: %d events, %d lost; tier %+v", res.Events, res.Lost, h)
	calls, _, sum := readGetppid(t, path, pid)
	for i := uint64(0); i < n; i++ {
		if c := calls[i]; c == nil || c.enters != 1 {
			t.Fatalf("call %d recorded %+v, want once", i, c)
		}
	}
	if sum.Lost != 0 || res.Events < 2*n || h.Drained == 0 {
		t.Fatalf("lost %d, %d events, %d drained", sum.Lost, res.Events, h.Drained)
	}
}

// Over its budget, or its age limit, the tier drops its oldest blocks: what
// remains is the newest history, contiguous.
func TestHistoryTierEvicts(t *testing.T) {
	testkernel.Require(t)
	for _, c := range []struct {
		name  string
		bytes uint64
		age   time.Duration
	}{{"budget", 128 << 10, 0}, {"age", 0, 20 * time.Millisecond}} {
		t.Run(c.name, func(t *testing.T) {
			const n = 150000
			ch := startChild(t, n, 0)
			pid := ch.cmd.Process.Pid
			rec, err := Start(Config{Events: []string{"syscalls"}, BufferSize: 4 << 20, PIDs: []uint32{uint32(pid)},
				HistoryBytes: c.bytes, HistoryAge: c.age, Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			defer rec.Close()
			ch.run(t)
			path := filepath.Join(t.TempDir(), "evict.rwd")
			if _, err := rec.Snapshot(path, snapshot.Trigger{Kind: snapshot.TriggerManual}); err != nil {
				t.Fatal(err)
			}
			h, _ := rec.History()
			calls, _, sum := readGetppid(t, path, pid)
			lo := uint64(n)
			for i := range calls {
				lo = min(lo, i)
			}
			t.Logf("%s: calls %d..%d kept, tier %+v", c.name, lo, n-1, h)
			if h.Evicted.Events == 0 || lo == 0 {
				t.Fatalf("nothing evicted: tier %+v, oldest call %d", h, lo)
			}
			for i := lo; i < n; i++ {
				if c := calls[i]; c == nil || c.enters != 1 {
					t.Fatalf("call %d in the kept range recorded %+v, want once", i, c)
				}
			}
			if sum.Lost != 0 {
				t.Fatalf("%d lost", sum.Lost)
			}
		})
	}
}

// 3 s of recording at 100 Hz hold 300 ± 3 samples of every counter series,
// and the sampler reports what it cannot read and what it cost.
func TestCounterSamples(t *testing.T) {
	testkernel.Require(t)
	rec, err := Start(Config{Events: []string{"sched_switch"}, BufferSize: 1 << 20, Counters: []string{"all"}, CounterRate: 100, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	time.Sleep(3 * time.Second)
	path := filepath.Join(t.TempDir(), "counters.rwd")
	res, err := rec.Snapshot(path, snapshot.Trigger{Kind: snapshot.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	r := snaptest.Open(t, path)
	secs := r.SeriesSections()
	if len(secs) < len(rec.Counters().Sources()) {
		t.Fatalf("%d series for %d sources", len(secs), len(rec.Counters().Sources()))
	}
	var samples uint64
	for _, sec := range secs {
		s, err := r.ReadSeries(sec)
		if err != nil {
			t.Fatal(err)
		}
		samples += uint64(len(s.TS))
		if n := len(s.TS); n < 297 || n > 303 {
			t.Errorf("%s: %d samples in 3 s at 100 Hz", s.Source, n)
		}
		if s.Missed > 3 {
			t.Errorf("%s: %d samples missed", s.Source, s.Missed)
		}
	}
	if samples != res.Samples {
		t.Errorf("snapshot says %d samples, the file holds %d", res.Samples, samples)
	}
	c := r.Meta().Recording.Counters
	if c == nil || c.SamplerCPUNS == 0 || c.Sources["cpu"] != 100 || c.KeepNS != uint64(counters.DefaultKeep) {
		t.Fatalf("meta: %+v", c)
	}
	for _, hw := range []string{"perf cycles", "perf instructions"} {
		if _, hasPMU := c.Unavailable[hw]; !hasPMU {
			t.Logf("%s counted here: this machine has a PMU", hw)
		}
	}
	t.Logf("%d series, %d samples; sampler CPU %v over ~3 s; unavailable: %v", len(secs), samples, time.Duration(c.SamplerCPUNS), c.Unavailable)
}

// niceValues reads the process's autogroup nice value and each thread's.
func niceValues(t *testing.T) (autogroup string, threads map[string]string) {
	t.Helper()
	if b, err := os.ReadFile("/proc/self/autogroup"); err == nil {
		autogroup = string(b)
	}
	threads = map[string]string{}
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		s := string(b)
		fs := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		threads[e.Name()] = fs[19-3] // nice
	}
	return autogroup, threads
}

// TestSnapshotRestoresPriorities: a snapshot raises its threads' and its
// autogroup's priority while it works, and puts both back.
func TestSnapshotRestoresPriorities(t *testing.T) {
	testkernel.Require(t)
	rec, err := Start(Config{Events: []string{"sched_switch"}, BufferSize: 1 << 20, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	group, threads := niceValues(t)
	if _, err := rec.SnapshotTo(t.TempDir(), snapshot.Trigger{Kind: snapshot.TriggerManual}); err != nil {
		t.Fatal(err)
	}
	group2, threads2 := niceValues(t)
	if group2 != group {
		t.Errorf("autogroup %q after the snapshot, %q before", group2, group)
	}
	for tid, n := range threads2 {
		if was, ok := threads[tid]; (ok && n != was) || (!ok && n != "0") {
			t.Errorf("thread %s: nice %s after the snapshot, %q before", tid, n, was)
		}
	}
}
