package record

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rewindtrace/rewind/internal/testkernel"
)

// One live recorder driven from many goroutines at once — events and
// groups enabled and disabled, stack sampling on, off and at new rates,
// filters swapped, counter sources added and removed, snapshots to files
// and to writers, drains, Stats — and closed in the middle of it. Run it
// under -race (make test does). Meanwhile a child makes numbered calls in
// steps, and a snapshot after each step holds every call so far exactly
// once: nothing the others do loses or duplicates a recorded event.
func TestConcurrentUse(t *testing.T) {
	testkernel.Require(t)
	ch := startStepper(t, -1)
	pid := uint32(ch.Pid())
	rec, err := Start(Config{Events: []string{"syscalls"}, BufferSize: 2 << 20, PIDs: []uint32{pid},
		HistoryBytes: 16 << 20, Counters: []string{"load"}, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	dir := t.TempDir()
	ctx := context.Background()

	// closed says an error is what a call racing Close may return.
	closed := func(err error) bool { return errors.Is(err, os.ErrClosed) || errors.Is(err, context.Canceled) }
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	var files []string
	worker := func(name string, f func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				err := f(i)
				if err == nil {
					continue
				}
				if !closed(err) {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s %d: %v", name, i, err))
					mu.Unlock()
				}
				return
			}
		}()
	}
	worker("enable", func(i int) error {
		groups := []string{"sched", "irq", "stacks", "process", "sched_switch"}
		if i%2 == 0 {
			return rec.Enable(groups[i/2%len(groups)])
		}
		return rec.Disable(groups[i/2%len(groups)])
	})
	worker("stacks", func(i int) error { return rec.SetStackRate([]int{49, 99, 199}[i%3]) })
	worker("filter", func(i int) error {
		// Kinds of filter are ANDed: each of these keeps the child.
		pids := []uint32{pid}
		var comms []string
		switch i % 3 {
		case 1:
			pids = append(pids, 1)
		case 2:
			comms = []string{"record.test", "rw-nobody"}
		}
		return rec.SetFilter(pids, comms, nil)
	})
	worker("counters", func(i int) error {
		if i%2 == 0 {
			return rec.AddCounters("memory")
		}
		return rec.RemoveCounters("memory")
	})
	worker("stats", func(int) error {
		st, err := rec.Stats()
		if err == nil && len(st.CPUs) != rec.CPUs() {
			return fmt.Errorf("%d CPUs in stats", len(st.CPUs))
		}
		return err
	})
	worker("drain", func(int) error { return rec.Drain(ctx) })
	worker("snapshot file", func(int) error {
		res, err := rec.Snapshot(ctx, SnapshotRequest{Dir: dir, Trigger: manual})
		if err == nil {
			mu.Lock()
			files = append(files, res.Path)
			mu.Unlock()
		}
		return err
	})
	worker("snapshot writer", func(int) error {
		var buf bytes.Buffer
		res, err := rec.Snapshot(ctx, SnapshotRequest{Writer: &buf, Trigger: manual})
		if err == nil && res.Bytes != int64(buf.Len()) {
			return fmt.Errorf("%d bytes reported, %d written", res.Bytes, buf.Len())
		}
		return err
	})

	// The stepped child, checked after every step.
	const steps, k = 12, 300
	for s := 0; s < steps; s++ {
		ch.step(t, k)
		path := filepath.Join(t.TempDir(), "check.rwd")
		snap(t, rec, path)
		checkPrefix(t, path, int(pid), uint64(ch.next), true)
	}
	if err := rec.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	// The snapshots the workers wrote are whole, and each holds a run of
	// the child's calls, each call once.
	for _, path := range files {
		checkPrefix(t, path, int(pid), 0, false)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
	t.Logf("%d snapshots written by the workers", len(files))
}

// checkPrefix checks that a snapshot is undamaged and holds the child's
// calls from some number on without a gap or a duplicate: all of 0..next-1
// when whole is set.
func checkPrefix(t *testing.T, path string, pid int, next uint64, whole bool) {
	t.Helper()
	calls, r, sum := readGetppid(t, path, pid)
	if len(r.Damage()) > 0 || sum.Lost != 0 {
		t.Fatalf("%s: damage %v, %d lost", filepath.Base(path), r.Damage(), sum.Lost)
	}
	lo, hi := ^uint64(0), uint64(0)
	for n, c := range calls {
		if c.enters != 1 {
			t.Fatalf("%s: call %d recorded %d times", filepath.Base(path), n, c.enters)
		}
		lo, hi = min(lo, n), max(hi, n)
	}
	if len(calls) > 0 && hi-lo+1 != uint64(len(calls)) {
		t.Fatalf("%s: calls %d..%d with %d missing", filepath.Base(path), lo, hi, hi-lo+1-uint64(len(calls)))
	}
	if whole && (uint64(len(calls)) != next || next > 0 && lo != 0) {
		t.Fatalf("%s: %d of the child's %d calls (from %d)", filepath.Base(path), len(calls), next, lo)
	}
}
