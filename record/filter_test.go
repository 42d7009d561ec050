package record

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/internal/testchild"
	"github.com/rewindtrace/rewind/internal/testkernel"
)

// busyMain works on one thread, named REWIND_TEST_NAME when set: it prints
// that thread's id, waits for stdin to close, then makes getppid calls
// numbered from REWIND_TEST_FROM (when set) and sleeps, for 200 ms.
func busyMain() {
	runtime.LockOSThread()
	if name := os.Getenv("REWIND_TEST_NAME"); name != "" {
		b := append([]byte(name), 0)
		unix.Syscall(unix.SYS_PRCTL, unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0)
	}
	fmt.Println(unix.Gettid())
	var b [1]byte
	os.Stdin.Read(b[:])
	stop := time.Now().Add(200 * time.Millisecond)
	ts := unix.Timespec{Nsec: 1e6}
	for n := 0; time.Now().Before(stop); {
		for i := 0; i < 100; i++ {
			syscall.RawSyscall(syscall.SYS_GETPPID, uintptr(n), 0, 0)
			n++
		}
		unix.Nanosleep(&ts, nil)
	}
}

// stepMain makes getppid calls numbered 0.. in steps: it reads a line
// holding how many calls to make (100 when it holds no number), makes them
// on one thread, pinned where testchild.PinEnv says, and prints the number
// of the next call, until stdin closes.
func stepMain() {
	if err := testchild.Pin(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sc := bufio.NewScanner(os.Stdin)
	n := 0
	for sc.Scan() {
		k, err := strconv.Atoi(sc.Text())
		if err != nil {
			k = 100
		}
		for i := 0; i < k; i++ {
			syscall.RawSyscall(syscall.SYS_GETPPID, uintptr(n), 0, 0)
			n++
		}
		fmt.Println(n)
	}
}

// stepper drives a stepMain child.
type stepper struct {
	*testchild.Child
	next int // number of the next call
}

// startStepper starts a stepped child pinned to cpu (-1: anywhere).
func startStepper(t *testing.T, cpu int) *stepper {
	t.Helper()
	var env []string
	if cpu >= 0 {
		env = append(env, testchild.PinEnv+"="+strconv.Itoa(cpu))
	}
	return &stepper{Child: testchild.Start(t, "step", env)}
}

// step makes the child call getppid k times and waits until it has.
func (s *stepper) step(t testing.TB, k int) {
	t.Helper()
	if _, err := fmt.Fprintln(s.Stdin, k); err != nil {
		t.Fatal(err)
	}
	s.next += k
	if n := s.Int(t); n != int64(s.next) {
		t.Fatalf("child made calls up to %d, want %d", n, s.next)
	}
}

type busy struct {
	cmd   *exec.Cmd
	stdin interface{ Close() error }
	tid   uint64
}

func startBusy(t *testing.T, name string) *busy {
	t.Helper()
	c := testchild.Start(t, "busy", []string{"REWIND_TEST_NAME=" + name})
	return &busy{cmd: c.Cmd, stdin: c.Stdin, tid: uint64(c.Int(t))}
}

// v2Cgroup makes a cgroup v2 directory for the test and removes it after.
func v2Cgroup(t *testing.T) string {
	mnt, err := sysx.Cgroup2Mount()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, fmt.Sprintf("rewind-test-%d", os.Getpid()))
	mkCgroup(t, dir)
	return dir
}

