package analyze

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/rewindtrace/rewind/analyze/hist"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// Analyses, by the names --only takes.
const (
	RunqLatency    = "runq_latency"
	OffCPU         = "offcpu"
	OnCPU          = "oncpu"
	SyscallLatency = "syscall_latency"
	BioLatency     = "bio_latency"
	BioSize        = "bio_size"
	IRQ            = "irq"
	Softirq        = "softirq"
	Faults         = "faults"
	Processes      = "processes"
	CounterRates   = "counters"
	StackProfile   = "profile"
)

// All lists every analysis.
var All = []string{RunqLatency, OffCPU, OnCPU, SyscallLatency, BioLatency, BioSize, IRQ, Softirq, Faults, Processes, CounterRates, StackProfile}

// needs lists, per analysis, the events it cannot do without.
// An analysis needs each of its lists: one of the events in it.
var needs = map[string][][]string{
	RunqLatency:    {{kinds.SchedSwitch}, {kinds.SchedWaking}},
	OffCPU:         {{kinds.SchedSwitch}},
	OnCPU:          {{kinds.SchedSwitch}},
	SyscallLatency: pairNeeds(kinds.SysEnter),
	BioLatency:     pairNeeds(kinds.BlockRqIssue),
	BioSize:        {{kinds.BlockRqIssue}},
	IRQ:            pairNeeds(kinds.IRQHandlerEntry),
	Softirq:        pairNeeds(kinds.SoftirqEntry),
	Faults:         {{kinds.PageFaultUser, kinds.PageFaultKernel}},
	StackProfile:   {stackEvents},
}

// pairNeeds is what an analysis of the spans between a pair's begin and
// end events needs: both of them (kinds.Pairs).
func pairNeeds(begin string) [][]string {
	p := kinds.PairOf(begin)
	return [][]string{{p.Begin}, {p.End}}
}

// stackEvents are the events the profile reads.
var stackEvents = []string{kinds.CPUSample, kinds.OffCPUSample}

// Options select what to analyse.
type Options struct {
	// Only names the analyses to run; empty means all.
	Only []string
	// Error is the histograms' largest relative error (0: hist.DefaultError).
	Error float64
	// PIDs, TIDs and Comms keep the events of those processes, threads and
	// task names: the task an event is about (the woken or switched task
	// for scheduling analyses, the calling task otherwise).
	PIDs, TIDs []uint32
	Comms      []string
	// CPUs keeps events of those CPUs (empty: all).
	CPUs []int
	// Range keeps events in it; the zero Range means all.
	Range snapshot.Range
	// Workers decode and analyse chunks in parallel (0: GOMAXPROCS).
	Workers int
}

// CheckNames returns an error naming the first of names that is not an
// analysis.
func CheckNames(names []string) error {
	for _, name := range names {
		if !slices.Contains(All, name) {
			return fmt.Errorf("unknown analysis %q; analyses: %s", name, strings.Join(All, ", "))
		}
	}
	return nil
}

// Run analyses r.
func Run(r *snapshot.Reader, opts Options) (*Result, error) {
	a, err := newAnalyzer(r, opts)
	if err != nil {
		return nil, err
	}
	return a.run()
}

// analyzer holds what every worker shares, read-only once built.
type analyzer struct {
	r    *snapshot.Reader
	opts Options
	m    int
	want map[string]bool
	// hot: the wants the per-event paths test, without a map lookup.
	hot struct{ sched, runq, off, on, sys, bioLat, bioSize bool }
	// switches: the snapshot recorded every sched_switch, so a task that
	// did not switch out between a syscall's enter and exit on a CPU did
	// not migrate.
	switches bool
	ids      eventIDs
	kinds    []kind // by event id
	decode   snapshot.Want
	env      kinds.Env // names syscalls for the recording machine
	filter   *filter
	rng      snapshot.Range

	procOnce sync.Once
	procComm map[uint32]string
}

