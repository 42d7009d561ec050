package analyze

import (
	"sort"
	"strconv"

	"github.com/rewindtrace/rewind/analyze/hist"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// taskState is what the merge knows of a thread.
type taskState struct {
	pid      uint32
	onSince  uint64 // switched in at, 0 when not running
	runnable uint64 // runnable since (woken or preempted), 0 when not
	offSince uint64 // switched out not runnable at, 0 when not
	offState uint16
	cpu      uint16 // where it was switched in
	// woken: runnable since a wakeup rather than a preemption. Only waits
	// after a wakeup are run-queue latency; all count as time runnable.
	woken bool
}

// procSums are the merge's per-process times.
type procSums struct {
	onCPU, offCPU, runq uint64
}

// perPID is a histogram per process; the one over all tasks is merged
// from them at the end.
type perPID struct {
	pids table[*hist.Histogram]
}

func (p *perPID) record(m int, pid uint32, d uint64) {
	h := p.pids.at(pid)
	if *h == nil {
		*h = hist.New(m)
		p.pids.used = append(p.pids.used, pid)
	}
	(*h).Record(d)
}

// merger walks the records of every chunk in time order across CPUs and
// pairs what workers could not: wakeups with switches, switches out with
// switches in, block issues with completions, syscalls a chunk left open.
type merger struct {
	a       *analyzer
	free    chan *chunkOut // outputs done with, for workers to reuse
	tasks   table[taskState]
	sums    table[*procSums]
	sysOpen table[sysOpen] // syscalls entered in one chunk, by tid
	runq    perPID
	off     perPID
	on      perPID
	runqCPU []*hist.Histogram
	// current is each CPU's running thread as the switches tell it, +1
	// (0: not known yet). A switch whose previous task is not the one the
	// last switch put on the CPU shows switches that were not recorded —
	// a recording filter, the recorder's own threads, lost events — and
	// the slices they bound are not measured.
	current []uint32
	offBy   []stateHist
	bioAll  *hist.Histogram
	bioDev  map[devOp]*hist.Histogram
	bio     map[uint64]rec // issued requests by address
	irqs    []irqRec
	comms   map[uint32]commRec
	// tail counts the pairs the merge completes, as a worker would.
	tail *worker
}

type stateHist struct {
	state uint16
	h     *hist.Histogram
}

func newMerger(a *analyzer, free chan *chunkOut) *merger {
	return &merger{a: a, free: free, bioDev: map[devOp]*hist.Histogram{}, bio: map[uint64]rec{},
		comms: map[uint32]commRec{}, tail: newWorker(a)}
}

// stream is one CPU's chunks, as the merge walks them.
type stream struct {
	queue []int // chunk indexes not yet received, in time order
	cur   *chunkOut
	i     int    // next of cur.recs
	key   uint64 // time of the next record, or the next chunk's start
	idx   int    // chunk index, to order ties as the chunks were dispatched
}

// heap is a binary min-heap of streams by (key, idx).
type streamHeap []*stream

func (h streamHeap) less(a, b int) bool {
	return h[a].key < h[b].key || h[a].key == h[b].key && h[a].idx < h[b].idx
}

func (h streamHeap) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h.less(c+1, c) {
			c++
		}
		if !h.less(c, i) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// second is the smallest key below the root.
func (h streamHeap) second() uint64 {
	k := ^uint64(0)
	for c := 1; c <= 2 && c < len(h); c++ {
		k = min(k, h[c].key)
	}
	return k
}

// walk merges the chunks' outputs as workers finish them. A stream takes
// its next chunk only when that chunk's start is the earliest time left,
// so chunks are taken in the order they were dispatched: the merge never
// waits for one the window of chunks in flight does not hold.
func (m *merger) walk(chunks []snapshot.Section, outs []chan *chunkOut, inFlight chan struct{}) error {
	byCPU := map[int]*stream{}
	var h streamHeap
	for i, c := range chunks {
		st := byCPU[c.CPU]
		if st == nil {
			st = &stream{key: c.FirstTS, idx: i}
			byCPU[c.CPU] = st
			h = append(h, st)
		}
		st.queue = append(st.queue, i)
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	for len(h) > 0 {
		st := h[0]
		if st.cur == nil {
			// Its next chunk is due: take it.
			j := st.queue[0]
			st.queue = st.queue[1:]
			out := <-outs[j]
			<-inFlight
			if out.err != nil {
				return out.err
			}
			m.take(out)
			st.cur, st.i, st.idx = out, 0, j
		} else {
			// Its records up to the next stream's time.
			limit := h.second()
			recs := st.cur.recs
			i := st.i
			for ; i < len(recs) && recs[i].ts <= limit; i++ {
				m.record(&recs[i])
			}
			st.i = i
		}
		if st.i < len(st.cur.recs) {
			st.key = st.cur.recs[st.i].ts
		} else {
			m.release(st.cur)
			st.cur = nil
			if len(st.queue) == 0 {
				h[0] = h[len(h)-1]
				h = h[:len(h)-1]
			} else {
				st.key, st.idx = chunks[st.queue[0]].FirstTS, st.queue[0]
			}
		}
		h.down(0)
	}
	return nil
}

// release hands an output back for reuse.
func (m *merger) release(out *chunkOut) {
	select {
	case m.free <- out:
	default:
	}
}

// take keeps what a chunk's worker left for the end.
func (m *merger) take(out *chunkOut) {
	m.irqs = append(m.irqs, out.irqs...)
	for _, c := range out.comms {
		if have, ok := m.comms[c.pid]; !ok || c.main || !have.main {
			m.comms[c.pid] = c
		}
	}
}

// record advances the merge by one record.
func (m *merger) record(r *rec) {
	switch r.kind {
	case rSwitch, rWake:
		m.sched(r)
	case rIssue, rComplete:
		m.bioEvent(r)
	case rEnter:
		*m.sysOpen.at(r.tid) = sysOpen{ts: r.ts, id: int32(r.a), pid: r.pid, ok: true}
	case rExit:
		o := m.sysOpen.at(r.tid)
		if o.ok && o.id == int32(r.a) && r.ts >= o.ts {
			m.tail.syscall(o.id, o.pid, r.ts-o.ts, int64(r.x))
		}
		*o = sysOpen{}
	}
}

func (m *merger) sum(pid uint32) *procSums {
	p := m.sums.at(pid)
	if *p == nil {
		*p = &procSums{}
		m.sums.used = append(m.sums.used, pid)
	}
	return *p
}

func pidLabel(pid uint32) Label { return Label{"pid", strconv.Itoa(int(pid))} }

// sched advances the scheduling state machine by one record.
func (m *merger) sched(r *rec) {
	a, f := m.a, m.a.filter
	if r.kind == rWake {
		if r.a == 0 {
			return
		}
		t := m.tasks.at(r.a)
		if r.b != 0 {
			t.pid = r.b
		}
		// A wakeup of a task already runnable or running changes nothing.
		if t.onSince == 0 && t.runnable == 0 {
			t.runnable, t.woken = r.ts, true
		}
		return
	}
	cpuOK := f.cpu(int(r.cpu))
	for int(r.cpu) >= len(m.current) {
		m.current = append(m.current, 0)
	}
	cur := &m.current[r.cpu]
	seen := *cur == 0 || *cur-1 == r.tid
	if !seen && *cur-1 != 0 {
		// The task the CPU last switched to left it unseen.
		if gone := m.tasks.at(*cur - 1); gone.onSince != 0 && gone.cpu == r.cpu {
			gone.onSince, gone.runnable, gone.offSince = 0, 0, 0
		}
	}
	*cur = r.a + 1
	// The task switching out.
	if r.tid != 0 {
		t := m.tasks.at(r.tid)
		t.pid = r.pid
		keep := cpuOK && f.task(r.tid, r.pid)
		if t.onSince != 0 && r.ts >= t.onSince && keep && seen && t.cpu == r.cpu {
			d := r.ts - t.onSince
			if a.hot.on {
				m.on.record(a.m, r.pid, d)
			}
			m.sum(r.pid).onCPU += d
		}
		t.onSince = 0
		if kinds.TaskRunnable(uint64(r.state)) {
			t.runnable, t.offSince, t.woken = r.ts, 0, false
		} else {
			t.offSince, t.offState, t.runnable = r.ts, r.state, 0
		}
	}
	// The task switching in.
	if r.a == 0 {
		return
	}
	t := m.tasks.at(r.a)
	keep := cpuOK && f.task(r.a, t.pid)
	if t.runnable != 0 && r.ts >= t.runnable && keep {
		d := r.ts - t.runnable
		if a.hot.runq && t.woken {
			m.runq.record(a.m, t.pid, d)
			for int(r.cpu) >= len(m.runqCPU) {
				m.runqCPU = append(m.runqCPU, nil)
			}
			if m.runqCPU[r.cpu] == nil {
				m.runqCPU[r.cpu] = hist.New(a.m)
			}
			m.runqCPU[r.cpu].Record(d)
		}
		if t.pid != 0 {
			m.sum(t.pid).runq += d
		}
	}
	if t.offSince != 0 && r.ts >= t.offSince && keep {
		d := r.ts - t.offSince
		if a.hot.off {
			m.off.record(a.m, t.pid, d)
			m.offState(t.offState).Record(d)
		}
		if t.pid != 0 {
			m.sum(t.pid).offCPU += d
		}
	}
	t.onSince, t.runnable, t.offSince, t.woken, t.cpu = r.ts, 0, 0, false, r.cpu
}

// offState returns the off-CPU histogram of a task state.
func (m *merger) offState(state uint16) *hist.Histogram {
	for _, s := range m.offBy {
		if s.state == state {
			return s.h
		}
	}
	h := hist.New(m.a.m)
	m.offBy = append(m.offBy, stateHist{state, h})
	return h
}

// bioEvent pairs a request's issue with its completion.
func (m *merger) bioEvent(r *rec) {
	if r.kind == rIssue {
		m.bio[r.x] = *r
		return
	}
	is, ok := m.bio[r.x]
	if !ok || r.ts < is.ts {
		return
	}
	delete(m.bio, r.x)
	if !m.a.hot.bioLat || !m.a.filter.task(is.tid, is.pid) {
		return
	}
	d := r.ts - is.ts
	if m.bioAll == nil {
		m.bioAll = hist.New(m.a.m)
	}
	m.bioAll.Record(d)
	key := devOp{is.a, is.op}
	if m.bioDev[key] == nil {
		m.bioDev[key] = hist.New(m.a.m)
	}
	m.bioDev[key].Record(d)
}

// collect pairs the leftovers and adds the merge's series to the result.
func (m *merger) collect(series map[string]*Series, res *Result) error {
	m.pairIRQs()
	if err := m.tail.collect(series, res); err != nil {
		return err
	}
	for _, s := range m.series() {
		if err := mergeSeries(series, s); err != nil {
			return err
		}
	}
	// Counters and per-pid series get the process's name.
	for _, s := range series {
		s.Labels = m.withComm(s.Labels)
	}
	merged := map[string]*Counter{}
	for _, c := range res.Counters {
		key := c.Name + "\x00" + c.Labels.key()
		if have, ok := merged[key]; ok {
			have.Value += c.Value
			continue
		}
		c := c
		merged[key] = &c
	}
	res.Counters = res.Counters[:0]
	for _, c := range merged {
		c.Labels = m.withComm(c.Labels)
		res.Counters = append(res.Counters, *c)
	}
	return nil
}

// comm names a process: its name in the process table taken at snapshot
// time, else the name it last switched out under.
func (m *merger) comm(pid uint32) string {
	if c, ok := m.a.procs()[pid]; ok {
		return c
	}
	return m.comms[pid].comm
}

func (m *merger) withComm(l Labels) Labels {
	p := l.Get("pid")
	if p == "" || l.Get("comm") != "" {
		return l
	}
	pid, _ := strconv.Atoi(p)
	comm := m.comm(uint32(pid))
	if comm == "" {
		return l
	}
	out := append(Labels{}, l...)
	return append(out, Label{"comm", comm})
}

// series are the merge's histograms, labelled.
func (m *merger) series() []*Series {
	var out []*Series
	add := func(name, unit string, h *hist.Histogram, labels ...Label) {
		if h != nil && h.Count() > 0 {
			out = append(out, &Series{Name: name, Labels: labels, Unit: unit, Hist: h})
		}
	}
	for _, p := range []struct {
		name string
		h    *perPID
	}{{RunqLatency, &m.runq}, {OffCPU, &m.off}, {OnCPU, &m.on}} {
		all := hist.New(m.a.m)
		for _, pid := range p.h.pids.used {
			h, _ := p.h.pids.get(pid)
			all.Merge(h)
			add(p.name, UnitNanoseconds, h, Label{"by", "process"}, pidLabel(pid))
		}
		add(p.name, UnitNanoseconds, all, Label{"by", "all"})
	}
	for cpu, h := range m.runqCPU {
		add(RunqLatency, UnitNanoseconds, h, Label{"by", "cpu"}, Label{"cpu", strconv.Itoa(cpu)})
	}
	for _, s := range m.offBy {
		add(OffCPU, UnitNanoseconds, s.h, Label{"by", "state"}, Label{"state", kinds.TaskState.Label(nil, int64(s.state))})
	}
	add(BioLatency, UnitNanoseconds, m.bioAll, Label{"by", "all"})
	for k, h := range m.bioDev {
		add(BioLatency, UnitNanoseconds, h, Label{"by", "device"}, Label{"dev", devName(k.dev)}, Label{"op", string(k.op)})
	}
	return out
}

// pairIRQs matches interrupt entries and exits a chunk boundary split.
func (m *merger) pairIRQs() {
	sort.Slice(m.irqs, func(i, j int) bool {
		a, b := m.irqs[i], m.irqs[j]
		if a.cpu != b.cpu || a.soft != b.soft || a.num != b.num {
			return a.cpu < b.cpu || a.cpu == b.cpu && (!a.soft && b.soft || a.soft == b.soft && a.num < b.num)
		}
		return a.ts < b.ts
	})
	for i := 0; i+1 < len(m.irqs); i++ {
		e, x := m.irqs[i], m.irqs[i+1]
		if e.entry && !x.entry && e.cpu == x.cpu && e.soft == x.soft && e.num == x.num && x.ts >= e.ts {
			if e.soft {
				m.tail.softirq(int(e.num), x.ts-e.ts)
			} else {
				m.tail.irq(e.num, e.name, x.ts-e.ts)
			}
			i++
		}
	}
}

// processes sums up each process over workers and the merge.
func (m *merger) processes(ws []*worker) []Process {
	all := map[uint32]*Process{}
	get := func(pid uint32) *Process {
		p := all[pid]
		if p == nil {
			p = &Process{PID: pid, Comm: m.comm(pid)}
			all[pid] = p
		}
		return p
	}
	for _, w := range append(ws, m.tail) {
		for _, pid := range w.procs.used {
			a, _ := w.procs.get(pid)
			p := get(pid)
			p.Syscalls += a.syscalls
			p.SyscallNS += a.sysNS
			p.Errors += a.errors
			p.IOOps += a.ioOps
			p.IOBytes += a.ioBytes
			p.Faults += a.faults
		}
	}
	for _, pid := range m.sums.used {
		s, _ := m.sums.get(pid)
		p := get(pid)
		p.OnCPU += s.onCPU
		p.OffCPU += s.offCPU
		p.RunqWait += s.runq
	}
	var out []Process
	for pid, p := range all {
		if pid != 0 && m.a.filter.task(pid, pid) {
			out = append(out, *p)
		}
	}
	return out
}

// errnoName labels an errno: its name, or its number.
func errnoName(errno int) string {
	if name := kinds.ErrnoRet.ValueName(nil, uint64(-int64(errno))); name != "" {
		return name
	}
	return strconv.Itoa(errno)
}