// A filtered recording holds only the matching task's events, and the
// scheduling events whose other side is that task.
func TestFilters(t *testing.T) {
	testkernel.Require(t)
	for _, kind := range []string{"pid", "comm", "cgroup"} {
		t.Run(kind, func(t *testing.T) {
			keep, drop := startBusy(t, "rw-keep"), startBusy(t, "rw-drop")
			keepPID := uint64(keep.cmd.Process.Pid)
			cfg := Config{Events: []string{"all"}, BufferSize: 16 << 20, Version: "test"}
			// mine says whether a task, by tid and process id (0: unknown)
			// or name, is the one the filter keeps.
			var mine func(tid, pid uint64, comm string) bool
			switch kind {
			case "pid":
				cfg.PIDs = []uint32{uint32(keepPID)}
				mine = func(tid, pid uint64, _ string) bool { return pid == keepPID || tid == keepPID || tid == keep.tid }
			case "comm":
				cfg.Comms = []string{"rw-keep"}
				mine = func(tid, _ uint64, comm string) bool { return tid == keep.tid || comm == "rw-keep" }
			case "cgroup":
				dir := v2Cgroup(t)
				if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.FormatUint(keepPID, 10)), 0); err != nil {
					t.Fatal(err)
				}
				cfg.Cgroups = []string{filepath.Base(dir)} // relative to the cgroup2 mount
				mine = func(tid, pid uint64, _ string) bool { return pid == keepPID || tid == keep.tid }
			}
			rec, err := Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer rec.Close()
			keep.stdin.Close()
			drop.stdin.Close()
			if err := keep.cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			if err := drop.cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "filtered.rwd")
			if _, err := rec.Snapshot(context.Background(), SnapshotRequest{Path: path, Trigger: manual}); err != nil {
				t.Fatal(err)
			}
			rows, meta := readRows(t, path)
			// The kept process's threads, as its own events name them.
			threads := map[uint64]bool{keep.tid: true}
			for _, rs := range rows {
				for _, r := range rs {
					if r.u("pid") == keepPID {
						threads[r.u("tid")] = true
					}
				}
			}
			if kind != "comm" {
				inner := mine
				mine = func(tid, pid uint64, comm string) bool { return threads[tid] || inner(tid, pid, comm) }
			}
			if f := meta.Recording.Filter; len(f.PIDs)+len(f.Comms)+len(f.Cgroups) != 1 {
				t.Errorf("snapshot records filter %+v", f)
			}
			ownCalls, total := 0, 0
			for name, rs := range rows {
				for _, r := range rs {
					total++
					current := mine(r.u("tid"), r.u("pid"), "")
					other := mine(r.u("next_tid"), 0, r.s("next_comm")) && r["next_tid"] != nil ||
						mine(r.u("target_tid"), r.u("target_pid"), r.s("target_comm")) && r["target_tid"] != nil ||
						mine(r.u("child_tid"), r.u("child_pid"), r.s("child_comm")) && r["child_tid"] != nil
					if !current && !other {
						t.Errorf("%s: %s event of tid %d pid %d is not the kept task's: %v", kind, name, r.u("tid"), r.u("pid"), r)
						return
					}
					if name == "sys_enter" && r.u("tid") == keep.tid && r.i("id") == syscall.SYS_GETPPID {
						ownCalls++
					}
					if r.u("pid") == uint64(drop.cmd.Process.Pid) && !other {
						t.Errorf("%s: event of the dropped task: %v", kind, r)
					}
				}
			}
			t.Logf("%s filter: %d events, %d getppid calls of the kept task", kind, total, ownCalls)
			if ownCalls < 100 {
				t.Errorf("%s: only %d getppid calls of the kept task recorded", kind, ownCalls)
			}
		})
	}
}

// Events and filters change while recording goes on, without reloading.
func TestRuntimeChanges(t *testing.T) {
	testkernel.Require(t)
	ch := startStepper(t, -1)
	pid := uint32(ch.Pid())
	rec, err := Start(Config{Events: []string{"syscalls"}, BufferSize: 16 << 20, PIDs: []uint32{pid}, Counters: []string{"none"}, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ch.step(t, 100) // calls 0-99: recorded
	if err := rec.Disable("sys_enter"); err != nil {
		t.Fatal(err)
	}
	ch.step(t, 100) // 100-199: sys_exit only
	if err := rec.Enable("sys_enter"); err != nil {
		t.Fatal(err)
	}
	if err := rec.SetFilter([]uint32{1}, nil, nil); err != nil { // pid 1 only
		t.Fatal(err)
	}
	ch.step(t, 100) // 200-299: filtered out
	if err := rec.SetFilter([]uint32{pid}, nil, nil); err != nil {
		t.Fatal(err)
	}
	ch.step(t, 100) // 300-399: recorded
	path := filepath.Join(t.TempDir(), "changes.rwd")
	if _, err := rec.Snapshot(context.Background(), SnapshotRequest{Path: path, Trigger: manual}); err != nil {
		t.Fatal(err)
	}
	rows, _ := readRows(t, path)
	enters := map[uint64]bool{}
	for _, r := range rows["sys_enter"] {
		if r.u("pid") == uint64(pid) && r.i("id") == syscall.SYS_GETPPID {
			enters[r.arr("args", 0)] = true
		}
	}
	exits := 0
	for _, r := range rows["sys_exit"] {
		if r.u("pid") == uint64(pid) && r.i("id") == syscall.SYS_GETPPID {
			exits++
		}
	}
	for n := uint64(0); n < 400; n++ {
		want := n < 100 || n >= 300
		if enters[n] != want {
			t.Fatalf("call %d: sys_enter recorded %v, want %v", n, enters[n], want)
		}
	}
	if exits != 300 {
		t.Errorf("%d getppid sys_exit recorded, want 300 (all but the filtered-out round)", exits)
	}
	// Stopped, the programs' own count of each event is what the rings
	// hold (none overwritten in 16 MiB).
	if err := rec.Stop(); err != nil {
		t.Fatal(err)
	}
	st, err := rec.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Snapshot(context.Background(), SnapshotRequest{Path: path + ".2", Trigger: manual}); err != nil {
		t.Fatal(err)
	}
	rows, _ = readRows(t, path+".2")
	for _, e := range []string{"sys_enter", "sys_exit"} {
		if st.Recorded[e] != uint64(len(rows[e])) {
			t.Errorf("%s: Stats counts %d recorded, the snapshot holds %d", e, st.Recorded[e], len(rows[e]))
		}
	}
}
