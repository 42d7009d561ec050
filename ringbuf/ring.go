package ringbuf

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rewindtrace/rewind/snapshot"
)

// Ring reads the kernel tier: per-CPU runs of slots in one shared memory
// region, each with a head counter, written by BPF programs (see
// bpf/include/ring.h for the protocol). Reads never stop the writers.
//
// A Ring is safe for concurrent reads of different CPUs.
type Ring struct {
	slots  []byte
	heads  []byte
	cpus   int
	perCPU uint64 // slots per CPU, a power of two
	mask   uint64
	copies [][]byte // per CPU: where Read copies to, reused

	// TailWait bounds how long one read waits, in all, for slots that a
	// writer has reserved but not yet published (a program is mid-record,
	// usually for well under a microsecond).
	TailWait time.Duration
}

// New wraps the mapped memory of the ring array (cpus × perCPU slots) and
// the per-CPU heads. It stamps every slot as unwritten, so call it before
// any program writes. It also allocates, and faults in, the memory Read
// copies each CPU's ring to (CopyBytes per CPU): allocating it at snapshot
// time would slow the copy down while the writers race it.
func New(slots, heads []byte, cpus int, perCPU uint64) (*Ring, error) {
	if perCPU == 0 || perCPU&(perCPU-1) != 0 {
		return nil, fmt.Errorf("ring: %d slots per CPU is not a power of two", perCPU)
	}
	if uint64(len(slots)) < uint64(cpus)*perCPU*SlotSize || len(heads) < cpus*HeadSize {
		return nil, fmt.Errorf("ring: %d and %d bytes of memory are too small for %d CPUs × %d slots", len(slots), len(heads), cpus, perCPU)
	}
	r := &Ring{slots: slots, heads: heads, cpus: cpus, perCPU: perCPU, mask: perCPU - 1,
		TailWait: 2 * time.Millisecond}
	for cpu := 0; cpu < cpus; cpu++ {
		for i := uint64(0); i < perCPU; i++ {
			// Slot i first holds sequence i: until then it looks like it
			// still holds i's predecessor one lap earlier, i.e. unwritten.
			atomic.StoreUint32(r.seqPtr(cpu, i), uint32(i-perCPU))
		}
		c := make([]byte, r.CopyBytes())
		for i := 0; i < len(c); i += 4096 {
			c[i] = 1
		}
		r.copies = append(r.copies, c)
	}
	return r, nil
}

// CopyBytes is the memory per CPU that reads copy into: the ring plus a
// quarter for what arrives while it is read.
func (r *Ring) CopyBytes() uint64 { return (r.perCPU + r.perCPU/4) * SlotSize }

// CPUs is the number of per-CPU rings.
func (r *Ring) CPUs() int { return r.cpus }

// SlotsPerCPU is the capacity of each CPU's ring in slots.
func (r *Ring) SlotsPerCPU() uint64 { return r.perCPU }

func (r *Ring) slotOff(cpu int, seq uint64) int {
	return (cpu*int(r.perCPU) + int(seq&r.mask)) * SlotSize
}

func (r *Ring) seqPtr(cpu int, seq uint64) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.slots[r.slotOff(cpu, seq)+OffSeq]))
}

// Head returns the CPU's next sequence number to be reserved.
func (r *Ring) Head(cpu int) uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&r.heads[cpu*HeadSize+OffHead])))
}

// Dropped returns how many records the CPU's programs could not write.
func (r *Ring) Dropped(cpu int) uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&r.heads[cpu*HeadSize+OffLost])))
}

// Window is what one read of a CPU's ring retained: every intact record
// whose sequence number lies in [First, Next), in sequence order.
type Window struct {
	CPU   int
	First uint64 // sequence number of the first record
	Next  uint64 // one past the last slot of the last record
	// Lost counts sequence numbers in [First, Next) that hold no intact
	// record: overwritten before the read reached them, torn, or part of a
	// record missing a slot. A record spans one sequence number, or up to
	// MaxSlots for a long one (exec, stack samples), so Lost bounds the lost
	// events.
	Lost uint64
	// Dropped is the CPU's count of records its programs could not write,
	// since recording started; their sequence numbers are gaps, so any in
	// the window are in Lost too.
	Dropped uint64
	// Records is the number of records.
	Records int

	data []byte // intact slots in sequence order
}

func (w *Window) String() string {
	return fmt.Sprintf("cpu %d [%d, %d): %d records, %d lost, %d dropped", w.CPU, w.First, w.Next, w.Records, w.Lost, w.Dropped)
}

type slotState int

const (
	slotIntact slotState = iota
	slotPending
	slotOverwritten
)

