package analyze

import (
	"encoding/binary"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/snaptest"
)

// testSchema has the events the analyses read, laid out as the recorder's.
func testSchema(t *testing.T) *schema.Schema {
	comm := func(name string, off int) schema.Field {
		return schema.Field{Name: name, Type: schema.Str, Count: 16, Offset: off, Kind: schema.KindComm}
	}
	u32 := func(name string, off int) schema.Field {
		return schema.Field{Name: name, Type: schema.U32, Count: 1, Offset: off}
	}
	s, err := schema.New([]schema.Event{
		{ID: 1, Name: "sched_switch", Size: 40, Fields: []schema.Field{comm("prev_comm", 0), comm("next_comm", 16), u32("next_tid", 32),
			{Name: "prev_state", Type: schema.U16, Count: 1, Offset: 38}}},
		{ID: 2, Name: "sched_waking", Size: 32, Fields: []schema.Field{comm("target_comm", 0), u32("target_tid", 16), u32("target_pid", 20)}},
		{ID: 7, Name: "sys_enter", Size: 40, Fields: []schema.Field{{Name: "id", Type: schema.S32, Count: 1, Offset: 0}}},
		{ID: 8, Name: "sys_exit", Size: 16, Fields: []schema.Field{{Name: "id", Type: schema.S32, Count: 1, Offset: 0}, {Name: "ret", Type: schema.S64, Count: 1, Offset: 8}}},
		{ID: 10, Name: "block_rq_issue", Size: 32, Fields: []schema.Field{u32("dev", 0), u32("bytes", 4), {Name: "rwbs", Type: schema.Str, Count: 8, Offset: 16},
			{Name: "rq", Type: schema.U64, Count: 1, Offset: 24}}},
		{ID: 11, Name: "block_rq_complete", Size: 40, Fields: []schema.Field{u32("dev", 0), u32("bytes", 4), {Name: "rwbs", Type: schema.Str, Count: 8, Offset: 16},
			{Name: "rq", Type: schema.U64, Count: 1, Offset: 24}, {Name: "error", Type: schema.U8, Count: 1, Offset: 32}}},
		{ID: 12, Name: "irq_handler_entry", Size: 36, Fields: []schema.Field{{Name: "irq", Type: schema.S32, Count: 1, Offset: 0}, {Name: "name", Type: schema.Str, Count: 32, Offset: 4}}},
		{ID: 13, Name: "irq_handler_exit", Size: 8, Fields: []schema.Field{{Name: "irq", Type: schema.S32, Count: 1, Offset: 0}}},
		{ID: 16, Name: "page_fault_user", Size: 24, Fields: []schema.Field{{Name: "address", Type: schema.U64, Count: 1, Offset: 0}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ev is one synthetic event; fields are written at the schema's offsets.
type ev struct {
	cpu      int
	ts       uint64
	name     string
	tid, pid uint32
	f        map[string]any
}

// build writes a snapshot of the events; split cuts each CPU's events into
// chunks of at most split events (0: one chunk per CPU).
func build(t *testing.T, events []ev, split int, procs []snapshot.Proc, recorded ...string) *snapshot.Reader {
	t.Helper()
	s := testSchema(t)
	per := map[int][]snapshot.Event{}
	for _, e := range events {
		et := s.ByName(e.name)
		data := make([]byte, et.Size)
		for name, v := range e.f {
			f := et.Fields[et.Field(name)]
			switch v := v.(type) {
			case string:
				copy(data[f.Offset:], v)
			case int:
				var b [8]byte
				binary.LittleEndian.PutUint64(b[:], uint64(v))
				copy(data[f.Offset:], b[:f.Type.Size()])
			}
		}
		seq := uint64(len(per[e.cpu]))
		per[e.cpu] = append(per[e.cpu], snapshot.Event{TS: e.ts, Seq: seq, TID: e.tid, PID: e.pid, Type: et.ID, Data: data})
	}
	cpus := make([]int, 0, len(per))
	for cpu := range per {
		cpus = append(cpus, cpu)
	}
	sort.Ints(cpus)
	var chunks []snapshot.ChunkInput
	for _, cpu := range cpus {
		evs := per[cpu]
		n := split
		if n <= 0 {
			n = len(evs)
		}
		for i := 0; i < len(evs); i += n {
			part := evs[i:min(len(evs), i+n)]
			chunks = append(chunks, snapshot.ChunkInput{CPU: cpu, Events: part, FirstSeq: part[0].Seq, NextSeq: part[len(part)-1].Seq + 1})
		}
	}
	meta := &snapshot.Meta{CPUs: 2, Kernel: snapshot.Kernel{Machine: "x86_64"}, Recording: snapshot.Recording{Events: recorded}}
	return snaptest.Write(t, filepath.Join(t.TempDir(), "a.rwd"), meta, s, procs, chunks)
}

func only(t *testing.T, res *Result, name string, labels ...Label) *Series {
	t.Helper()
	s := res.Find(name, labels...)
	if s == nil {
		var have []string
		for _, h := range res.Histograms {
			have = append(have, h.Name+h.Labels.key())
		}
		t.Fatalf("no series %s %v; have %q", name, labels, have)
	}
	return s
}

func sw(cpu int, ts uint64, prev, prevPID uint32, next uint32, state int) ev {
	return ev{cpu: cpu, ts: ts, name: "sched_switch", tid: prev, pid: prevPID, f: map[string]any{"prev_comm": "task", "next_tid": int(next), "prev_state": state}}
}

func wake(cpu int, ts uint64, waker, target, targetPID uint32) ev {
	return ev{cpu: cpu, ts: ts, name: "sched_waking", tid: waker, pid: waker, f: map[string]any{"target_tid": int(target), "target_pid": int(targetPID)}}
}

// Scheduling: a task sleeps (S) on CPU 0, is woken from CPU 1, and runs on
// CPU 1; another is preempted and waits. Each wait is measured exactly,
// though its halves lie on different CPUs and in different chunks.
func TestSchedulingAcrossCPUs(t *testing.T) {
	events := []ev{
		sw(0, 1000, 0, 0, 100, 0),       // 100 runs on CPU 0
		sw(0, 5000, 100, 100, 0, 1),     // 100 sleeps (S) after 4000 ns on CPU
		wake(1, 9000, 200, 100, 100),    // woken from CPU 1; off CPU 5000..9500 = 4500 ns
		sw(1, 9500, 200, 200, 100, 256), // 200 preempted (R+), 100 runs after 500 ns
		sw(1, 12000, 100, 100, 200, 2),  // 100 blocks (D); 200 waited 2500 ns
		sw(1, 20000, 200, 200, 100, 1),  // 100 back after 8000 ns off CPU, without a wakeup; 200 ran 8000 ns
	}
	for _, split := range []int{0, 1, 2} {
		r := build(t, events, split, []snapshot.Proc{{PID: 100, Comm: "hundred"}})
		res, err := Run(r, Options{})
		if err != nil {
			t.Fatal(err)
		}
		runq := only(t, res, RunqLatency, Label{"by", "all"})
		// 200's wait after its preemption is time runnable, not run-queue
		// latency, which starts at a wakeup.
		if runq.Hist.Count() != 1 || runq.Hist.Min() != 500 {
			t.Errorf("split %d: runq %d samples, %d..%d", split, runq.Hist.Count(), runq.Hist.Min(), runq.Hist.Max())
		}
		if s := only(t, res, RunqLatency, Label{"by", "cpu"}, Label{"cpu", "1"}); s.Hist.Count() != 1 {
			t.Errorf("split %d: runq on cpu 1: %d", split, s.Hist.Count())
		}
		p := only(t, res, RunqLatency, Label{"by", "process"}, Label{"pid", "100"}, Label{"comm", "hundred"})
		if p.Hist.Count() != 1 || p.Hist.Min() != 500 {
			t.Errorf("split %d: runq of 100: %d, %d", split, p.Hist.Count(), p.Hist.Min())
		}
		off := only(t, res, OffCPU, Label{"by", "all"})
		if off.Hist.Count() != 2 || off.Hist.Min() != 4500 || off.Hist.Max() != 8000 {
			t.Errorf("split %d: offcpu %d, %d..%d", split, off.Hist.Count(), off.Hist.Min(), off.Hist.Max())
		}
		if d := only(t, res, OffCPU, Label{"by", "state"}, Label{"state", "D"}); d.Hist.Min() != 8000 {
			t.Errorf("split %d: D state %d", split, d.Hist.Min())
		}
		on := only(t, res, OnCPU, Label{"by", "all"})
		if on.Hist.Count() != 3 || on.Hist.Min() != 2500 || on.Hist.Max() != 8000 {
			t.Errorf("split %d: oncpu %d, %d..%d", split, on.Hist.Count(), on.Hist.Min(), on.Hist.Max())
		}
		var proc, proc200 *Process
		for i := range res.Processes {
			switch res.Processes[i].PID {
			case 100:
				proc = &res.Processes[i]
			case 200:
				proc200 = &res.Processes[i]
			}
		}
		if proc200 == nil || proc200.RunqWait != 2500 {
			t.Errorf("split %d: process 200: %+v", split, proc200)
		}
		if proc == nil || proc.OnCPU != 4000+2500 || proc.OffCPU != 4500+8000 || proc.RunqWait != 500 || proc.Comm != "hundred" {
			t.Errorf("split %d: process 100: %+v", split, proc)
		}
	}
}

func enter(cpu int, ts uint64, tid uint32, nr int) ev {
	return ev{cpu: cpu, ts: ts, name: "sys_enter", tid: tid, pid: tid, f: map[string]any{"id": nr}}
}

func exit(cpu int, ts uint64, tid uint32, nr, ret int) ev {
	return ev{cpu: cpu, ts: ts, name: "sys_exit", tid: tid, pid: tid, f: map[string]any{"id": nr, "ret": ret}}
}

// Syscalls pair within a chunk, across chunks, and across CPUs when the task
// migrated while blocked; errors are counted by errno.
func TestSyscallsPairEverywhere(t *testing.T) {
	events := []ev{
		enter(0, 100, 7, 0), exit(0, 1100, 7, 0, 5), // read: 1000 ns
		enter(0, 2000, 7, 0), exit(0, 4000, 7, 0, -11), // read: 2000 ns, EAGAIN
		enter(0, 5000, 8, 230),                       // clock_nanosleep on CPU 0...
		enter(1, 6000, 9, 1), exit(1, 6500, 9, 1, 3), // write: 500 ns
		exit(1, 8000, 8, 230, 0), // ...returns on CPU 1: 3000 ns
		enter(0, 9000, 7, 0),     // never returns in the snapshot
	}
	for _, split := range []int{0, 1, 3} {
		res, err := Run(build(t, events, split, nil), Options{Only: []string{SyscallLatency}})
		if err != nil {
			t.Fatal(err)
		}
		all := only(t, res, SyscallLatency, Label{"by", "all"})
		if all.Hist.Count() != 4 || all.Hist.Min() != 500 || all.Hist.Max() != 3000 {
			t.Errorf("split %d: %d syscalls, %d..%d", split, all.Hist.Count(), all.Hist.Min(), all.Hist.Max())
		}
		if s := only(t, res, SyscallLatency, Label{"by", "syscall"}, Label{"syscall", "clock_nanosleep"}); s.Hist.Min() != 3000 {
			t.Errorf("split %d: clock_nanosleep %d", split, s.Hist.Min())
		}
		if s := only(t, res, SyscallLatency, Label{"by", "syscall"}, Label{"syscall", "read"}); s.Hist.Count() != 2 {
			t.Errorf("split %d: read %d", split, s.Hist.Count())
		}
		counts := map[string]uint64{}
		for _, c := range res.Counters {
			counts[c.Name+":"+c.Labels.Get("syscall")+":"+c.Labels.Get("errno")] = c.Value
		}
		if counts["syscalls:read:"] != 3 || counts["syscall_errors:read:EAGAIN"] != 1 || counts["syscalls:write:"] != 1 {
			t.Errorf("split %d: counters %v", split, counts)
		}
		if _, ok := res.Skipped[SyscallLatency]; ok || len(res.Skipped) != 0 {
			t.Errorf("split %d: skipped %v", split, res.Skipped)
		}
	}
}

// With many chunks on several CPUs, one worker, and chunks that give the
// merge nothing to walk, the merge still takes every chunk in the order it
// was dispatched: the window of chunks in flight never starves it. Tasks
// migrate mid-syscall between CPUs, so the merge pairs half the calls.
func TestManyChunksOneWorker(t *testing.T) {
	var events []ev
	for i := 0; i < 400; i++ {
		ts := uint64(i) * 1000
		tid := uint32(10 + i%3)
		events = append(events, enter(i%2, ts, tid, 0), exit((i/7)%2, ts+400, tid, 0, 1))
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].ts < events[j].ts })
	r := build(t, events, 16, nil)
	for _, only := range [][]string{nil, {SyscallLatency}} {
		done := make(chan error, 1)
		var res *Result
		go func() {
			var err error
			res, err = Run(r, Options{Only: only, Workers: 1})
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("analysis of %v did not finish", only)
		}
		if s := only_(t, res); s.Hist.Count() != 400 || s.Hist.Min() != 400 || s.Hist.Max() != 400 {
			t.Errorf("%v: %d syscalls of %d..%d ns, want 400 of 400", only, s.Hist.Count(), s.Hist.Min(), s.Hist.Max())
		}
	}
}

// A task that blocks in a syscall on CPU 0, returns from it on CPU 1,
// makes another there, and comes back to CPU 0 to return from that one:
// with switches recorded, CPU 0's chunk must not pair the first enter with
// the second exit. Tasks that stayed on their CPU pair within the chunk.
func TestSyscallMigratesAndReturns(t *testing.T) {
	events := []ev{
		enter(0, 1000, 7, 0),
		sw(0, 1100, 7, 7, 0, 1), // blocks
		sw(1, 2000, 0, 0, 7, 0),
		exit(1, 2100, 7, 0, 1), // read 1: 1100 ns
		enter(1, 3000, 7, 0),
		sw(1, 3100, 7, 7, 0, 1),
		sw(0, 4000, 0, 0, 7, 0),
		exit(0, 4500, 7, 0, 1),                       // read 2: 1500 ns
		enter(0, 5000, 8, 1), exit(0, 5200, 8, 1, 1), // write: 200 ns, no switch
	}
	for _, split := range []int{0, 2} {
		res, err := Run(build(t, events, split, nil, "sched_switch", "sys_enter", "sys_exit"), Options{Only: []string{SyscallLatency}})
		if err != nil {
			t.Fatal(err)
		}
		s := only_(t, res)
		var got []uint64
		for _, b := range s.Hist.Buckets() {
			for i := uint64(0); i < b.Count; i++ {
				got = append(got, b.Lo)
			}
		}
		if len(got) != 3 || s.Hist.Min() != 200 || s.Hist.Max() != 1500 || s.Hist.Sum() != 1100+1500+200 {
			t.Errorf("split %d: syscalls %v (min %d max %d sum %g), want 200, 1100, 1500", split, got, s.Hist.Min(), s.Hist.Max(), s.Hist.Sum())
		}
	}
}

// A process not in the process table is named after the name its main
// thread last switched out under: exec renames it, its threads' own names
// do not.
func TestProcessNameAfterExec(t *testing.T) {
	named := func(e ev, comm string) ev { e.f["prev_comm"] = comm; return e }
	events := []ev{
		named(sw(0, 1000, 50, 50, 0, 1), "bash"),
		sw(0, 1500, 0, 0, 50, 0),
		named(sw(0, 2000, 50, 50, 0, 1), "gzip"), // after exec
		sw(0, 2500, 0, 0, 51, 0),
		named(sw(0, 3000, 51, 50, 0, 1), "gzip-worker"), // a thread
	}
	for _, split := range []int{0, 1} {
		res, err := Run(build(t, events, split, nil), Options{Only: []string{OffCPU}})
		if err != nil {
			t.Fatal(err)
		}
		if s := res.Find(OffCPU, Label{"by", "process"}, Label{"pid", "50"}, Label{"comm", "gzip"}); s == nil {
			var have []string
			for _, h := range res.Histograms {
				have = append(have, h.Labels.key())
			}
			t.Errorf("split %d: no offcpu series for pid 50 named gzip; have %q", split, have)
		}
	}
}

// Analysing ten times the events allocates about the same: nothing per
// event, only per chunk, series and process.
func TestNoPerEventAllocation(t *testing.T) {
	allocs := func(n int) float64 {
		var events []ev
		for i := 0; i < n; i++ {
			ts := uint64(i) * 1000
			tid := uint32(10 + i%4)
			events = append(events, sw(i%2, ts, tid, tid, tid+1, 1), wake(i%2, ts+100, tid, tid+2, tid+2),
				enter(i%2, ts+200, tid, i%3), exit((i/5)%2, ts+700, tid, i%3, -11))
		}
		r := build(t, events, 4096, nil, "sched_switch", "sched_waking", "sys_enter", "sys_exit")
		return testing.AllocsPerRun(3, func() {
			if _, err := Run(r, Options{Workers: 1}); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := allocs(5000), allocs(50000)
	t.Logf("allocations: %.0f for 20000 events, %.0f for 200000", small, large)
	// Chunks are 4096 events: ten times the events is ten times the
	// chunks, each a few allocations (reading its payload, decompressing).
	if perEvent := (large - small) / 180000; perEvent > 0.01 {
		t.Errorf("%.3f allocations per event (%.0f for 20000 events, %.0f for 200000)", perEvent, small, large)
	}
}

// Switches that were not recorded (a recording filter, the recorder's own
// threads, lost events) leave a CPU's switches inconsistent: the slices
// they bound are not measured, instead of reaching to the next switch seen.
func TestUnrecordedSwitch(t *testing.T) {
	events := []ev{
		sw(0, 1000, 0, 0, 100, 0),   // 100 runs
		sw(0, 2000, 100, 100, 0, 1), // 100 sleeps: a 1000 ns slice
		sw(0, 2500, 0, 0, 100, 0),   // 100 runs again...
		// ...100 → 200 at 3000, not recorded
		sw(0, 4000, 200, 200, 0, 1), // 200 leaves: its start unknown
		// 0 → 100 at 8000, not recorded
		sw(0, 9000, 100, 100, 0, 1), // 100 leaves: not a 6500 ns slice
		sw(0, 9500, 0, 0, 100, 0),   // 100 runs after a 500 ns sleep
		sw(0, 9700, 100, 100, 0, 1), // a 200 ns slice
	}
	for _, split := range []int{0, 2} {
		res, err := Run(build(t, events, split, nil), Options{Only: []string{OnCPU, OffCPU}})
		if err != nil {
			t.Fatal(err)
		}
		on := only(t, res, OnCPU, Label{"by", "all"})
		if on.Hist.Count() != 2 || on.Hist.Min() != 200 || on.Hist.Max() != 1000 {
			t.Errorf("split %d: on-CPU %d slices, %d..%d; want 200 and 1000 ns", split, on.Hist.Count(), on.Hist.Min(), on.Hist.Max())
		}
		off := only(t, res, OffCPU, Label{"by", "all"})
		if off.Hist.Count() != 2 || off.Hist.Min() != 500 || off.Hist.Max() != 500 {
			t.Errorf("split %d: off-CPU %d, %d..%d; want two of 500 ns", split, off.Hist.Count(), off.Hist.Min(), off.Hist.Max())
		}
	}
}

func only_(t *testing.T, res *Result) *Series {
	return only(t, res, SyscallLatency, Label{"by", "all"})
}

func TestBlockAndIRQ(t *testing.T) {
	dev := 8<<20 | 16
	events := []ev{
		{cpu: 0, ts: 1000, name: "block_rq_issue", tid: 5, pid: 5, f: map[string]any{"dev": dev, "bytes": 4096, "rwbs": "R", "rq": 0xabc}},
		{cpu: 0, ts: 1500, name: "block_rq_issue", tid: 5, pid: 5, f: map[string]any{"dev": dev, "bytes": 65536, "rwbs": "WS", "rq": 0xdef}},
		{cpu: 1, ts: 3000, name: "irq_handler_entry", f: map[string]any{"irq": 11, "name": "virtio0"}},
		{cpu: 1, ts: 3100, name: "block_rq_complete", f: map[string]any{"dev": dev, "bytes": 4096, "rwbs": "R", "rq": 0xabc}},
		{cpu: 1, ts: 3700, name: "irq_handler_exit", f: map[string]any{"irq": 11}},
		{cpu: 0, ts: 9500, name: "block_rq_complete", f: map[string]any{"dev": dev, "bytes": 65536, "rwbs": "WS", "rq": 0xdef}},
		// The same request address, reused for a new request.
		{cpu: 0, ts: 10000, name: "block_rq_issue", tid: 5, pid: 5, f: map[string]any{"dev": dev, "bytes": 4096, "rwbs": "R", "rq": 0xabc}},
		{cpu: 1, ts: 10300, name: "block_rq_complete", f: map[string]any{"dev": dev, "bytes": 4096, "rwbs": "R", "rq": 0xabc}},
		{cpu: 0, ts: 11000, name: "page_fault_user", tid: 5, pid: 5},
	}
	for _, split := range []int{0, 1} {
		res, err := Run(build(t, events, split, nil), Options{})
		if err != nil {
			t.Fatal(err)
		}
		lat := only(t, res, BioLatency, Label{"by", "all"})
		if lat.Hist.Count() != 3 || lat.Hist.Min() != 300 || lat.Hist.Max() != 8000 {
			t.Errorf("split %d: bio latency %d, %d..%d", split, lat.Hist.Count(), lat.Hist.Min(), lat.Hist.Max())
		}
		if s := only(t, res, BioLatency, Label{"by", "device"}, Label{"dev", "8:16"}, Label{"op", "R"}); s.Hist.Max() != 2100 {
			t.Errorf("split %d: reads %d", split, s.Hist.Max())
		}
		r := only(t, res, BioSize, Label{"dev", "8:16"}, Label{"op", "R"})
		if b := r.Hist.Buckets(); len(b) != 1 || b[0].Lo != 4096 || b[0].Count != 2 {
			t.Errorf("split %d: read sizes %+v", split, b)
		}
		if b := only(t, res, BioSize, Label{"dev", "8:16"}, Label{"op", "W"}).Hist.Buckets(); len(b) != 1 || b[0].Lo != 65536 {
			t.Errorf("split %d: write sizes %+v", split, b)
		}
		if s := only(t, res, IRQ, Label{"irq", "11"}, Label{"name", "virtio0"}); s.Hist.Min() != 700 {
			t.Errorf("split %d: irq %d", split, s.Hist.Min())
		}
		if _, ok := res.Skipped[Softirq]; !ok {
			t.Errorf("split %d: softirq not skipped: %v", split, res.Skipped)
		}
		faults := 0
		for _, c := range res.Counters {
			if c.Name == "page_faults" && c.Labels.Get("pid") == "5" && c.Labels.Get("kind") == "user" {
				faults += int(c.Value)
			}
		}
		if faults != 1 {
			t.Errorf("split %d: faults %d", split, faults)
		}
	}
}

func TestSelection(t *testing.T) {
	events := []ev{
		enter(0, 100, 7, 0), exit(0, 1100, 7, 0, 5),
		enter(1, 2000, 8, 0), exit(1, 4000, 8, 0, 5),
		enter(0, 10000, 7, 1), exit(0, 10500, 7, 1, 5),
	}
	r := build(t, events, 0, []snapshot.Proc{{PID: 8, Comm: "eight", Threads: []snapshot.Thread{{TID: 8, Comm: "eight"}}}})
	for _, c := range []struct {
		name  string
		opts  Options
		count uint64
	}{
		{"pid", Options{PIDs: []uint32{7}}, 2},
		{"tid", Options{TIDs: []uint32{8}}, 1},
		{"comm", Options{Comms: []string{"eight"}}, 1},
		{"cpu", Options{CPUs: []int{1}}, 1},
		{"range", Options{Range: snapshot.Range{From: 0, To: 5000}}, 2},
	} {
		c.opts.Only = []string{SyscallLatency}
		res, err := Run(r, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if n := only(t, res, SyscallLatency, Label{"by", "all"}).Hist.Count(); n != c.count {
			t.Errorf("%s: %d syscalls, want %d", c.name, n, c.count)
		}
	}
	if _, err := Run(r, Options{Only: []string{"nope"}}); err == nil {
		t.Error("unknown analysis accepted")
	}
	if _, err := Run(r, Options{Error: 0.7}); err == nil {
		t.Error("error 0.7 accepted")
	}
}

// busy{cpu} is each interval's share of the CPU's time, from /proc/stat's
// own times: within [0, 1] though the times move in steps (20 ms of user
// time in a 10 ms interval), with intervals in which nothing moved skipped
// and a state that went back (iowait does) counted as not moving.
func TestCPUBusyShare(t *testing.T) {
	const unit = 10e6 // USER_HZ, in ns
	field := func(name string) snapshot.SeriesField {
		return snapshot.SeriesField{Name: name, Labels: map[string]string{"cpu": "0"}, Unit: "ns", Kind: snapshot.SeriesCounter}
	}
	cpu := &snapshot.Series{Source: "cpu", RateHz: 100,
		Fields: []snapshot.SeriesField{field("user"), field("system"), field("idle"), field("iowait"), field("guest")}}
	// Per interval: user, system, idle, iowait and guest (inside user)
	// moves, in units; the share busy.
	steps := []struct {
		d    [5]int64
		busy float64 // -1: nothing moved
	}{
		{[5]int64{2, 0, 0, 0, 0}, 1},
		{[5]int64{0, 0, 0, 0, 0}, -1},
		{[5]int64{0, 0, 1, 0, 0}, 0},
		{[5]int64{1, 0, 1, 0, 1}, 0.5},
		{[5]int64{0, 1, 0, -1, 0}, 1},
	}
	cpu.Values = make([][]uint64, len(cpu.Fields))
	v := [5]int64{100, 100, 100, 100, 100}
	for i := 0; i <= len(steps); i++ {
		if i > 0 {
			for f, d := range steps[i-1].d {
				v[f] += d
			}
		}
		cpu.TS = append(cpu.TS, uint64(1e9+i*10e6))
		for f := range v {
			cpu.Values[f] = append(cpu.Values[f], uint64(v[f]*unit))
		}
	}
	meta := &snapshot.Meta{CPUs: 1, Kernel: snapshot.Kernel{Machine: "x86_64"}}
	r := snaptest.Write(t, filepath.Join(t.TempDir(), "busy.rwd"), meta, testSchema(t), nil, nil, cpu)
	res, err := Run(r, Options{Only: []string{CounterRates}})
	if err != nil {
		t.Fatal(err)
	}
	var busy *Rates
	for i := range res.Rates {
		if res.Rates[i].Name == BusyName && res.Rates[i].Labels.Get("cpu") == "0" {
			busy = &res.Rates[i]
		}
	}
	if busy == nil {
		t.Fatalf("no busy{cpu=0} in %+v", res.Rates)
	}
	var shares []float64
	for _, s := range steps {
		if s.busy >= 0 {
			shares = append(shares, s.busy)
		}
	}
	// Σ Δbusy / Σ Δall: (2+0+1+1) / (2+1+2+1).
	want := Rates{Source: "cpu", Name: BusyName, Labels: Labels{{"cpu", "0"}}, Unit: UnitRatio, Kind: snapshot.SeriesGauge,
		Intervals: len(shares), Mean: 4.0 / 6, Max: 1,
		Windows: []Window{{StartNS: 1e9, N: len(shares), Mean: 4.0 / 6, P50: 0.5, P90: 1, P99: 1, Max: 1}}}
	if !reflect.DeepEqual(*busy, want) {
		t.Errorf("busy{cpu=0}:\n got %+v\nwant %+v", *busy, want)
	}
}