func newAnalyzer(r *snapshot.Reader, opts Options) (*analyzer, error) {
	a := &analyzer{r: r, opts: opts, want: map[string]bool{}, env: kinds.Env{Machine: r.Meta().Kernel.Machine, Enums: r.Meta()}}
	e := opts.Error
	if e == 0 {
		e = hist.DefaultError
	}
	var err error
	if a.m, err = hist.MBits(e); err != nil {
		return nil, err
	}
	only := opts.Only
	if len(only) == 0 {
		only = All
	}
	if err := CheckNames(only); err != nil {
		return nil, err
	}
	for _, name := range only {
		a.want[name] = true
	}
	a.hot.runq, a.hot.off, a.hot.on = a.want[RunqLatency], a.want[OffCPU], a.want[OnCPU]
	a.hot.sys = a.want[SyscallLatency] || a.want[Processes]
	a.hot.bioLat, a.hot.bioSize = a.want[BioLatency], a.want[BioSize]
	a.rng = opts.Range
	if a.rng == (snapshot.Range{}) {
		a.rng = snapshot.All
	}
	a.resolve(r.Schema())
	if a.filter, err = newFilter(r, opts); err != nil {
		return nil, err
	}
	return a, nil
}

// chunkOut is what a worker hands the merge pass for one chunk. The merge
// hands it back for reuse when done with it.
type chunkOut struct {
	cpu   int
	recs  []rec    // in time order
	irqs  []irqRec // interrupt halves the chunk could not pair
	comms []commRec
	err   error
}

func (o *chunkOut) reset(cpu int) {
	o.cpu, o.err = cpu, nil
	o.recs, o.irqs, o.comms = o.recs[:0], o.irqs[:0], o.comms[:0]
}

func (a *analyzer) run() (*Result, error) {
	var chunks []snapshot.Section
	for _, c := range a.r.Chunks() {
		if c.LastTS < a.rng.From || c.FirstTS > a.rng.To {
			continue
		}
		chunks = append(chunks, c)
	}
	// Dispatch in time order, so that the merge, which walks time, needs
	// few chunks at once.
	sort.SliceStable(chunks, func(i, j int) bool { return chunks[i].FirstTS < chunks[j].FirstTS })
	workers := a.opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	outs := make([]chan *chunkOut, len(chunks))
	for i := range outs {
		outs[i] = make(chan *chunkOut, 1)
	}
	inFlight := make(chan struct{}, 2*workers+2)
	free := make(chan *chunkOut, cap(inFlight)+workers)
	jobs := make(chan int)
	stop := make(chan struct{})
	ws := make([]*worker, workers)
	var wg sync.WaitGroup
	for i := range ws {
		ws[i] = newWorker(a)
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			for j := range jobs {
				var out *chunkOut
				select {
				case out = <-free:
				default:
					out = &chunkOut{}
				}
				w.chunk(chunks[j], out)
				outs[j] <- out
			}
		}(ws[i])
	}
	go func() {
		defer close(jobs)
		for j := range chunks {
			select {
			case inFlight <- struct{}{}:
			case <-stop:
				return
			}
			select {
			case jobs <- j:
			case <-stop:
				return
			}
		}
	}()
	m := newMerger(a, free)
	err := m.walk(chunks, outs, inFlight)
	close(stop) // the dispatcher stops; workers finish what they hold
	wg.Wait()
	if err != nil {
		return nil, err
	}
	res := &Result{Skipped: map[string]string{}}
	series := map[string]*Series{}
	for _, w := range ws {
		if err := w.collect(series, res); err != nil {
			return nil, err
		}
	}
	if err := m.collect(series, res); err != nil {
		return nil, err
	}
	if a.want[CounterRates] {
		if res.Rates, err = a.rates(); err != nil {
			return nil, err
		}
	}
	if a.want[StackProfile] && a.stackSamples(ws) {
		if res.Profiles, err = a.profiles(m.comm); err != nil {
			return nil, err
		}
	}
	a.finish(res, series, ws, m)
	return res, nil
}

// stackSamples reports whether the pass over the chunks met any stack
// sample: the profile takes a pass of its own only then.
func (a *analyzer) stackSamples(ws []*worker) bool {
	for _, name := range stackEvents {
		if e := a.r.Schema().ByName(name); e != nil {
			for _, w := range ws {
				if int(e.ID) < len(w.typeCounts) && w.typeCounts[e.ID] > 0 {
					return true
				}
			}
		}
	}
	return false
}