// Read copies the CPU's ring while its writers keep going.
//
// It reads from the newest slot down to the oldest. Writers overwrite the
// ring oldest first, so if they catch up with a slow read (the reader was
// preempted, say), the read stops where they are and the window loses its
// oldest end — it is shorter, never holed. It then reads forward over what
// was written meanwhile, up to a quarter of the ring, so that the window
// still spans a whole ring's worth of slots.
//
// A slot counts only when its sequence number reads the same before and
// after the copy. Slots reserved but not yet published (a program is
// mid-record) are waited for, up to TailWait in all.
//
// The window's memory is the CPU's copy buffer: it is valid until the next
// Read of the same CPU.
func (r *Ring) Read(cpu int) (*Window, error) {
	if cpu < 0 || cpu >= r.cpus {
		return nil, fmt.Errorf("read ring: cpu %d out of range [0, %d)", cpu, r.cpus)
	}
	rd := reader{r: r, cpu: cpu}
	extra := r.perCPU / 4
	buf := r.copies[cpu]
	h0 := r.Head(cpu)
	lo := h0 - min(h0, r.perCPU)
	mid := int(h0-lo) * SlotSize

	// Newest to oldest, filling buf[:mid] from its end.
	bottom := mid
	var first uint64
	found := false
	for seq := h0; seq > lo; seq-- {
		st := rd.copy(seq-1, buf[bottom-SlotSize:bottom])
		if st == slotOverwritten {
			break // the writers are here: everything older is gone too
		}
		if st == slotIntact {
			bottom -= SlotSize
			first, found = seq-1, true
		}
	}
	// Oldest to newest over what arrived meanwhile, up to the first slot
	// still unpublished.
	top := mid
	h1 := min(r.Head(cpu), h0+extra)
	for seq := h0; seq < h1; seq++ {
		if rd.copy(seq, buf[top:top+SlotSize]) != slotIntact {
			break
		}
		if !found {
			first, found = seq, true
		}
		top += SlotSize
	}
	w := &Window{CPU: cpu, Dropped: r.Dropped(cpu), data: buf[bottom:top]}
	if found {
		w.index(noStart, first)
	}
	return w, nil
}

// noStart tells index that a window begins at its first record.
const noStart = ^uint64(0)

// ReadRange copies the CPU's records from sequence number from up to the
// first slot not yet published, oldest first, into buf, as many slots as
// buf holds: what the history tier drains, with a buffer of its own so that
// it reads alongside Read. The window begins at from: slots the writers
// overwrote before the read reached them (the drain fell a whole ring
// behind) count as lost. A record cut by the end of buf is left for the
// next read, which starts at the window's Next.
func (r *Ring) ReadRange(cpu int, from uint64, buf []byte) (*Window, error) {
	if cpu < 0 || cpu >= r.cpus {
		return nil, fmt.Errorf("read ring: cpu %d out of range [0, %d)", cpu, r.cpus)
	}
	rd := reader{r: r, cpu: cpu}
	head := r.Head(cpu)
	pos := max(from, head-min(head, r.perCPU))
	end := min(head, pos+uint64(len(buf)/SlotSize))
	top := 0
	var first uint64
	found := false
	for seq := pos; seq < end; seq++ {
		st := rd.copy(seq, buf[top:top+SlotSize])
		if st == slotPending {
			break // being written: the next drain starts here
		}
		if st == slotIntact {
			if !found {
				first, found = seq, true
			}
			top += SlotSize
		}
	}
	w := &Window{CPU: cpu, Dropped: r.Dropped(cpu), data: buf[:top], First: from, Next: from}
	if found {
		w.index(from, first)
	}
	return w, nil
}

// reader copies slots of one CPU, waiting for unpublished ones up to the
// ring's TailWait in all.
type reader struct {
	r      *Ring
	cpu    int
	waited time.Duration
}

// copy copies the slot that should hold seq into dst (SlotSize bytes) and
// says whether it is intact there.
func (rd *reader) copy(seq uint64, dst []byte) slotState {
	st := rd.r.copySlot(rd.cpu, seq, dst)
	if st == slotPending && rd.waited < rd.r.TailWait {
		t0 := time.Now()
		for st == slotPending && rd.waited+time.Since(t0) < rd.r.TailWait {
			runtime.Gosched()
			st = rd.r.copySlot(rd.cpu, seq, dst)
		}
		rd.waited += time.Since(t0)
	}
	return st
}

// copySlot copies the slot that should hold seq into dst.
func (r *Ring) copySlot(cpu int, seq uint64, dst []byte) slotState {
	p := r.seqPtr(cpu, seq)
	before := atomic.LoadUint32(p)
	if st := classify(before, seq); st != slotIntact {
		return st
	}
	off := r.slotOff(cpu, seq)
	copy(dst, r.slots[off:off+SlotSize])
	if after := loadAfterCopy(p); after != before {
		if classify(after, seq) == slotPending {
			return slotPending
		}
		return slotOverwritten
	}
	return slotIntact
}

// classify compares a slot's published sequence with the one expected.
func classify(got uint32, want uint64) slotState {
	if got == SeqBusy {
		return slotPending
	}
	switch d := int32(got - uint32(want)); {
	case d == 0:
		return slotIntact
	case d < 0: // still the previous lap: reserved, not yet published
		return slotPending
	default:
		return slotOverwritten
	}
}

