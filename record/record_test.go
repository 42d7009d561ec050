package record

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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
// REWIND_TEST_COMPAT=1 runs every test on the BPF object built for kernels
// without fetching atomics; REWIND_TEST_BTF=FILE on the raw tracepoint
// programs for kernels without BTF, with the kernel's types from FILE.
func TestMain(m *testing.M) {
	switch os.Getenv("REWIND_TEST_CHILD") {
	case "":
		compatForTests = os.Getenv("REWIND_TEST_COMPAT") == "1"
		btfForTests = os.Getenv("REWIND_TEST_BTF")
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

// manual is the trigger of the tests' snapshots.
var manual = snapshot.Trigger{Kind: snapshot.TriggerManual}

// snap takes a snapshot into path, failing the test if it cannot.
func snap(t testing.TB, rec *Recorder, path string) *Result {
	t.Helper()
	res, err := rec.Snapshot(context.Background(), SnapshotRequest{Path: path, Trigger: manual})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// call is one getppid the child made, as recorded.
type call struct {
	enters, exits int
}

// readGetppid reads a snapshot and returns, by call number, what was
// recorded of the child's getppid calls, and the file's summary.
func readGetppid(t *testing.T, path string, pid int) (map[uint64]*call, *snapshot.Reader, *snapshot.Summary) {
	t.Helper()
	return getppidCalls(t, snaptest.Open(t, path), pid)
}

// getppidCalls is readGetppid on an open snapshot.
func getppidCalls(t testing.TB, r *snapshot.Reader, pid int) (map[uint64]*call, *snapshot.Reader, *snapshot.Summary) {
	t.Helper()
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
	res := snap(t, rec, path)
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
	snap(t, rec, path)
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
	snap(t, rec, path)
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

// Snapshots taken while a CPU records lose nothing: a child pinned to CPU 0
// makes its calls in steps, each while a snapshot reads the rings. The
// ring holds more than two steps write, so whatever the speed of the
// machine, every snapshot's window is whole and starts at or before where
// the previous one ended; together they hold every call, each once.
func TestSnapshotsWhileRecordingLoseNothing(t *testing.T) {
	testkernel.Require(t)
	const steps, k = 10, 2000 // 4000 events a step
	ch := startStepper(t, 0)
	rec, err := Start(Config{Events: []string{"syscalls"}, BufferSize: 1 << 20, PIDs: []uint32{uint32(ch.Pid())}, Counters: []string{"none"}, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	if slots := int(rec.BufferBytes() / ringbuf.SlotSize); 2*2*k >= slots {
		t.Fatalf("two steps write %d events, more than a ring of %d slots", 4*k, slots)
	}
	dir := t.TempDir()
	seen := map[uint64]int{}
	var prev *ringbuf.Window
	for i := 0; i < steps; i++ {
		done := make(chan *Result, 1)
		go func() {
			res, err := rec.Snapshot(context.Background(), SnapshotRequest{Dir: dir, Trigger: manual})
			if err != nil {
				t.Error(err)
			}
			done <- res
		}()
		ch.step(t, k)
		res := <-done
		if res == nil {
			t.FailNow()
		}
		w := res.Windows[0]
		t.Logf("snapshot %d: cpu 0 %v; read %v, total %v", i, w, res.ReadTime, res.Total)
		if w.Lost != 0 || res.Lost != 0 {
			t.Errorf("snapshot %d lost %d events on cpu 0, %d in all", i, w.Lost, res.Lost)
		}
		if prev != nil && w.First > prev.Next {
			t.Errorf("snapshot %d starts at seq %d, after the previous one ended at %d: %d events fell between", i, w.First, prev.Next, w.First-prev.Next)
		}
		prev = w
		calls, _, _ := readGetppid(t, res.Path, ch.Pid())
		for n, c := range calls {
			if c.enters != 1 {
				t.Fatalf("snapshot %d: call %d recorded %d times", i, n, c.enters)
			}
			seen[n]++
		}
	}
	// Whatever the last snapshot missed of the last step, one more has.
	calls, _, _ := readGetppid(t, snap(t, rec, filepath.Join(dir, "last.rwd")).Path, ch.Pid())
	for n := range calls {
		seen[n]++
	}
	for n := uint64(0); n < steps*k; n++ {
		if seen[n] == 0 {
			t.Fatalf("call %d is in no snapshot", n)
		}
	}
}

// The compressed tier and the kernel tier meet without a gap or a
// duplicate: every call appears once, though the calls fill the kernel ring
// several times over. The child makes them in steps of less than a ring,
// and the test drains the tier between steps, so no drain can fall behind.
func TestHistoryTierSeam(t *testing.T) {
	testkernel.Require(t)
	const steps, k = 15, 10000 // 20000 events a step, in a ring of 65536 slots
	ch := startStepper(t, 0)
	pid := ch.Pid()
	rec, err := Start(Config{Events: []string{"syscalls"}, BufferSize: 4 << 20, PIDs: []uint32{uint32(pid)},
		HistoryBytes: 64 << 20, Counters: []string{"none"}, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	for i := 0; i < steps; i++ {
		ch.step(t, k)
		if err := rec.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "seam.rwd")
	res := snap(t, rec, path)
	st, err := rec.Stats()
	if err != nil {
		t.Fatal(err)
	}
	h := st.History
	t.Logf("snapshot: %d events, %d lost; tier %+v", res.Events, res.Lost, h)
	calls, _, sum := readGetppid(t, path, pid)
	for i := uint64(0); i < steps*k; i++ {
		if c := calls[i]; c == nil || c.enters != 1 || c.exits != 1 {
			t.Fatalf("call %d recorded %+v, want once", i, c)
		}
	}
	if sum.Lost != 0 || h.Lost != 0 || res.Events < 2*steps*k || h.Drained < 2*(steps-1)*k {
		t.Fatalf("lost %d (tier %d), %d events, %d drained", sum.Lost, h.Lost, res.Events, h.Drained)
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
			const steps, k = 15, 10000
			ch := startStepper(t, 0)
			pid := ch.Pid()
			rec, err := Start(Config{Events: []string{"syscalls"}, BufferSize: 4 << 20, PIDs: []uint32{uint32(pid)},
				HistoryBytes: c.bytes, HistoryAge: c.age, Counters: []string{"none"}, Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			defer rec.Close()
			for i := 0; i < steps; i++ {
				ch.step(t, k)
				if err := rec.Drain(context.Background()); err != nil {
					t.Fatal(err)
				}
				// Blocks drained before this sleep are older than the age
				// limit at the next drain.
				time.Sleep(2 * c.age)
			}
			path := filepath.Join(t.TempDir(), "evict.rwd")
			snap(t, rec, path)
			st, err := rec.Stats()
			if err != nil {
				t.Fatal(err)
			}
			h := st.History
			calls, _, sum := readGetppid(t, path, pid)
			lo := uint64(steps * k)
			for i := range calls {
				lo = min(lo, i)
			}
			t.Logf("%s: calls %d..%d kept, tier %+v", c.name, lo, steps*k-1, h)
			if h.Evicted.Events == 0 || lo == 0 {
				t.Fatalf("nothing evicted: tier %+v, oldest call %d", h, lo)
			}
			for i := lo; i < steps*k; i++ {
				if c := calls[i]; c == nil || c.enters != 1 {
					t.Fatalf("call %d in the kept range recorded %+v, want once", i, c)
				}
			}
			if sum.Lost != 0 || h.Lost != 0 {
				t.Fatalf("%d lost, tier %d", sum.Lost, h.Lost)
			}
		})
	}
}

// Every counter series is sampled at its rate: its samples and the ones
// the sampler reports missed add up to the periods its span covers, and the
// snapshot says how many it wrote. A busy machine misses more samples; it
// cannot hide them.
func TestCounterSamples(t *testing.T) {
	testkernel.Require(t)
	rec, err := Start(Config{Events: []string{"sched_switch"}, BufferSize: 1 << 20, Counters: []string{"all"}, CounterRate: 100, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	time.Sleep(time.Second)
	path := filepath.Join(t.TempDir(), "counters.rwd")
	res := snap(t, rec, path)
	st, err := rec.Stats()
	if err != nil {
		t.Fatal(err)
	}
	r := snaptest.Open(t, path)
	secs := r.SeriesSections()
	if len(secs) < len(st.Counters.Sources) {
		t.Fatalf("%d series for %d sources", len(secs), len(st.Counters.Sources))
	}
	var samples uint64
	for _, sec := range secs {
		s, err := r.ReadSeries(sec)
		if err != nil {
			t.Fatal(err)
		}
		n := len(s.TS)
		samples += uint64(n)
		if n < 2 {
			t.Errorf("%s: %d samples", s.Source, n)
			continue
		}
		// A sample is taken within a period of when it is due, or skipped
		// and counted: the span holds between one fewer and one more
		// periods than were sampled or missed.
		periods := float64(s.TS[n-1]-s.TS[0]) / 1e7
		if got := float64(n-1) + float64(s.Missed); got < periods-1 || got > periods+1 {
			t.Errorf("%s: %d samples and %d missed over %.1f periods of 10 ms", s.Source, n, s.Missed, periods)
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
	t.Logf("%d series, %d samples; sampler CPU %v; unavailable: %v", len(secs), samples, time.Duration(c.SamplerCPUNS), c.Unavailable)
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
	if _, err := rec.Snapshot(context.Background(), SnapshotRequest{Dir: t.TempDir(), Trigger: manual}); err != nil {
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
