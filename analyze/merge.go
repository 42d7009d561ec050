package analyze

import (
	"container/heap"
	"sort"
	"strconv"

	"github.com/rewindtrace/rewind/analyze/hist"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot"
)

// Scheduling states in the tracepoint's report encoding.
const (
	stateRunning   = 0     // R: switched out while runnable (yield)
	statePreempted = 0x100 // R+
)

// taskState is what the merge knows of a thread.
type taskState struct {
	pid      uint32
	onSince  uint64 // switched in at, 0 when not running
	runnable uint64 // runnable since (woken or preempted), 0 when not
	offSince uint64 // switched out not runnable at, 0 when not
	offState uint16
	// woken: runnable since a wakeup rather than a preemption. Only waits
	// after a wakeup are run-queue latency; all count as time runnable.
	woken bool
}

// procSums are the merge's per-process times.
type procSums struct {
	onCPU, offCPU, runq uint64
}

// merger walks the scheduling and block records of every chunk in time
// order across CPUs and pairs what workers could not.
type merger struct {
	a      *analyzer
	tasks  table[taskState]
	sums   table[*procSums]
	series map[string]*Series
	byCPU  map[uint16]*hist.Histogram
	bio    map[uint64]bioRec // issued requests by address
	sys    []sysRec
	irqs   []irqRec
	comms  map[uint32]string
	err    error
	// tail counts the pairs the merge completes, as a worker would.
	tail *worker
}

func newMerger(a *analyzer) *merger {
	return &merger{a: a, series: map[string]*Series{}, byCPU: map[uint16]*hist.Histogram{}, bio: map[uint64]bioRec{},
		comms: map[uint32]string{}, tail: newWorker(a)}
}

// stream is one CPU's chunks, as the merge walks them.
type stream struct {
	queue []int // chunk indexes, in time order
	cur   *chunkOut
	s, b  int // next sched and bio record
}

func (st *stream) next() uint64 {
	ts := ^uint64(0)
	if st.s < len(st.cur.sched) {
		ts = st.cur.sched[st.s].ts
	}
	if st.b < len(st.cur.bio) && st.cur.bio[st.b].ts < ts {
		ts = st.cur.bio[st.b].ts
	}
	return ts
}

type streams []*stream

