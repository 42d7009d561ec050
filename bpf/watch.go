package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
)

// Trigger kinds evaluated in the kernel, mirroring enum rw_w_kind in
// watch.bpf.c.
const (
	WatchSyscall = 1 // a system call slower than the threshold
	WatchRunq    = 2 // a task waited longer than the threshold to run
	WatchBlock   = 3 // a block request slower than the threshold
	WatchSignal  = 4 // a signal of the set delivered
	WatchExit    = 5 // a process exited non-zero or by a signal
	WatchOOM     = 6 // the OOM killer chose a victim
)

// MaxWatchTriggers is how many triggers one Watch evaluates.
const MaxWatchTriggers = 8

// statMatched is RW_WS_MATCHED: rw_w_stats's first trigger slot count.
const statMatched = 3

// Live histograms, mirroring RW_WH_* in watch.bpf.c.
const (
	HistSyscall = 1 // system call latency by system call
	HistRunq    = 2 // run-queue latency
	HistOffCPU  = 4 // off-CPU time
	HistBlock   = 8 // block I/O latency by device and operation
)

// HistM is the sub-bucket bits of the live histograms: bucket i is
// analyze/hist's Index(v, HistM), exact below 16 ns, then 8 buckets per
// power of two; HistBuckets-1 holds everything above.
const (
	HistM       = 3
	HistBuckets = 256
)

// Block operations in a histogram's Op, after REQ_OP_*; BlockOpOther is
// any other.
const (
	BlockOpRead    = 0
	BlockOpWrite   = 1
	BlockOpFlush   = 2
	BlockOpDiscard = 3
	BlockOpOther   = 0xff
)

// Trigger filters, mirroring RW_WF_*.
const (
	wfSyscall  = 1
	wfPID      = 2
	wfComm     = 4
	wfCgroup   = 8
	wfCPU      = 16
	wfDev      = 32
	wfSignaled = 64
)

// Condition is one trigger as the kernel evaluates it. Zero filters do
// not apply.
type Condition struct {
	Kind      int
	Threshold uint64 // ns, for the latencies
	Syscall   *int32 // one system call's number
	PID       uint32 // a thread id or process id
	Comm      string
	CgroupID  uint64
	CPU       *int32
	Dev       uint32 // major << 20 | minor
	Signals   uint64 // signal s is bit s-1
	Signaled  bool   // exit: only deaths by a signal
}

// Firing is one match of a trigger's condition, as the kernel reports it.
type Firing struct {
	TS      uint64 // CLOCK_BOOTTIME ns
	Value   uint64 // latency ns, signal, wait status, victim pid
	Arg     uint64 // system call number; block: dev << 8 | op; signal: si_code
	Trigger int    // slot
	CPU     int
	TID     uint32
	PID     uint32
	Comm    string
}

// HistKey names one live histogram: which (Hist*) and, for system calls
// its number, for block I/O the device and operation.
type HistKey struct {
	Hist  uint32
	Label uint32
	Op    uint32
}

// HistCounts is one live histogram summed over the CPUs: counts by bucket
// (HistM) and the sum of the values, in ns.
type HistCounts struct {
	Buckets map[int]uint64
	Sum     uint64
}

// WatchStats are the watch's own losses.
type WatchStats struct {
	HistFull    uint64 // histogram updates lost: the map is full
	FiringsLost uint64 // firings lost: user space did not keep up
	// Collided counts start times lost to another thread whose id has
	// the same low 16 bits (watch.bpf.c, RW_W_TIDS).
	Collided uint64
	// Matched counts each trigger slot's matches (firings sent or lost).
	Matched [MaxWatchTriggers]uint64
}

// Watch holds the trigger and histogram programs of watch.bpf.c. A program
// is attached only while a trigger or histogram needs it. Methods but
// ReadFiring are not safe for concurrent use; ReadFiring may run in its
// own goroutine while the others are called, and returns an error once
// Close is called.
type Watch struct {
	coll    *ebpf.Collection
	links   map[string]link.Link
	conds   [MaxWatchTriggers]*Condition
	hists   uint32
	firings *ringbuf.Reader
	// filterSpec makes the map a new histogram filter is built in.
	filterSpec *ebpf.MapSpec
	closed     bool
}

// WatchOptions configure the watch programs before they load.
type WatchOptions struct {
	SelfTGID  uint32 // the daemon's process: never watched
	KernelBTF string // as Options.KernelBTF
}

