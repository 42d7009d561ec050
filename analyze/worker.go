package analyze

import (
	"errors"
	"strconv"

	"github.com/rewindtrace/rewind/analyze/hist"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// recKind says what a merge record is.
type recKind uint8

const (
	rNone     recKind = iota // cancelled
	rSwitch                  // tid/pid switch out, a switches in; state
	rWake                    // tid/pid wakes a (its pid b)
	rIssue                   // pid issues block request x on device a, b bytes; op
	rComplete                // request x on device a completes; err
	rEnter                   // tid/pid entered syscall a
	rExit                    // tid/pid left syscall a, returning x, with no enter in its chunk
)

// rec is one record the merge walks in time order across CPUs: what
// needs both sides of a CPU, or of a chunk, to be paired.
type rec struct {
	ts       uint64
	x        uint64 // block request address; syscall return value
	tid, pid uint32
	a, b     uint32 // see recKind
	state    uint16 // prev_state (switches)
	cpu      uint16
	kind     recKind
	op       byte  // R, W, D, F or N (block requests)
	err      uint8 // block completions
}

type irqRec struct {
	ts    uint64
	cpu   int
	num   int32 // irq number, or softirq vector
	soft  bool
	entry bool
	name  string
}

// commRec is a process's name as a chunk last saw it: its main thread's
// name when main, else one of its threads'.
type commRec struct {
	pid  uint32
	comm string
	main bool
}

// maxSyscall bounds the syscall numbers histograms are kept for by number;
// larger ones (none on x86_64 and arm64) share the last.
const maxSyscall = 1024

// worker analyses chunks; what it accumulates is merged when all are done.
// It is used by one goroutine.
type worker struct {
	a *analyzer
	c snapshot.Chunk

	// Per chunk, cleared after each.
	sysOpen  table[sysOpen]
	irqOpen  [1024]irqOpen
	softOpen [16]irqOpen
	comms    table[int32] // index+1 of each pid's entry in the output's comms

	// Accumulated.
	sysCount   [maxSyscall]uint64
	sysErrors  map[uint64]uint64 // nr << 16 | errno
	sysByPID   table[*sysHists]
	procs      table[*procAgg]
	irqHist    map[irqKey]*hist.Histogram
	strs       map[string]string // interned names
	softHist   [16]*hist.Histogram
	bioSize    map[devOp]*hist.Histogram
	faults     table[[2]uint64] // by pid: user, kernel
	typeCounts []uint64
	events     uint64
	lost       uint64
	lostByCPU  map[int]uint64
	damaged    int
	first      uint64
	last       uint64
}

type sysOpen struct {
	ts       uint64
	id       int32
	pid      uint32
	rec      int32 // the enter's record in the chunk's output
	ok       bool
	seen     bool // in the table's used list
	switched bool // switched out since, or switches not recorded
}

// sysHists are one process's syscall latencies by syscall number, in pages
// allocated as numbers are first seen.
type sysHists [maxSyscall / 64]*[64]*hist.Histogram

func (s *sysHists) at(nr int) **hist.Histogram {
	p := &s[nr/64]
	if *p == nil {
		*p = new([64]*hist.Histogram)
	}
	return &(*p)[nr%64]
}

// each calls fn for each syscall number with a histogram.
func (s *sysHists) each(fn func(nr int, h *hist.Histogram) error) error {
	for pi, p := range s {
		if p == nil {
			continue
		}
		for i, h := range p {
			if h != nil {
				if err := fn(pi*64+i, h); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// irqKey is an interrupt line and its handler's name.
type irqKey struct {
	num  int32
	name string
}

// intern returns b as a string, allocating once per distinct value.
func (w *worker) intern(b []byte) string {
	if s, ok := w.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	w.strs[s] = s
	return s
}

type irqOpen struct {
	ts   uint64
	name string
	ok   bool
}

// devOp keys block I/O by device and operation.
type devOp struct {
	dev uint32
	op  byte
}

// exactSizes is how many distinct request sizes bio_size counts exactly
// (requests are whole sectors up to the queue's limit, typically 1280 KiB:
// 2560 sizes, but far fewer in practice).
const exactSizes = 1024

// procAgg is what workers count per process.
type procAgg struct {
	syscalls, sysNS, errors, ioOps, ioBytes, faults uint64
}

func newWorker(a *analyzer) *worker {
	return &worker{a: a, sysErrors: map[uint64]uint64{}, irqHist: map[irqKey]*hist.Histogram{}, strs: map[string]string{},
		bioSize: map[devOp]*hist.Histogram{}, typeCounts: make([]uint64, len(a.kinds)), lostByCPU: map[int]uint64{}}
}

func (w *worker) newHist() *hist.Histogram { return hist.New(w.a.m) }

func (w *worker) proc(pid uint32) *procAgg {
	p := w.procs.at(pid)
	if *p == nil {
		*p = &procAgg{}
		w.procs.used = append(w.procs.used, pid)
	}
	return *p
}

// chunk reads and analyses one chunk into out.
func (w *worker) chunk(sec snapshot.Section, out *chunkOut) {
	out.reset(sec.CPU)
	c := &w.c
	if err := w.a.r.ReadChunkWant(sec, c, &w.a.decode); err != nil {
		var ce *snapshot.CorruptionError
		if errors.As(err, &ce) {
			w.damaged++ // reported by the reader's Damage
			return
		}
		out.err = err
		return
	}
	w.lost += c.Lost
	w.lostByCPU[c.CPU] += c.Lost
	a, ids, rng, f := w.a, &w.a.ids, w.a.rng, w.a.filter
	col := func(ev uint16, field int) *snapshot.Column {
		if ev == 0 || field < 0 {
			return nil
		}
		return c.Column(ev, field)
	}
	swNext, swState, swComm := col(ids.sw, ids.swNextTID), col(ids.sw, ids.swPrevState), col(ids.sw, ids.swPrevComm)
	wkTID, wkPID := col(ids.waking, ids.wkTargetTID), col(ids.waking, ids.wkTargetPID)
	wnTID, wnPID := col(ids.wakeNew, ids.wkTargetTID), col(ids.wakeNew, ids.wkTargetPID)
	enID, exID, exRet := col(ids.enter, ids.enterID), col(ids.exit, ids.exitID), col(ids.exit, ids.exitRet)
	irqE, irqName, irqX := col(ids.irqEntry, ids.irqEntryIRQ), col(ids.irqEntry, ids.irqEntryName), col(ids.irqExit, ids.irqExitIRQ)
	vecE, vecX := col(ids.softEntry, ids.vecE), col(ids.softExit, ids.vecX)
	cpu := uint16(c.CPU)
	// Scheduling and block records go to the merge whatever the CPU
	// selection: a wakeup on one CPU pairs with a switch on another.
	local := f.cpu(c.CPU)

	for i, n := 0, c.Len(); i < n; i++ {
		ts := c.TS[i]
		if ts < rng.From || ts > rng.To {
			continue
		}
		t := c.Type[i]
		if int(t) >= len(a.kinds) {
			continue
		}
		w.events++
		w.typeCounts[t]++
		if w.first == 0 || ts < w.first {
			w.first = ts
		}
		w.last = max(w.last, ts)
		row := int(c.Row[i])
		tid, pid := c.TID[i], c.PID[i]
		switch a.kinds[t] {
		case kSwitch:
			if o := w.sysOpen.at(tid); o.ok {
				o.switched = true // it may run elsewhere before it returns
			}
			if swComm != nil && pid != 0 {
				// The name a process's main thread last switched out under
				// (exec renames), else any of its threads' names.
				name := swComm.Bytes(row)
				if k := w.comms.at(pid); *k == 0 {
					out.comms = append(out.comms, commRec{pid, w.intern(name), tid == pid})
					w.comms.set(pid, int32(len(out.comms)))
				} else if c := &out.comms[*k-1]; tid == pid && (!c.main || c.comm != string(name)) {
					c.comm, c.main = w.intern(name), true
				}
			}
			if !a.hot.sched {
				continue
			}
			r := rec{ts: ts, kind: rSwitch, tid: tid, pid: pid, cpu: cpu}
			if swNext != nil {
				r.a = uint32(swNext.Uint(row))
			}
			if swState != nil {
				r.state = uint16(swState.Uint(row))
			}
			out.recs = append(out.recs, r)
		case kWaking:
			tc, pc := wkTID, wkPID
			if t == ids.wakeNew {
				tc, pc = wnTID, wnPID
			}
			if tc == nil {
				continue
			}
			r := rec{ts: ts, kind: rWake, tid: tid, pid: pid, cpu: cpu, a: uint32(tc.Uint(row))}
			if pc != nil {
				r.b = uint32(pc.Uint(row))
			}
			out.recs = append(out.recs, r)
		case kEnter:
			if !local || enID == nil || !f.task(tid, pid) {
				continue
			}
			// Every enter goes to the merge, in time order, unless its exit
			// turns up in this chunk, with the task on this CPU all along,
			// and cancels it: the merge pairs the others in time order over
			// all CPUs.
			nr := int32(enID.Int(row))
			o := w.sysOpen.at(tid)
			if !o.seen {
				w.sysOpen.used = append(w.sysOpen.used, tid)
			}
			*o = sysOpen{ts: ts, id: nr, pid: pid, ok: true, seen: true, switched: !a.switches, rec: int32(len(out.recs))}
			out.recs = append(out.recs, rec{ts: ts, kind: rEnter, tid: tid, pid: pid, a: uint32(nr)})
			w.sysCount[sysIndex(nr)]++
			w.proc(pid).syscalls++
		case kExit:
			if !local || exID == nil || exRet == nil || !f.task(tid, pid) {
				continue
			}
			nr, ret := int32(exID.Int(row)), exRet.Int(row)
			o := w.sysOpen.at(tid)
			if o.ok && !o.switched && o.id == nr && ts >= o.ts {
				w.syscall(nr, pid, ts-o.ts, ret)
				out.recs[o.rec].kind = rNone
				*o = sysOpen{seen: true}
				continue
			}
			*o = sysOpen{seen: o.seen}
			out.recs = append(out.recs, rec{ts: ts, kind: rExit, tid: tid, pid: pid, a: uint32(nr), x: uint64(ret)})
		case kIssue, kComplete:
			out.recs = append(out.recs, w.bio(c, i, t == ids.complete, local))
		case kIRQEntry:
			if irqE == nil || !local {
				continue
			}
			num := int32(irqE.Int(row))
			name := ""
			if irqName != nil {
				name = w.intern(irqName.Bytes(row))
			}
			if num < 0 || num >= int32(len(w.irqOpen)) {
				continue
			}
			w.irqOpen[num] = irqOpen{ts: ts, name: name, ok: true}
		case kIRQExit:
			if irqX == nil || !local {
				continue
			}
			num := int32(irqX.Int(row))
			if num < 0 || num >= int32(len(w.irqOpen)) {
				continue
			}
			if o := &w.irqOpen[num]; o.ok && ts >= o.ts {
				w.irq(num, o.name, ts-o.ts)
				*o = irqOpen{}
			} else {
				out.irqs = append(out.irqs, irqRec{ts: ts, cpu: c.CPU, num: num})
			}
		case kSoftEntry:
			if vecE == nil || !local {
				continue
			}
			if v := vecE.Uint(row); v < uint64(len(w.softOpen)) {
				w.softOpen[v] = irqOpen{ts: ts, ok: true}
			}
		case kSoftExit:
			if vecX == nil || !local {
				continue
			}
			v := vecX.Uint(row)
			if v >= uint64(len(w.softOpen)) {
				continue
			}
			if o := &w.softOpen[v]; o.ok && ts >= o.ts {
				w.softirq(int(v), ts-o.ts)
				*o = irqOpen{}
			} else {
				out.irqs = append(out.irqs, irqRec{ts: ts, cpu: c.CPU, num: int32(v), soft: true})
			}
		case kFaultUser, kFaultKernel:
			if !local || !f.task(tid, pid) {
				continue
			}
			fc := w.faults.at(pid)
			if fc[0]+fc[1] == 0 {
				w.faults.used = append(w.faults.used, pid)
			}
			if a.kinds[t] == kFaultUser {
				fc[0]++
			} else {
				fc[1]++
			}
			w.proc(pid).faults++
		}
	}
	w.sysOpen.reset()
	for num := range w.irqOpen {
		if o := &w.irqOpen[num]; o.ok {
			out.irqs = append(out.irqs, irqRec{ts: o.ts, cpu: c.CPU, num: int32(num), entry: true, name: o.name})
			*o = irqOpen{}
		}
	}
	for v := range w.softOpen {
		if o := &w.softOpen[v]; o.ok {
			out.irqs = append(out.irqs, irqRec{ts: o.ts, cpu: c.CPU, num: int32(v), soft: true, entry: true})
			*o = irqOpen{}
		}
	}
	w.comms.reset()
}

func sysIndex(nr int32) int {
	if nr < 0 || nr >= maxSyscall {
		return maxSyscall - 1
	}
	return int(nr)
}

// syscall counts one syscall that returned, d ns after it entered.
func (w *worker) syscall(nr int32, pid uint32, d uint64, ret int64) {
	if !w.a.hot.sys {
		return
	}
	// One histogram per process and syscall; the totals, by syscall and
	// by process, are merged from them at the end.
	i := sysIndex(nr)
	ph := w.sysByPID.at(pid)
	if *ph == nil {
		*ph = &sysHists{}
		w.sysByPID.used = append(w.sysByPID.used, pid)
	}
	h := (*ph).at(i)
	if *h == nil {
		*h = w.newHist()
	}
	(*h).Record(d)
	p := w.proc(pid)
	p.sysNS += d
	if ret < 0 && ret > -4096 {
		w.sysErrors[uint64(i)<<16|uint64(-ret)]++
		p.errors++
	}
}

func (w *worker) irq(num int32, name string, d uint64) {
	key := irqKey{num, name}
	h := w.irqHist[key]
	if h == nil {
		h = w.newHist()
		w.irqHist[key] = h
	}
	h.Record(d)
}

func (w *worker) softirq(vec int, d uint64) {
	if w.softHist[vec] == nil {
		w.softHist[vec] = w.newHist()
	}
	w.softHist[vec].Record(d)
}

// bio extracts a block request event and counts issued sizes.
func (w *worker) bio(c *snapshot.Chunk, i int, complete, local bool) rec {
	ids := &w.a.ids
	ev, dev, bytes, rwbs, rq := ids.issue, ids.rqDev, ids.rqBytes, ids.rqRWBS, ids.rqRQ
	if complete {
		ev, dev, bytes, rwbs, rq = ids.complete, ids.cDev, ids.cBytes, ids.cRWBS, ids.cRQ
	}
	row := int(c.Row[i])
	get := func(f int) uint64 {
		if col := c.Column(ev, f); col != nil {
			return col.Uint(row)
		}
		return 0
	}
	r := rec{ts: c.TS[i], kind: rIssue, x: get(rq), a: uint32(get(dev)), b: uint32(get(bytes)), tid: c.TID[i], pid: c.PID[i], op: 'N'}
	if col := c.Column(ev, rwbs); col != nil {
		r.op = rwOp(col.Bytes(row))
	}
	if complete {
		r.kind, r.err = rComplete, uint8(get(ids.cError))
		return r
	}
	if local && w.a.filter.task(c.TID[i], c.PID[i]) {
		if w.a.hot.bioSize {
			key := devOp{r.a, r.op}
			h := w.bioSize[key]
			if h == nil {
				h = hist.NewExact(w.a.m, exactSizes)
				w.bioSize[key] = h
			}
			h.Record(uint64(r.b))
		}
		p := w.proc(r.pid)
		p.ioOps++
		p.ioBytes += uint64(r.b)
	}
	return r
}

// rwOp is a request's operation from its rwbs letters: R, W, D(iscard),
// F(lush) or N.
func rwOp(rwbs []byte) byte {
	for _, b := range rwbs {
		switch b {
		case 'R', 'W', 'D':
			return b
		}
	}
	if len(rwbs) > 0 && rwbs[0] == 'F' {
		return 'F'
	}
	return 'N'
}

// devName labels a block device "major:minor".
func devName(dev uint32) string { return kinds.Dev.Label(nil, int64(dev)) }

// collect adds what the worker counted to the result.
func (w *worker) collect(series map[string]*Series, res *Result) error {
	a := w.a
	add := func(name string, unit string, h *hist.Histogram, labels ...Label) error {
		if h == nil || h.Count() == 0 {
			return nil
		}
		return mergeSeries(series, &Series{Name: name, Labels: labels, Unit: unit, Hist: h})
	}
	if a.want[SyscallLatency] {
		all, byNR := w.newHist(), make([]*hist.Histogram, maxSyscall)
		for _, pid := range w.sysByPID.used {
			sh, _ := w.sysByPID.get(pid)
			byPID := w.newHist()
			err := sh.each(func(nr int, h *hist.Histogram) error {
				if byNR[nr] == nil {
					byNR[nr] = w.newHist()
				}
				return errors.Join(all.Merge(h), byNR[nr].Merge(h), byPID.Merge(h))
			})
			if err != nil {
				return err
			}
			if err := add(SyscallLatency, UnitNanoseconds, byPID, Label{"by", "process"}, Label{"pid", strconv.Itoa(int(pid))}); err != nil {
				return err
			}
		}
		if err := add(SyscallLatency, UnitNanoseconds, all, Label{"by", "all"}); err != nil {
			return err
		}
		for nr, h := range byNR {
			if err := add(SyscallLatency, UnitNanoseconds, h, Label{"by", "syscall"}, Label{"syscall", a.syscallName(nr)}); err != nil {
				return err
			}
		}
		for nr, n := range w.sysCount {
			if n > 0 {
				res.Counters = append(res.Counters, Counter{Name: "syscalls", Labels: Labels{{"syscall", a.syscallName(nr)}}, Value: n})
			}
		}
		for key, n := range w.sysErrors {
			res.Counters = append(res.Counters, Counter{Name: "syscall_errors",
				Labels: Labels{{"syscall", a.syscallName(int(key >> 16))}, {"errno", errnoName(int(key & 0xffff))}}, Value: n})
		}
	}
	if a.want[IRQ] {
		for key, h := range w.irqHist {
			if err := add(IRQ, UnitNanoseconds, h, Label{"irq", strconv.Itoa(int(key.num))}, Label{"name", key.name}); err != nil {
				return err
			}
		}
	}
	if a.want[Softirq] {
		for v, h := range w.softHist {
			if err := add(Softirq, UnitNanoseconds, h, Label{"vec", kinds.Softirq.Label(nil, int64(v))}); err != nil {
				return err
			}
		}
	}
	if a.want[BioSize] {
		for key, h := range w.bioSize {
			if err := add(BioSize, UnitBytes, h, Label{"dev", devName(key.dev)}, Label{"op", string(key.op)}); err != nil {
				return err
			}
		}
	}
	if a.want[Faults] {
		for _, pid := range w.faults.used {
			fc, _ := w.faults.get(pid)
			for k, n := range fc {
				if n > 0 {
					res.Counters = append(res.Counters, Counter{Name: "page_faults",
						Labels: Labels{{"pid", strconv.Itoa(int(pid))}, {"kind", [2]string{"user", "kernel"}[k]}}, Value: n})
				}
			}
		}
	}
	return nil
}

// syscallName labels a syscall: its name on the recording machine, or its
// number.
func (a *analyzer) syscallName(nr int) string { return kinds.Syscall.Label(&a.env, int64(nr)) }