func (h streams) Len() int           { return len(h) }
func (h streams) Less(i, j int) bool { return h[i].next() < h[j].next() }
func (h streams) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *streams) Push(x any)        { *h = append(*h, x.(*stream)) }
func (h *streams) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// walk consumes the chunks' outputs as workers finish them, releasing a
// slot of inFlight for each one done.
func (m *merger) walk(chunks []snapshot.Section, outs []chan *chunkOut, inFlight chan struct{}) error {
	byCPU := map[int]*stream{}
	var order []int
	for i, c := range chunks {
		st := byCPU[c.CPU]
		if st == nil {
			st = &stream{}
			byCPU[c.CPU] = st
			order = append(order, c.CPU)
		}
		st.queue = append(st.queue, i)
	}
	// load takes a stream's next chunk that has records, freeing the
	// empty ones; it returns false when the stream is done.
	load := func(st *stream) (bool, error) {
		for len(st.queue) > 0 {
			out := <-outs[st.queue[0]]
			st.queue = st.queue[1:]
			<-inFlight
			if out.err != nil {
				return false, out.err
			}
			m.take(out)
			if len(out.sched)+len(out.bio) > 0 {
				st.cur, st.s, st.b = out, 0, 0
				return true, nil
			}
		}
		return false, nil
	}
	var h streams
	for _, cpu := range order {
		st := byCPU[cpu]
		ok, err := load(st)
		if err != nil {
			return err
		}
		if ok {
			h = append(h, st)
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		st := h[0]
		if st.b < len(st.cur.bio) && (st.s >= len(st.cur.sched) || st.cur.bio[st.b].ts < st.cur.sched[st.s].ts) {
			m.bioEvent(st.cur.bio[st.b])
			st.b++
		} else {
			m.sched(&st.cur.sched[st.s])
			st.s++
		}
		if st.s >= len(st.cur.sched) && st.b >= len(st.cur.bio) {
			ok, err := load(st)
			if err != nil {
				return err
			}
			if !ok {
				heap.Pop(&h)
				continue
			}
		}
		heap.Fix(&h, 0)
	}
	return m.err
}

// take keeps what a chunk's worker left unpaired.
func (m *merger) take(out *chunkOut) {
	m.sys = append(m.sys, out.sys...)
	m.irqs = append(m.irqs, out.irqs...)
	for _, c := range out.comms {
		m.comms[c.pid] = c.comm
	}
}

func (m *merger) hist(name, unit string, labels ...Label) *hist.Histogram {
	s := &Series{Name: name, Labels: labels, Unit: unit}
	key := name + "\x00" + Labels(labels).key()
	if have, ok := m.series[key]; ok {
		return have.Hist
	}
	s.Hist = hist.New(m.a.m)
	m.series[key] = s
	return s.Hist
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
func (m *merger) sched(r *schedRec) {
	a, f := m.a, m.a.filter
	if r.wake {
		if r.other == 0 {
			return
		}
		t := m.tasks.at(r.other)
		if r.otherPID != 0 {
			t.pid = r.otherPID
		}
		// A wakeup of a task already runnable or running changes nothing.
		if t.onSince == 0 && t.runnable == 0 {
			t.runnable, t.woken = r.ts, true
		}
		return
	}
	cpuOK := f.cpu(int(r.cpu))
	// The task switching out.
	if r.tid != 0 {
		t := m.tasks.at(r.tid)
		t.pid = r.pid
		keep := cpuOK && f.task(r.tid, r.pid)
		if t.onSince != 0 && r.ts >= t.onSince && keep {
			d := r.ts - t.onSince
			if a.want[OnCPU] {
				m.hist(OnCPU, UnitNanoseconds, Label{"by", "all"}).Record(d)
				m.hist(OnCPU, UnitNanoseconds, Label{"by", "process"}, pidLabel(r.pid)).Record(d)
			}
			m.sum(r.pid).onCPU += d
		}
		t.onSince = 0
		if r.state == stateRunning || r.state == statePreempted {
			t.runnable, t.offSince, t.woken = r.ts, 0, false
		} else {
			t.offSince, t.offState, t.runnable = r.ts, r.state, 0
		}
	}
	// The task switching in.
	if r.other == 0 {
		return
	}
	t := m.tasks.at(r.other)
	keep := cpuOK && f.task(r.other, t.pid)
	if t.runnable != 0 && r.ts >= t.runnable && keep {
		d := r.ts - t.runnable
		if a.want[RunqLatency] && t.woken {
			m.hist(RunqLatency, UnitNanoseconds, Label{"by", "all"}).Record(d)
			h := m.byCPU[r.cpu]
			if h == nil {
				h = m.hist(RunqLatency, UnitNanoseconds, Label{"by", "cpu"}, Label{"cpu", strconv.Itoa(int(r.cpu))})
				m.byCPU[r.cpu] = h
			}
			h.Record(d)
			if t.pid != 0 {
				m.hist(RunqLatency, UnitNanoseconds, Label{"by", "process"}, pidLabel(t.pid)).Record(d)
			}
		}
		if t.pid != 0 {
			m.sum(t.pid).runq += d
		}
	}
	if t.offSince != 0 && r.ts >= t.offSince && keep {
		d := r.ts - t.offSince
		if a.want[OffCPU] {
			m.hist(OffCPU, UnitNanoseconds, Label{"by", "all"}).Record(d)
			m.hist(OffCPU, UnitNanoseconds, Label{"by", "state"}, Label{"state", stateName(t.offState)}).Record(d)
			if t.pid != 0 {
				m.hist(OffCPU, UnitNanoseconds, Label{"by", "process"}, pidLabel(t.pid)).Record(d)
			}
		}
		if t.pid != 0 {
			m.sum(t.pid).offCPU += d
		}
	}
	t.onSince, t.runnable, t.offSince, t.woken = r.ts, 0, 0, false
}

// stateName names a report-encoded task state as ftrace prints it.
func stateName(s uint16) string {
	switch s {
	case stateRunning:
		return "R"
	case statePreempted:
		return "R+"
	}
	const letters = "SDTtXZPI"
	for i := 0; i < len(letters); i++ {
		if s == 1<<i {
			return letters[i : i+1]
		}
	}
	return "0x" + strconv.FormatUint(uint64(s), 16)
}

// bioEvent pairs a request's issue with its completion.
func (m *merger) bioEvent(r bioRec) {
	if !r.complete {
		m.bio[r.rq] = r
		return
	}
	is, ok := m.bio[r.rq]
	if !ok || r.ts < is.ts {
		return
	}
	delete(m.bio, r.rq)
	if !m.a.want[BioLatency] || !m.a.filter.task(is.pid, is.pid) {
		return
	}
	d := r.ts - is.ts
	m.hist(BioLatency, UnitNanoseconds, Label{"by", "all"}).Record(d)
	m.hist(BioLatency, UnitNanoseconds, Label{"by", "device"}, Label{"dev", devName(is.dev)}, Label{"op", string(is.op)}).Record(d)
}

// collect pairs the leftovers and adds the merge's series to the result.
func (m *merger) collect(series map[string]*Series, res *Result) error {
	m.pairSyscalls()
	m.pairIRQs()
	if err := m.tail.collect(series, res); err != nil {
		return err
	}
	for _, s := range m.series {
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
	return m.comms[pid]
}

func (m *merger) withComm(l Labels) Labels {
	p := l.Get("pid")
	if p == "" || l.Get("comm") != "" {
		return l
	}
	pid, _ := strconv.Atoi(p)
	out := append(Labels{}, l...)
	return append(out, Label{"comm", m.comm(uint32(pid))})
}

// pairSyscalls matches the enters and exits chunks left open: migrated
// tasks, chunk boundaries.
func (m *merger) pairSyscalls() {
	if !m.a.want[SyscallLatency] && !m.a.want[Processes] {
		return
	}
	sort.Slice(m.sys, func(i, j int) bool {
		if m.sys[i].tid != m.sys[j].tid {
			return m.sys[i].tid < m.sys[j].tid
		}
		return m.sys[i].ts < m.sys[j].ts
	})
	for i := 0; i+1 < len(m.sys); i++ {
		e, x := m.sys[i], m.sys[i+1]
		if e.enter && !x.enter && e.tid == x.tid && e.id == x.id {
			m.tail.syscall(e.id, e.pid, x.ts-e.ts, x.ret)
			i++
		}
	}
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

func errnoName(errno int) string {
	if name := sysx.ErrnoName(errno); name != "" {
		return name
	}
	return strconv.Itoa(errno)
}