// watchTracepoints lists, per use, the programs it needs and their
// tracepoints.
var watchTracepoints = map[string][1]string{
	"rw_w_sys_enter":          {"sys_enter"},
	"rw_w_sys_exit":           {"sys_exit"},
	"rw_w_sched_wakeup":       {"sched_wakeup"},
	"rw_w_sched_wakeup_new":   {"sched_wakeup_new"},
	"rw_w_sched_switch":       {"sched_switch"},
	"rw_w_block_rq_issue":     {"block_rq_issue"},
	"rw_w_block_rq_complete":  {"block_rq_complete"},
	"rw_w_signal_deliver":     {"signal_deliver"},
	"rw_w_sched_process_exit": {"sched_process_exit"},
	"rw_w_mark_victim":        {"mark_victim"},
}

// LoadWatch loads the watch programs and maps, attaching nothing.
func LoadWatch(opts WatchOptions) (_ *Watch, err error) {
	load := loadWatch
	if opts.KernelBTF != "" {
		load = loadWatchRaw
	}
	spec, err := load()
	if err != nil {
		return nil, err
	}
	var kernel *btf.Spec
	var collOpts ebpf.CollectionOptions
	if opts.KernelBTF != "" {
		if kernel, err = btf.LoadSpec(opts.KernelBTF); err != nil {
			return nil, fmt.Errorf("load kernel BTF %s: %w", opts.KernelBTF, err)
		}
		collOpts.Programs.KernelTypes = kernel
	} else if kernel, err = btf.LoadKernelSpec(); err != nil {
		return nil, fmt.Errorf("no kernel BTF: %w", err)
	}
	set := func(name string, v any) error {
		if err := spec.Variables[name].Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
		return nil
	}
	if err := set(watchVarRwW_selfTgid, opts.SelfTGID); err != nil {
		return nil, err
	}
	// 5.10's block_rq_issue passes (q, rq); 5.11 on, (rq).
	if args, err := TracepointArgs(kernel, "block_rq_issue"); err == nil && len(args) == 2 {
		if err := set(watchVarRwW_issueRqArg, uint8(1)); err != nil {
			return nil, err
		}
	}
	// mark_victim passes the victim's pid (an int) before 6.x, its task since.
	if args, err := TracepointArgs(kernel, "mark_victim"); err == nil && len(args) > 0 && args[0] == 8 {
		if err := set(watchVarRwW_oomTask, uint8(1)); err != nil {
			return nil, err
		}
	}
	// Programs of tracepoints this kernel lacks are left out: the
	// triggers that need them say so when set.
	for name, tp := range watchTracepoints {
		var fn *btf.Typedef
		if kernel.TypeByName("btf_trace_"+tp[0], &fn) != nil {
			delete(spec.Programs, name)
		}
	}
	_ = rlimit.RemoveMemlock()
	coll, err := ebpf.NewCollectionWithOptions(spec, collOpts)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load the watch programs: %s", verifierTail(ve))
		}
		return nil, fmt.Errorf("load the watch programs: %w", err)
	}
	w := &Watch{coll: coll, links: map[string]link.Link{}, filterSpec: spec.Maps["rw_filter"].InnerMap.Copy()}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	if w.firings, err = ringbuf.NewReader(coll.Maps[watchMapRwW_firings]); err != nil {
		return nil, fmt.Errorf("read firings: %w", err)
	}
	return w, nil
}

// needs says which programs a trigger kind or histogram needs.
func needs(kinds uint32, hists uint32) map[string]bool {
	out := map[string]bool{}
	add := func(names ...string) {
		for _, n := range names {
			out[n] = true
		}
	}
	if kinds&(1<<WatchSyscall) != 0 || hists&HistSyscall != 0 {
		add("rw_w_sys_enter", "rw_w_sys_exit")
	}
	if kinds&(1<<WatchRunq) != 0 || hists&(HistRunq|HistOffCPU) != 0 {
		add("rw_w_sched_wakeup", "rw_w_sched_wakeup_new", "rw_w_sched_switch")
	}
	if kinds&(1<<WatchBlock) != 0 || hists&HistBlock != 0 {
		add("rw_w_block_rq_issue", "rw_w_block_rq_complete")
	}
	if kinds&(1<<WatchSignal) != 0 {
		add("rw_w_signal_deliver")
	}
	if kinds&(1<<WatchExit) != 0 {
		add("rw_w_sched_process_exit")
	}
	if kinds&(1<<WatchOOM) != 0 {
		add("rw_w_mark_victim")
	}
	return out
}

