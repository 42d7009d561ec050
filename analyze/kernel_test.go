package analyze

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/analyze/hist"
	"github.com/rewindtrace/rewind/internal/testchild"
	"github.com/rewindtrace/rewind/internal/testkernel"
	"github.com/rewindtrace/rewind/record"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/snaptest"
)

// The test binary doubles as the workload: REWIND_TEST_CHILD selects what
// the child does. A child locks its main thread, prints that thread's id,
// waits for a byte on stdin, runs, and prints what it measured.
func TestMain(m *testing.M) {
	mode := os.Getenv("REWIND_TEST_CHILD")
	if mode == "" {
		os.Exit(m.Run())
	}
	if err := testchild.Pin(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(unix.Gettid())
	var b [1]byte
	os.Stdin.Read(b[:])
	if err := childMain(mode, os.Args[len(os.Args)-1]); err != nil {
		fmt.Fprintln(os.Stderr, mode+":", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func childMain(mode, arg string) error {
	switch mode {
	case "nanosleep":
		ts := unix.Timespec{Nsec: 2e6}
		for i := 0; i < 200; i++ {
			if err := unix.Nanosleep(&ts, nil); err != nil {
				return err
			}
		}
	case "odirect":
		return directReads(arg)
	case "tick":
		return tick()
	case "hog":
		for {
		}
	case "profiled":
		spinKnownFunction(1500 * time.Millisecond)
		fmt.Println(1)
		var b [1]byte
		os.Stdin.Read(b[:]) // alive until the test has its snapshot
	case "burst":
		// Idle, 200 ms of CPU, idle again.
		time.Sleep(2 * time.Second)
		for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
		}
		time.Sleep(2500 * time.Millisecond)
	default:
		return fmt.Errorf("unknown child mode")
	}
	return nil
}

// directReads reads dev with O_DIRECT: 4 KiB and 64 KiB at a time, 32 of
// each, alternating.
func directReads(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	buf, err := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	for i := 0; i < 32; i++ {
		if _, err := unix.Pread(fd, buf[:4<<10], int64(i)*128<<10); err != nil {
			return err
		}
		if _, err := unix.Pread(fd, buf, int64(i)*128<<10+64<<10); err != nil {
			return err
		}
	}
	return nil
}

// spinKnownFunction burns CPU in a function with a name to look for in the
// stack samples.
//
//go:noinline
func spinKnownFunction(d time.Duration) uint64 {
	var x uint64
	for end := time.Now().Add(d); ; {
		for i := 0; i < 1e6; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if time.Now().After(end) {
			return x
		}
	}
}

// tick wakes every millisecond on an absolute timer, as cyclictest does,
// and prints the 99th percentile of how late it ran after each timer's due
// time. Without work, a woken task on this kernel (EEVDF) preempts a hog
// at once nearly every time and the p99 sits on the edge of a tail of ~1%
// of wakeups; 100 µs of work per wakeup spends its lag, so that hogs delay
// a steady share of wakeups.
func tick() error {
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0); err != nil {
		return err
	}
	const n, work = 1000, 100e3
	delays := make([]int64, 0, n)
	var now unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	due := now.Nano()
	for i := 0; i < n; i++ {
		due += 1e6
		ts := unix.NsecToTimespec(due)
		for {
			_, _, e := unix.Syscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME,
				uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
			if e == 0 {
				break
			}
			if e != unix.EINTR {
				return e
			}
		}
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
		delays = append(delays, now.Nano()-due)
		// Each wakeup does 100 µs of work, as a control loop would.
		for start := now.Nano(); now.Nano()-start < work; {
			unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
		}
		// Periods already past are skipped, not run late back to back:
		// each delay is then one wakeup's.
		for due+1e6 <= now.Nano() {
			due += 1e6
		}
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	fmt.Println(delays[n*99/100])
	return nil
}

// startKid starts a paused child in mode, pinned to cpu unless it is -1,
// and reads its thread id.
func startKid(t *testing.T, mode string, cpu int, arg string) (*testchild.Child, uint32) {
	t.Helper()
	var env []string
	if cpu >= 0 {
		env = append(env, testchild.PinEnv+"="+strconv.Itoa(cpu))
	}
	c := testchild.Start(t, mode, env, arg)
	return c, uint32(c.Int(t))
}

// recordWhile records events while fn runs and returns the snapshot.
func recordWhile(t *testing.T, events []string, fn func()) *snapshot.Reader {
	t.Helper()
	return recordConfig(t, record.Config{Events: events, Counters: []string{"none"}}, fn)
}

func recordConfig(t *testing.T, cfg record.Config, fn func()) *snapshot.Reader {
	t.Helper()
	cfg.BufferSize, cfg.Version = 16<<20, "test"
	rec, err := record.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	fn()
	path := filepath.Join(t.TempDir(), "k.rwd")
	if _, err := rec.Snapshot(path, snapshot.Trigger{Kind: snapshot.TriggerManual}); err != nil {
		t.Fatal(err)
	}
	return snaptest.Open(t, path)
}

func tidOptions(only string, tid uint32) Options {
	return Options{Only: []string{only}, TIDs: []uint32{tid}}
}

// Sleeping 2 ms 200 times shows as 200 nanosleeps of 2 ms and a little.
func TestNanosleepLatency(t *testing.T) {
	testkernel.Require(t)
	k, tid := startKid(t, "nanosleep", -1, "")
	r := recordWhile(t, []string{"syscalls"}, func() {
		k.Go(t)
		k.Wait(t, time.Minute)
	})
	res, err := Run(r, tidOptions(SyscallLatency, tid))
	if err != nil {
		t.Fatal(err)
	}
	s := only(t, res, SyscallLatency, Label{"by", "syscall"}, Label{"syscall", "nanosleep"})
	p50 := s.Hist.Quantile(0.5)
	t.Logf("nanosleep: %d calls, p50 %d ns, min %d, max %d", s.Hist.Count(), p50, s.Hist.Min(), s.Hist.Max())
	if s.Hist.Count() < 200 {
		t.Errorf("%d nanosleep calls, want at least 200", s.Hist.Count())
	}
	if p50 < 2.0e6 || p50 > 2.5e6 {
		t.Errorf("nanosleep p50 %d ns, want 2.0 to 2.5 ms", p50)
	}
}

// loopDevice attaches a sparse file to a free loop device that detaches
// itself when the last descriptor closes, so no path leaves it behind.
func loopDevice(t *testing.T, size int64) (string, uint32) {
	t.Helper()
	back, err := os.Create(filepath.Join(t.TempDir(), "loop.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if err := back.Truncate(size); err != nil {
		t.Fatal(err)
	}
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("loop devices: %v", err)
	}
	defer ctl.Close()
	for try := 0; try < 8; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			t.Fatalf("LOOP_CTL_GET_FREE: %v", err)
		}
		path := fmt.Sprintf("/dev/loop%d", n)
		dev, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		cfg := unix.LoopConfig{Fd: uint32(back.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		if err := unix.IoctlLoopConfigure(int(dev.Fd()), &cfg); err != nil {
			dev.Close()
			if err == unix.EBUSY {
				continue // taken between the two calls
			}
			t.Fatalf("LOOP_CONFIGURE %s: %v", path, err)
		}
		t.Cleanup(func() { dev.Close() })
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return path, unix.Major(st.Rdev)<<20 | unix.Minor(st.Rdev)
	}
	t.Fatal("no free loop device")
	return "", 0
}

// O_DIRECT reads of 4 KiB and 64 KiB put bio_size mass at exactly those
// sizes.
func TestBioSizeDirectReads(t *testing.T) {
	testkernel.Require(t)
	path, dev := loopDevice(t, 8<<20)
	k, _ := startKid(t, "odirect", -1, path)
	r := recordWhile(t, []string{"block"}, func() {
		k.Go(t)
		k.Wait(t, time.Minute)
	})
	res, err := Run(r, Options{Only: []string{BioSize, BioLatency}})
	if err != nil {
		t.Fatal(err)
	}
	s := only(t, res, BioSize, Label{"dev", devName(dev)}, Label{"op", "R"})
	var got []string
	for _, b := range s.Hist.Buckets() {
		got = append(got, fmt.Sprintf("[%d,%d]:%d", b.Lo, b.Hi, b.Count))
	}
	t.Logf("bio_size on %s (%s): %s", path, devName(dev), strings.Join(got, " "))
	// bio_size counts sizes exactly while they are few: two buckets of
	// one size each.
	b := s.Hist.Buckets()
	if len(b) != 2 || b[0] != (hist.Bucket{Lo: 4096, Hi: 4096, Count: 32}) || b[1] != (hist.Bucket{Lo: 65536, Hi: 65536, Count: 32}) {
		t.Errorf("bio_size buckets %v, want 32 reads of exactly 4096 and 32 of exactly 65536 bytes", b)
	}
	if p := s.Hist.Quantile(0.5); p != 4096 {
		t.Errorf("bio_size p50 %d, want 4096", p)
	}
	if l := res.Find(BioLatency, Label{"by", "device"}, Label{"dev", devName(dev)}, Label{"op", "R"}); l == nil || l.Hist.Count() != 64 {
		t.Errorf("bio_latency on the loop device: %v, want 64 requests", l)
	}
}

// A task that wakes every millisecond waits in the run queue far longer
// when two CPU hogs share its CPU; that wait is most of the delay it
// measures itself, and never more than it.
func TestRunqLatencyUnderContention(t *testing.T) {
	testkernel.Require(t)
	cpu := runtime.NumCPU() - 1
	measure := func(hogs int) (runqP99, delayP99 uint64) {
		for i := 0; i < hogs; i++ {
			h, _ := startKid(t, "hog", cpu, "")
			h.Go(t)
		}
		k, tid := startKid(t, "tick", cpu, "")
		var out []byte
		r := recordWhile(t, []string{"sched"}, func() {
			k.Go(t)
			out = k.Wait(t, time.Minute)
		})
		d, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
		if err != nil {
			t.Fatalf("tick child said %q", out)
		}
		res, err := Run(r, tidOptions(RunqLatency, tid))
		if err != nil {
			t.Fatal(err)
		}
		s := only(t, res, RunqLatency, Label{"by", "all"})
		t.Logf("%d hogs: %d wakeups, runq p50 %d p99 %d max %d ns; delay p99 %d ns",
			hogs, s.Hist.Count(), s.Hist.Quantile(0.5), s.Hist.Quantile(0.99), s.Hist.Max(), d)
		if s.Hist.Count() < 500 {
			t.Errorf("%d run-queue waits of 1000 wakeups recorded", s.Hist.Count())
		}
		return s.Hist.Quantile(0.99), d
	}
	idle, _ := measure(0)
	busy, delay := measure(2)
	if busy < 10*idle {
		t.Errorf("runq p99 %d ns with hogs, %d ns without: want at least 10×", busy, idle)
	}
	// The runq p99 is an estimate within the histogram's relative error;
	// the child's own p99 is exact.
	slack := 1 + hist.DefaultError
	if float64(busy) < float64(delay)/2/slack || float64(busy) > float64(delay)*slack {
		t.Errorf("runq p99 %d ns with hogs, outside [½, 1] × the task's own delay p99 %d ns", busy, delay)
	}
}

// A 200 ms burst of CPU inside 5 s of idle: sampled every 10 ms, the CPU's
// busy time shows the burst (a 10 ms interval above 90%) that its 5 s
// average (under 15%) hides. The oversampling argument, demonstrated.
func TestCounterBurst(t *testing.T) {
	testkernel.Require(t)
	cpu := runtime.NumCPU() - 1
	k, _ := startKid(t, "burst", cpu, "")
	r := recordConfig(t, record.Config{Events: []string{"sched_switch"}, Counters: []string{"cpu"}, CounterRate: 100}, func() {
		k.Go(t)
		k.Wait(t, time.Minute)
	})
	res, err := Run(r, Options{Only: []string{CounterRates}})
	if err != nil {
		t.Fatal(err)
	}
	var busy *Rates
	for i := range res.Rates {
		if x := &res.Rates[i]; x.Name == "busy" && x.Labels.Get("cpu") == strconv.Itoa(cpu) {
			busy = x
		}
	}
	if busy == nil {
		t.Fatalf("no busy{cpu=%d} rate in %d rates", cpu, len(res.Rates))
	}
	max, mean := busy.Max/1e9, busy.Mean/1e9
	t.Logf("cpu %d busy over %d intervals: max %.0f%% of an interval, mean %.1f%%", cpu, busy.Intervals, max*100, mean*100)
	if max <= 0.9 || mean >= 0.15 {
		t.Errorf("busy max %.0f%%, mean %.1f%%: want a max above 90%% and a mean below 15%%", max*100, mean*100)
	}
	if busy.Intervals < 450 {
		t.Errorf("%d intervals in about 4.7 s at 100 Hz", busy.Intervals)
	}
}

// A process spinning in a known function: most of its CPU samples are
// named after it, from the executable's symbol table, offline.
func TestProfileNamesFunctions(t *testing.T) {
	testkernel.Require(t)
	k, _ := startKid(t, "profiled", -1, "")
	r := recordConfig(t, record.Config{Events: []string{"sched_switch"}, Counters: []string{"none"}, Stacks: 99}, func() {
		k.Go(t)
		k.Int(t) // it spun, and waits for the snapshot
	})
	pid := uint32(k.Pid())
	res, err := Run(r, Options{Only: []string{StackProfile}, PIDs: []uint32{pid}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Profiles) != 1 || res.Profiles[0].Event != "cpu_sample" {
		t.Fatalf("profiles: %+v", res.Profiles)
	}
	p := res.Profiles[0]
	const want = "github.com/rewindtrace/rewind/analyze.spinKnownFunction"
	var self int
	for _, f := range p.Functions {
		if f.Name == want {
			self = f.Self
		}
	}
	top := ""
	if len(p.Functions) > 0 {
		top = p.Functions[0].Name
	}
	t.Logf("%d samples of pid %d; %d in %s; top function %s", p.Samples, pid, self, want, top)
	if p.Samples < 100 || self*2 <= p.Samples {
		t.Errorf("%d of %d samples in %s (top: %s); want most, of at least 100", self, p.Samples, want, top)
	}
}