// index walks the intact slots, the first of which holds sequence number
// first, and keeps whole records: continuation slots whose first slot is
// gone and records missing a slot are dropped. It sets First and Next to the
// span of the kept records and Lost to the sequence numbers between them
// that hold no kept record. When start is not noStart the window begins
// there instead, and what lies before the first record counts as lost.
func (w *Window) index(start, first uint64) {
	out := w.data[:0]
	seq, prev := first, uint32(first)
	var next uint64 // one past the last kept record
	for i := 0; i < len(w.data); {
		s := w.data[i:]
		cur := binary.LittleEndian.Uint32(s[OffSeq:])
		seq += uint64(cur - prev)
		prev = cur
		k := int(s[OffNSlots])
		if binary.LittleEndian.Uint16(s[OffType:]) == TypeCont || k < 1 || k > MaxSlots || !contiguous(s, k, cur) {
			i += SlotSize
			continue
		}
		switch {
		case w.Records == 0 && start == noStart:
			w.First = seq
		case w.Records == 0:
			w.First, w.Lost = start, seq-start
		default:
			w.Lost += seq - next
		}
		// Kept slots move down over dropped ones; i never trails len(out).
		if len(out) == i {
			out = w.data[:i+k*SlotSize]
		} else {
			out = append(out, s[:k*SlotSize]...)
		}
		w.Records++
		i += k * SlotSize
		seq += uint64(k - 1)
		prev = cur + uint32(k-1)
		next = seq + 1
	}
	w.Next = next
	w.data = out
}

// contiguous reports whether b starts with k slots with consecutive sequence
// numbers from seq, the later ones continuations.
func contiguous(b []byte, k int, seq uint32) bool {
	if len(b) < k*SlotSize {
		return false
	}
	for j := 1; j < k; j++ {
		s := b[j*SlotSize:]
		if binary.LittleEndian.Uint32(s[OffSeq:]) != seq+uint32(j) || binary.LittleEndian.Uint16(s[OffType:]) != TypeCont {
			return false
		}
	}
	return true
}

// Events appends the window's records to dst as snapshot events, in sequence
// order. Data of a single-slot record aliases the window; a multi-slot
// record's payload is copied into a buffer of its own.
func (w *Window) Events(dst []snapshot.Event) []snapshot.Event {
	_ = w.Batches(max(w.Records, 1), func(b Batch) error {
		dst = append(dst, b.Events...)
		return nil
	})
	return dst
}

// Batch is a run of a window's records in sequence order.
type Batch struct {
	Events []snapshot.Event
	// FirstSeq and NextSeq span the sequence numbers the batch covers; Lost
	// counts those without a record. Consecutive batches' spans touch, and
	// their Lost add up to the window's.
	FirstSeq, NextSeq, Lost uint64
}

// Batches calls fn with the window's records, at most limit at a time. The
// batch's slice is reused between calls.
func (w *Window) Batches(limit int, fn func(Batch) error) error {
	return w.BatchesFrom(w.First, limit, fn)
}

// BatchesFrom is Batches for the records at or after sequence number start:
// the first batch covers from start, so a gap between start and the first
// such record counts as its loss.
func (w *Window) BatchesFrom(start uint64, limit int, fn func(Batch) error) error {
	start = min(max(start, w.First), w.Next)
	b := Batch{Events: make([]snapshot.Event, 0, min(limit, w.Records)), FirstSeq: start, NextSeq: start}
	seq := w.First
	prev := uint32(w.First)
	for i := 0; i < len(w.data); {
		s := w.data[i : i+SlotSize]
		cur := binary.LittleEndian.Uint32(s[OffSeq:])
		seq += uint64(cur - prev)
		k := int(s[OffNSlots])
		if k < 1 || k > MaxSlots {
			k = 1
		}
		e := snapshot.Event{
			TS:   binary.LittleEndian.Uint64(s[OffTS:]),
			Seq:  seq,
			Type: binary.LittleEndian.Uint16(s[OffType:]),
			TID:  binary.LittleEndian.Uint32(s[OffTID:]),
			PID:  binary.LittleEndian.Uint32(s[OffPID:]),
			Data: s[OffData:SlotSize:SlotSize],
		}
		if seq < start {
			i += k * SlotSize
			prev = cur + uint32(k-1)
			seq += uint64(k - 1)
			continue
		}
		if k > 1 {
			data := make([]byte, 0, k*PayloadSize)
			for j := 0; j < k; j++ {
				data = append(data, w.data[i+j*SlotSize+OffData:i+(j+1)*SlotSize]...)
			}
			e.Data = data
		}
		b.Lost += seq - b.NextSeq
		b.Events = append(b.Events, e)
		i += k * SlotSize
		prev = cur + uint32(k-1)
		seq += uint64(k - 1)
		b.NextSeq = seq + 1
		if len(b.Events) == limit {
			if err := fn(b); err != nil {
				return err
			}
			b = Batch{Events: b.Events[:0], FirstSeq: b.NextSeq, NextSeq: b.NextSeq}
		}
	}
	if len(b.Events) > 0 {
		return fn(b)
	}
	return nil
}