func (w *Watch) kinds() uint32 {
	var k uint32
	for _, c := range w.conds {
		if c != nil {
			k |= 1 << c.Kind
		}
	}
	return k
}

// sync attaches what the triggers and histograms need and detaches the
// rest, then tells the programs what to evaluate.
func (w *Watch) sync() error {
	kinds := w.kinds()
	want := needs(kinds, w.hists)
	var errs []error
	for name := range want {
		if _, ok := w.links[name]; ok {
			continue
		}
		prog, ok := w.coll.Programs[name]
		if !ok {
			errs = append(errs, fmt.Errorf("this kernel has no %s tracepoint", watchTracepoints[name][0]))
			continue
		}
		var l link.Link
		var err error
		if prog.Type() == ebpf.RawTracepoint {
			l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: watchTracepoints[name][0], Program: prog})
		} else {
			l, err = link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("attach %s to tracepoint %s: %w", name, watchTracepoints[name][0], err))
			continue
		}
		w.links[name] = l
	}
	if err := w.coll.Variables[watchVarRwW_kinds].Set(kinds); err != nil {
		errs = append(errs, fmt.Errorf("write rw_w_kinds: %w", err))
	}
	if err := w.coll.Variables[watchVarRwW_hists].Set(w.hists); err != nil {
		errs = append(errs, fmt.Errorf("write rw_w_hists: %w", err))
	}
	for name, l := range w.links {
		if !want[name] {
			delete(w.links, name)
			errs = append(errs, l.Close())
		}
	}
	return errors.Join(errs...)
}

// SetTrigger puts a condition in a slot (nil frees it) and attaches the
// programs it needs. A slot's matches are counted from zero again.
func (w *Watch) SetTrigger(slot int, c *Condition) error {
	if slot < 0 || slot >= MaxWatchTriggers {
		return fmt.Errorf("trigger slot %d: want 0 to %d", slot, MaxWatchTriggers-1)
	}
	var t watchRwW_trigger
	if c != nil {
		if len(c.Comm) > 15 {
			return fmt.Errorf("comm %q is longer than the kernel's 15 bytes", c.Comm)
		}
		t = watchRwW_trigger{Kind: uint32(c.Kind), Threshold: c.Threshold, Pid: c.PID, Cgroup: c.CgroupID, Dev: c.Dev, Sigmask: c.Signals}
		if c.Syscall != nil {
			t.Flags |= wfSyscall
			t.Syscall = *c.Syscall
		}
		if c.PID != 0 {
			t.Flags |= wfPID
		}
		if c.Comm != "" {
			t.Flags |= wfComm
			for i := range len(c.Comm) {
				t.Comm[i] = int8(c.Comm[i])
			}
		}
		if c.CgroupID != 0 {
			t.Flags |= wfCgroup
		}
		if c.CPU != nil {
			t.Flags |= wfCPU
			t.Cpu = *c.CPU
		}
		if c.Dev != 0 {
			t.Flags |= wfDev
		}
		if c.Signaled {
			t.Flags |= wfSignaled
		}
	}
	// Free the slot first, so that no event sees half of the new one.
	if err := w.coll.Maps[watchMapRwW_triggers].Put(uint32(slot), watchRwW_trigger{}); err != nil {
		return fmt.Errorf("clear trigger slot %d: %w", slot, err)
	}
	if err := w.zeroMatched(slot); err != nil {
		return err
	}
	if c != nil {
		if err := w.coll.Maps[watchMapRwW_triggers].Put(uint32(slot), t); err != nil {
			return fmt.Errorf("set trigger slot %d: %w", slot, err)
		}
	}
	old := w.conds[slot]
	w.conds[slot] = c
	if err := w.sync(); err != nil {
		w.conds[slot] = old
		w.coll.Maps[watchMapRwW_triggers].Put(uint32(slot), watchRwW_trigger{})
		return errors.Join(err, w.sync())
	}
	return nil
}

