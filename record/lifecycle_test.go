package record

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/rewindtrace/rewind/internal/testkernel"
)

// enters returns the numbers of the child's getppid calls a snapshot holds.
func enters(t *testing.T, path string, pid int) map[uint64]bool {
	t.Helper()
	calls, _, _ := readGetppid(t, path, pid)
	out := map[uint64]bool{}
	for n, c := range calls {
		if c.enters != 1 {
			t.Fatalf("call %d recorded %d times", n, c.enters)
		}
		out[n] = true
	}
	return out
}

// A recorder records only between Start and Stop, as often as it is
// started; stopped, its snapshots hold what it recorded. Calls after Close
// return os.ErrClosed.
func TestLifecycle(t *testing.T) {
	testkernel.Require(t)
	ch := startStepper(t, -1)
	rec, err := New(Config{Events: []string{"syscalls"}, BufferSize: 4 << 20, PIDs: []uint32{uint32(ch.Pid())}, Counters: []string{"none"}, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	dir := t.TempDir()
	ch.step(t, 100) // 0-99: loaded, not recording
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	ch.step(t, 100) // 100-199: recorded
	if err := rec.Stop(); err != nil {
		t.Fatal(err)
	}
	ch.step(t, 100) // 200-299: stopped
	stopped := snap(t, rec, filepath.Join(dir, "stopped.rwd"))
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	ch.step(t, 100) // 300-399: recorded
	again := snap(t, rec, filepath.Join(dir, "again.rwd"))
	st, err := rec.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.State != Recording || st.Snapshots.Taken != 2 || st.Snapshots.Last == nil || st.Snapshots.Last.Path != again.Path {
		t.Errorf("stats: state %v, snapshots %+v", st.State, st.Snapshots)
	}

	for _, c := range []struct {
		path string
		want func(n uint64) bool
	}{
		{stopped.Path, func(n uint64) bool { return n >= 100 && n < 200 }},
		{again.Path, func(n uint64) bool { return n >= 100 && n < 200 || n >= 300 }},
	} {
		got := enters(t, c.path, ch.Pid())
		for n := uint64(0); n < 400; n++ {
			if got[n] != c.want(n) {
				t.Fatalf("%s: call %d recorded %v, want %v", filepath.Base(c.path), n, got[n], c.want(n))
			}
		}
	}

	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"Start":    rec.Start,
		"Stop":     rec.Stop,
		"Enable":   func() error { return rec.Enable("sched") },
		"Disable":  func() error { return rec.Disable("sys_exit") },
		"Filter":   func() error { return rec.SetFilter(nil, nil, nil) },
		"Stacks":   func() error { return rec.SetStackRate(99) },
		"Counters": func() error { return rec.AddCounters("cpu") },
		"Remove":   func() error { return rec.RemoveCounters("cpu") },
		"Drain":    func() error { return rec.Drain(ctx) },
		"Stats":    func() error { _, err := rec.Stats(); return err },
		"Events":   func() error { _, err := rec.Events(); return err },
		"Snapshot": func() error {
			_, err := rec.Snapshot(ctx, SnapshotRequest{Dir: dir, Trigger: manual})
			return err
		},
	} {
		if err := call(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("%s after Close: %v, want os.ErrClosed", name, err)
		}
	}
}

// A snapshot goes to a path, into a directory or to a writer; a cancelled
// request leaves no file; a request must say where, once.
func TestSnapshotDestinations(t *testing.T) {
	testkernel.Require(t)
	ch := startStepper(t, -1)
	rec, err := Start(Config{Events: []string{"syscalls"}, BufferSize: 1 << 20, PIDs: []uint32{uint32(ch.Pid())}, Counters: []string{"none"}, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ch.step(t, 500)
	ctx := context.Background()
	dir := t.TempDir()

	var buf bytes.Buffer
	res, err := rec.Snapshot(ctx, SnapshotRequest{Writer: &buf, Trigger: manual})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != "" || res.Bytes != int64(buf.Len()) {
		t.Errorf("writer: path %q, %d bytes reported, %d written", res.Path, res.Bytes, buf.Len())
	}
	streamed := filepath.Join(dir, "streamed.rwd")
	if err := os.WriteFile(streamed, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	inDir, err := rec.Snapshot(ctx, SnapshotRequest{Dir: dir, Trigger: manual})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(inDir.Path) != dir {
		t.Errorf("directory snapshot at %s, want it in %s", inDir.Path, dir)
	}
	for _, path := range []string{streamed, inDir.Path} {
		got := enters(t, path, ch.Pid())
		for n := uint64(0); n < 500; n++ {
			if !got[n] {
				t.Fatalf("%s: call %d missing", filepath.Base(path), n)
			}
		}
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := rec.Snapshot(cancelled, SnapshotRequest{Path: filepath.Join(dir, "cancelled.rwd"), Trigger: manual}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v", err)
	}
	for _, req := range []SnapshotRequest{{}, {Path: "a", Dir: dir}} {
		if _, err := rec.Snapshot(ctx, req); err == nil {
			t.Errorf("request %+v accepted", req)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "streamed.rwd" && e.Name() != filepath.Base(inDir.Path) {
			t.Errorf("left in the directory: %s", e.Name())
		}
	}
	st, err := rec.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshots.Taken != 2 || st.Snapshots.Failed != 1 {
		t.Errorf("snapshots %+v, want 2 taken and the cancelled one failed", st.Snapshots)
	}
}

// A filter change is atomic: while the filter flips between two that both
// keep one child and neither keeps another, the kept child's calls are all
// recorded and not one of the other's, though it calls getppid flat out.
func TestFilterChangeIsAtomic(t *testing.T) {
	testkernel.Require(t)
	keep := startStepper(t, -1)
	other := startStepper(t, -1)
	rec, err := Start(Config{Events: []string{"syscalls"}, BufferSize: 16 << 20, PIDs: []uint32{uint32(keep.Pid())}, Counters: []string{"none"}, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	const flips, k = 200, 50
	// A few hundred ms of calls, while the filter flips; its outcome is
	// checked on the test's goroutine.
	otherDone := make(chan error, 1)
	if _, err := fmt.Fprintln(other.Stdin, 2_000_000); err != nil {
		t.Fatal(err)
	}
	go func() { _, err := other.Line(); otherDone <- err }()
	for i := 0; i < flips; i++ {
		pids := []uint32{uint32(keep.Pid()), 1}
		var comms []string
		if i%2 == 1 {
			pids, comms = []uint32{uint32(keep.Pid()), 2}, []string{"rw-nobody"}
		}
		if i%3 == 2 {
			comms = nil
		}
		if err := rec.SetFilter(pids, comms, nil); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			keep.step(t, k)
		}
	}
	if err := <-otherDone; err != nil {
		t.Fatalf("filtered-out child: %v", err)
	}
	path := filepath.Join(t.TempDir(), "flips.rwd")
	snap(t, rec, path)
	got := enters(t, path, keep.Pid())
	for n := uint64(0); n < uint64(keep.next); n++ {
		if !got[n] {
			t.Fatalf("kept child's call %d missing", n)
		}
	}
	rows, _ := readRows(t, path)
	for _, r := range rows["sys_enter"] {
		if r.u("pid") == uint64(other.Pid()) {
			t.Fatalf("an event of the filtered-out child was recorded: %v", r)
		}
	}
	for _, r := range rows["sys_exit"] {
		if r.u("pid") == uint64(other.Pid()) && r.i("id") == syscall.SYS_GETPPID {
			t.Fatalf("an event of the filtered-out child was recorded: %v", r)
		}
	}
}