// finish fills the result's summary and says which analyses had nothing.
func (a *analyzer) finish(res *Result, series map[string]*Series, ws []*worker, m *merger) {
	counts := map[string]uint64{}
	res.LostByCPU = map[int]uint64{}
	for _, w := range ws {
		res.Events += w.events
		res.Lost += w.lost
		for cpu, n := range w.lostByCPU {
			res.LostByCPU[cpu] += n
		}
		res.Damaged += w.damaged
		for id, n := range w.typeCounts {
			if e := a.r.Schema().ByID(uint16(id)); e != nil && n > 0 {
				counts[e.Name] += n
			}
		}
		if w.first != 0 && (res.FirstNS == 0 || w.first < res.FirstNS) {
			res.FirstNS = w.first
		}
		res.LastNS = max(res.LastNS, w.last)
	}
	for _, name := range All {
		if !a.want[name] {
			continue
		}
		for _, need := range needs[name] {
			have := false
			for _, alt := range need {
				have = have || counts[alt] > 0
			}
			if !have {
				res.Skipped[name] = fmt.Sprintf("no %s events in the snapshot (or the selection)", strings.Join(need, " or "))
				break
			}
		}
	}
	for _, s := range series {
		if _, skipped := res.Skipped[s.Name]; !skipped && s.Hist.Count() > 0 {
			res.Histograms = append(res.Histograms, s)
		}
	}
	if a.want[Processes] {
		res.Processes = m.processes(ws)
		if len(res.Processes) == 0 {
			res.Skipped[Processes] = "no events of any process in the snapshot (or the selection)"
		}
	}
	// An analysis whose events are there but none of them selected, or
	// none of them complete (an exit without its enter), says so too.
	have := map[string]bool{}
	for _, s := range res.Histograms {
		have[s.Name] = true
	}
	for _, c := range res.Counters {
		if c.Name == "page_faults" {
			have[Faults] = true
		}
	}
	have[CounterRates] = len(res.Rates) > 0
	have[StackProfile] = len(res.Profiles) > 0
	if a.want[CounterRates] && len(a.r.SeriesSections()) == 0 {
		res.Skipped[CounterRates] = "no counter series in the snapshot (recorded with --counters none, or by a rewind before format 1.1)"
	}
	for _, name := range All {
		if _, skipped := res.Skipped[name]; a.want[name] && name != Processes && !skipped && !have[name] {
			res.Skipped[name] = "no samples in the selection"
		}
	}
	res.sortResult()
}

// eventIDs are the ids of the events the analyses read, 0 when the
// snapshot's schema lacks them, and their fields' indexes.
type eventIDs struct {
	sw, waking, wakeNew                         uint16
	swPrevComm, swNextTID, swPrevState          int
	wkTargetTID, wkTargetPID                    int
	enter, exit                                 uint16
	enterID, exitID, exitRet                    int
	issue, complete                             uint16
	rqDev, rqBytes, rqRWBS, rqRQ, cDev, cBytes  int
	cRWBS, cRQ, cError                          int
	irqEntry, irqExit, softEntry, softExit      uint16
	irqEntryIRQ, irqEntryName, irqExitIRQ, vecE int
	vecX                                        int
	faultUser, faultKernel                      uint16
}

// kind is what the worker does with an event.
type kind uint8

const (
	kNone kind = iota
	kSwitch
	kWaking
	kEnter
	kExit
	kIssue
	kComplete
	kIRQEntry
	kIRQExit
	kSoftEntry
	kSoftExit
	kFaultUser
	kFaultKernel
)

