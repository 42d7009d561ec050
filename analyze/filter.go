package analyze

import (
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// filter is the task and CPU selection. Comm selection is resolved to
// thread ids from the process table and, for threads that exited before the
// snapshot, from their names in sched_switch events.
type filter struct {
	any   bool // a task selection is active
	pids  map[uint32]bool
	tids  map[uint32]bool
	comms map[string]bool
	cpus  map[int]bool
	// byComm holds the thread ids whose name matched.
	byComm table[bool]
}

func newFilter(r *snapshot.Reader, opts Options) (*filter, error) {
	f := &filter{pids: set(opts.PIDs), tids: set(opts.TIDs), comms: map[string]bool{}, cpus: map[int]bool{}}
	for _, c := range opts.Comms {
		f.comms[c] = true
	}
	for _, c := range opts.CPUs {
		f.cpus[c] = true
	}
	f.any = len(f.pids)+len(f.tids)+len(f.comms) > 0
	if len(f.comms) == 0 {
		return f, nil
	}
	for _, p := range r.Procs() {
		for _, t := range p.Threads {
			if f.comms[t.Comm] {
				f.byComm.set(uint32(t.TID), true)
			}
		}
	}
	// Threads gone by snapshot time: their names as they switched out.
	sw := r.Schema().ByName(kinds.SchedSwitch)
	if sw == nil || sw.Field(kinds.FieldPrevComm) < 0 {
		return f, nil
	}
	var want snapshot.Want
	want.Field(r.Schema(), kinds.SchedSwitch, kinds.FieldPrevComm)
	var c snapshot.Chunk
	for _, sec := range r.Chunks() {
		if r.ReadChunkWant(sec, &c, &want) != nil {
			continue // damage is reported by the main pass
		}
		col := c.Column(sw.ID, sw.Field(kinds.FieldPrevComm))
		if col == nil {
			continue
		}
		for i, t := range c.Type {
			if t == sw.ID && f.comms[string(col.Bytes(int(c.Row[i])))] {
				f.byComm.set(c.TID[i], true)
			}
		}
	}
	return f, nil
}

func set(ids []uint32) map[uint32]bool {
	m := map[uint32]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// task reports whether the task selection keeps thread tid of process pid
// (pid 0: unknown).
func (f *filter) task(tid, pid uint32) bool {
	if !f.any {
		return true
	}
	if len(f.tids) > 0 && !f.tids[tid] {
		return false
	}
	if len(f.pids) > 0 && !f.pids[pid] && !f.pids[tid] {
		return false
	}
	if len(f.comms) > 0 {
		if ok, _ := f.byComm.get(tid); !ok {
			return false
		}
	}
	return true
}

// cpu reports whether the CPU selection keeps cpu.
func (f *filter) cpu(cpu int) bool { return len(f.cpus) == 0 || f.cpus[cpu] }