func (w *Watch) zeroMatched(slot int) error {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	if err := w.coll.Maps[watchMapRwW_stats].Put(uint32(statMatched+slot), make([]uint64, cpus)); err != nil {
		return fmt.Errorf("reset trigger slot %d's count: %w", slot, err)
	}
	return nil
}

// SetHistograms keeps the live histograms in mask (Hist*) and no others;
// a histogram turned off keeps its counts until ClearHistograms.
func (w *Watch) SetHistograms(mask uint32) error {
	old := w.hists
	w.hists = mask
	if err := w.sync(); err != nil {
		w.hists = old
		return errors.Join(err, w.sync())
	}
	return nil
}

// SetFilter restricts the live histograms to some tasks, as
// Objects.SetFilter restricts recording (but block I/O, counted for every
// device); a zero Filter lifts it.
func (w *Watch) SetFilter(f Filter) error {
	return setFilter(w.coll, w.filterSpec, f)
}

// Histograms returns the live histograms' counts so far, summed over the
// CPUs.
func (w *Watch) Histograms() (map[HistKey]*HistCounts, error) {
	out := map[HistKey]*HistCounts{}
	var k watchRwW_hkey
	var perCPU []watchRwW_hval
	it := w.coll.Maps[watchMapRwW_hist].Iterate()
	for it.Next(&k, &perCPU) {
		var n, sum uint64
		for _, v := range perCPU {
			n += v.Count
			sum += v.Sum
		}
		key := HistKey{Hist: k.Hist, Label: k.Label, Op: k.Op}
		h := out[key]
		if h == nil {
			h = &HistCounts{Buckets: map[int]uint64{}}
			out[key] = h
		}
		h.Sum += sum
		if n > 0 {
			h.Buckets[int(k.Bucket)] += n
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read live histograms: %w", err)
	}
	return out, nil
}

// Stats returns the watch's losses and each trigger slot's matches.
func (w *Watch) Stats() (WatchStats, error) {
	var st WatchStats
	var perCPU []uint64
	read := func(i uint32) (uint64, error) {
		if err := w.coll.Maps[watchMapRwW_stats].Lookup(i, &perCPU); err != nil {
			return 0, fmt.Errorf("read rw_w_stats[%d]: %w", i, err)
		}
		var n uint64
		for _, v := range perCPU {
			n += v
		}
		return n, nil
	}
	var err error
	if st.HistFull, err = read(0); err != nil {
		return st, err
	}
	if st.FiringsLost, err = read(1); err != nil {
		return st, err
	}
	if st.Collided, err = read(2); err != nil {
		return st, err
	}
	for i := range st.Matched {
		if st.Matched[i], err = read(uint32(statMatched + i)); err != nil {
			return st, err
		}
	}
	return st, nil
}

// ReadFiring waits for the next firing. It returns os.ErrClosed once
// Close is called.
func (w *Watch) ReadFiring() (Firing, error) {
	rec, err := w.firings.Read()
	if err != nil {
		if errors.Is(err, ringbuf.ErrClosed) {
			return Firing{}, os.ErrClosed
		}
		return Firing{}, fmt.Errorf("read a firing: %w", err)
	}
	b := rec.RawSample
	if len(b) < 56 {
		return Firing{}, fmt.Errorf("a firing of %d bytes: want 56", len(b))
	}
	le := binary.LittleEndian
	f := Firing{TS: le.Uint64(b[0:]), Value: le.Uint64(b[8:]), Arg: le.Uint64(b[16:]), Trigger: int(le.Uint32(b[24:])),
		CPU: int(le.Uint32(b[28:])), TID: le.Uint32(b[32:]), PID: le.Uint32(b[36:])}
	comm := b[40:56]
	for i, c := range comm {
		if c == 0 {
			comm = comm[:i]
			break
		}
	}
	f.Comm = string(comm)
	return f, nil
}

// Attached lists the tracepoints the watch programs are attached to.
func (w *Watch) Attached() []string {
	var out []string
	for name := range w.links {
		out = append(out, watchTracepoints[name][0])
	}
	sort.Strings(out)
	return out
}

// Close detaches every program and frees the maps; a ReadFiring waiting
// returns. Safe to call twice.
func (w *Watch) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	var errs []error
	if w.firings != nil {
		errs = append(errs, w.firings.Close())
	}
	for _, l := range w.links {
		errs = append(errs, l.Close())
	}
	w.coll.Close()
	return errors.Join(errs...)
}