// resolve finds the events and fields in the file's schema and what to
// decode.
func (a *analyzer) resolve(s *schema.Schema) {
	id := func(name string) uint16 {
		if e := s.ByName(name); e != nil {
			return e.ID
		}
		return 0
	}
	field := func(event, name string) int {
		if e := s.ByName(event); e != nil {
			return e.Field(name)
		}
		return -1
	}
	i := &a.ids
	i.sw, i.waking, i.wakeNew = id(kinds.SchedSwitch), id(kinds.SchedWaking), id(kinds.SchedWakeupNew)
	i.swPrevComm = field(kinds.SchedSwitch, kinds.FieldPrevComm)
	i.swNextTID = field(kinds.SchedSwitch, kinds.FieldNextTID)
	i.swPrevState = field(kinds.SchedSwitch, kinds.FieldPrevState)
	i.wkTargetTID, i.wkTargetPID = field(kinds.SchedWaking, kinds.FieldTargetTID), field(kinds.SchedWaking, kinds.FieldTargetPID)
	i.enter, i.exit = id(kinds.SysEnter), id(kinds.SysExit)
	i.enterID, i.exitID, i.exitRet = field(kinds.SysEnter, kinds.FieldID), field(kinds.SysExit, kinds.FieldID), field(kinds.SysExit, kinds.FieldRet)
	i.issue, i.complete = id(kinds.BlockRqIssue), id(kinds.BlockRqComplete)
	i.rqDev, i.rqBytes = field(kinds.BlockRqIssue, kinds.FieldDev), field(kinds.BlockRqIssue, kinds.FieldBytes)
	i.rqRWBS, i.rqRQ = field(kinds.BlockRqIssue, kinds.FieldRWBS), field(kinds.BlockRqIssue, kinds.FieldRQ)
	i.cDev, i.cBytes = field(kinds.BlockRqComplete, kinds.FieldDev), field(kinds.BlockRqComplete, kinds.FieldBytes)
	i.cRWBS, i.cRQ = field(kinds.BlockRqComplete, kinds.FieldRWBS), field(kinds.BlockRqComplete, kinds.FieldRQ)
	i.cError = field(kinds.BlockRqComplete, kinds.FieldError)
	i.irqEntry, i.irqExit = id(kinds.IRQHandlerEntry), id(kinds.IRQHandlerExit)
	i.softEntry, i.softExit = id(kinds.SoftirqEntry), id(kinds.SoftirqExit)
	i.irqEntryIRQ, i.irqEntryName = field(kinds.IRQHandlerEntry, kinds.FieldIRQ), field(kinds.IRQHandlerEntry, kinds.FieldName)
	i.irqExitIRQ = field(kinds.IRQHandlerExit, kinds.FieldIRQ)
	i.vecE, i.vecX = field(kinds.SoftirqEntry, kinds.FieldVec), field(kinds.SoftirqExit, kinds.FieldVec)
	i.faultUser, i.faultKernel = id(kinds.PageFaultUser), id(kinds.PageFaultKernel)

	a.kinds = make([]kind, int(s.MaxID())+1)
	on := func(ev uint16, k kind, fields ...string) {
		if ev == 0 {
			return
		}
		a.kinds[ev] = k
		e := s.ByID(ev)
		for _, f := range fields {
			a.decode.Field(s, e.Name, f)
		}
	}
	a.hot.sched = a.want[RunqLatency] || a.want[OffCPU] || a.want[OnCPU] || a.want[Processes]
	if a.hot.sched {
		on(i.sw, kSwitch, kinds.FieldPrevComm, kinds.FieldNextTID, kinds.FieldPrevState)
		on(i.waking, kWaking, kinds.FieldTargetTID, kinds.FieldTargetPID)
		if i.wakeNew != 0 && s.ByID(i.wakeNew).Field(kinds.FieldTargetTID) >= 0 {
			on(i.wakeNew, kWaking, kinds.FieldTargetTID, kinds.FieldTargetPID)
		}
	}
	// Switches name processes that exited before the snapshot, for every
	// per-process output.
	on(i.sw, kSwitch, kinds.FieldPrevComm)
	if a.hot.sys {
		// A syscall pairs within its chunk only if its task stayed on
		// the CPU in between, which only recorded switches can tell.
		a.switches = i.sw != 0 && slices.Contains(a.r.Meta().Recording.Events, kinds.SchedSwitch)
		on(i.enter, kEnter, kinds.FieldID)
		on(i.exit, kExit, kinds.FieldID, kinds.FieldRet)
	}
	if a.want[BioLatency] || a.want[BioSize] || a.want[Processes] {
		rq := []string{kinds.FieldDev, kinds.FieldBytes, kinds.FieldRWBS, kinds.FieldRQ}
		on(i.issue, kIssue, rq...)
		on(i.complete, kComplete, append(rq, kinds.FieldError)...)
	}
	if a.want[IRQ] {
		on(i.irqEntry, kIRQEntry, kinds.FieldIRQ, kinds.FieldName)
		on(i.irqExit, kIRQExit, kinds.FieldIRQ)
	}
	if a.want[Softirq] {
		on(i.softEntry, kSoftEntry, kinds.FieldVec)
		on(i.softExit, kSoftExit, kinds.FieldVec)
	}
	if a.want[Faults] || a.want[Processes] {
		on(i.faultUser, kFaultUser)
		on(i.faultKernel, kFaultKernel)
	}
}

// mergeSeries adds s into the set, by name and labels.
func mergeSeries(set map[string]*Series, s *Series) error {
	key := s.Name + "\x00" + s.Labels.key()
	if have, ok := set[key]; ok {
		return have.Hist.Merge(s.Hist)
	}
	set[key] = s
	return nil
}

// procs returns the process names of the snapshot's process table.
func (a *analyzer) procs() map[uint32]string {
	a.procOnce.Do(func() {
		a.procComm = map[uint32]string{}
		for _, p := range a.r.Procs() {
			a.procComm[uint32(p.PID)] = p.Comm
		}
	})
	return a.procComm
}
