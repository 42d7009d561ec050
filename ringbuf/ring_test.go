package ringbuf

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/rewindtrace/rewind/snapshot"
)

// fakeWriter writes records the way bpf/include/ring.h does: reserve with an
// atomic add on the head, mark every slot busy, fill it, publish its seq.
type fakeWriter struct {
	r   *Ring
	cpu int
}

func newFake(t *testing.T, cpus int, perCPU uint64) (*Ring, []byte) {
	t.Helper()
	mem := make([]byte, uint64(cpus)*perCPU*SlotSize)
	heads := make([]byte, cpus*HeadSize)
	r, err := New(mem, heads, cpus, perCPU)
	if err != nil {
		t.Fatal(err)
	}
	return r, heads
}

func (w fakeWriter) reserve(n int) uint64 {
	p := (*uint64)(unsafe.Pointer(&w.r.heads[w.cpu*HeadSize+OffHead]))
	return atomic.AddUint64(p, uint64(n)) - uint64(n)
}

// fill writes slot seq of a record; the payload's first 8 bytes are the
// record's first sequence number, so readers can check what they got.
func (w fakeWriter) fill(seq, recSeq uint64, typ uint16, nslots int, publish bool) {
	off := w.r.slotOff(w.cpu, seq)
	s := w.r.slots[off : off+SlotSize]
	atomic.StoreUint32(w.r.seqPtr(w.cpu, seq), SeqBusy)
	binary.LittleEndian.PutUint64(s[OffTS:], 1000+recSeq*10)
	binary.LittleEndian.PutUint16(s[OffType:], typ)
	s[OffNSlots] = byte(nslots)
	binary.LittleEndian.PutUint32(s[OffTID:], 42)
	binary.LittleEndian.PutUint32(s[OffPID:], 41)
	binary.LittleEndian.PutUint64(s[OffData:], recSeq)
	binary.LittleEndian.PutUint64(s[OffData+8:], seq)
	if publish {
		atomic.StoreUint32(w.r.seqPtr(w.cpu, seq), uint32(seq))
	}
}

func (w fakeWriter) write(nslots int) uint64 {
	seq := w.reserve(nslots)
	for j := nslots - 1; j >= 1; j-- {
		w.fill(seq+uint64(j), seq, TypeCont, 1, true)
	}
	w.fill(seq, seq, 7, nslots, true)
	return seq
}

// check verifies every record against what the fake writer wrote and that
// the window accounts for every sequence number in it.
func check(t *testing.T, w *Window) {
	t.Helper()
	ev := w.Events(nil)
	if len(ev) != w.Records {
		t.Fatalf("%d events, window says %d records", len(ev), w.Records)
	}
	var slots uint64
	for i, e := range ev {
		if got := binary.LittleEndian.Uint64(e.Data); got != e.Seq {
			t.Fatalf("event %d: payload says seq %d, reader says %d", i, got, e.Seq)
		}
		if e.TS != 1000+e.Seq*10 || e.TID != 42 || e.PID != 41 || e.Type != 7 {
			t.Fatalf("event %d: %+v", i, e)
		}
		if i > 0 && e.Seq <= ev[i-1].Seq {
			t.Fatalf("event %d: seq %d after %d", i, e.Seq, ev[i-1].Seq)
		}
		n := uint64(len(e.Data) / PayloadSize)
		if n > 1 {
			for j := uint64(1); j < n; j++ {
				if got := binary.LittleEndian.Uint64(e.Data[j*PayloadSize+8:]); got != e.Seq+j {
					t.Fatalf("event %d slot %d holds seq %d", i, j, got)
				}
			}
		}
		slots += n
	}
	if len(ev) > 0 {
		if ev[0].Seq < w.First {
			t.Fatalf("first event seq %d before the window's first %d", ev[0].Seq, w.First)
		}
		if w.Next-w.First != slots+w.Lost {
			t.Fatalf("window [%d,%d) of %d slots: %d kept + %d lost", w.First, w.Next, w.Next-w.First, slots, w.Lost)
		}
	}
}

func TestEmptyAndPartial(t *testing.T) {
	r, _ := newFake(t, 2, 64)
	w, err := r.Read(0)
	if err != nil || w.Records != 0 || w.Lost != 0 {
		t.Fatalf("empty ring: %v %v", w, err)
	}
	f := fakeWriter{r, 1}
	for i := 0; i < 5; i++ {
		f.write(1)
	}
	w, _ = r.Read(1)
	check(t, w)
	if w.Records != 5 || w.First != 0 || w.Next != 5 || w.Lost != 0 {
		t.Fatalf("window %v", w)
	}
}

func TestWrappedKeepsNewest(t *testing.T) {
	r, _ := newFake(t, 1, 64)
	f := fakeWriter{r, 0}
	for i := 0; i < 1000; i++ {
		f.write(1)
	}
	w, _ := r.Read(0)
	check(t, w)
	if w.Records != 64 || w.First != 936 || w.Next != 1000 || w.Lost != 0 {
		t.Fatalf("window %v", w)
	}
}

func TestMultiSlotRecords(t *testing.T) {
	r, _ := newFake(t, 1, 64)
	f := fakeWriter{r, 0}
	var total uint64
	for i := 0; i < 100; i++ {
		f.write(1 + i%3)
		total += uint64(1 + i%3)
	}
	w, _ := r.Read(0)
	check(t, w)
	if w.Lost != 0 {
		t.Fatalf("lost %d", w.Lost)
	}
	// The oldest slots may be continuations whose first slot was
	// overwritten: the window starts at the first whole record.
	ev := w.Events(nil)
	if w.Next != total || ev[0].Seq < total-64 {
		t.Fatalf("window %v", w)
	}
}

// A writer that reserved a slot and never published it: the reader waits
// TailWait, then counts the slot as lost because later ones are intact.
func TestStuckWriterCounted(t *testing.T) {
	r, _ := newFake(t, 1, 64)
	r.TailWait = time.Millisecond
	f := fakeWriter{r, 0}
	for i := 0; i < 10; i++ {
		f.write(1)
	}
	seq := f.reserve(1)
	f.fill(seq, seq, 7, 1, false) // busy forever
	for i := 0; i < 10; i++ {
		f.write(1)
	}
	w, _ := r.Read(0)
	check(t, w)
	if w.Records != 20 || w.Lost != 1 {
		t.Fatalf("window %v", w)
	}
	// At the tail the same slot ends the window instead.
	r2, _ := newFake(t, 1, 64)
	r2.TailWait = time.Millisecond
	f2 := fakeWriter{r2, 0}
	for i := 0; i < 10; i++ {
		f2.write(1)
	}
	seq = f2.reserve(1)
	f2.fill(seq, seq, 7, 1, false)
	w, _ = r2.Read(0)
	check(t, w)
	if w.Records != 10 || w.Lost != 0 || w.Next != 10 {
		t.Fatalf("window %v", w)
	}
}

// Reads while a writer runs flat out: every record read is intact and every
// sequence number in the window is either read or counted as lost.
func TestConcurrentWriter(t *testing.T) {
	r, _ := newFake(t, 1, 1<<12)
	f := fakeWriter{r, 0}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f.write(1 + i%5/4) // mostly single slots, some doubles
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for i := 0; i < 200; i++ {
		w, err := r.Read(0)
		if err != nil {
			t.Fatal(err)
		}
		check(t, w)
	}
}

func TestBatchesAccountForTheWindow(t *testing.T) {
	r, _ := newFake(t, 1, 256)
	r.TailWait = time.Millisecond
	f := fakeWriter{r, 0}
	for i := 0; i < 300; i++ {
		if i%50 == 25 {
			seq := f.reserve(1)
			f.fill(seq, seq, 7, 1, false) // a gap
			continue
		}
		f.write(1 + i%7/6)
	}
	w, _ := r.Read(0)
	check(t, w)
	if w.Lost == 0 {
		t.Fatalf("window %v has no gaps", w)
	}
	var lost, n uint64
	next := w.First
	err := w.Batches(17, func(b Batch) error {
		if b.FirstSeq != next || len(b.Events) > 17 || b.NextSeq <= b.FirstSeq {
			t.Fatalf("batch [%d,%d) of %d after %d", b.FirstSeq, b.NextSeq, len(b.Events), next)
		}
		next = b.NextSeq
		lost += b.Lost
		n += uint64(len(b.Events))
		return nil
	})
	if err != nil || next != w.Next || lost != w.Lost || n != uint64(w.Records) {
		t.Fatalf("batches end %d lose %d hold %d; window %v", next, lost, n, w)
	}
}

func BenchmarkRead(b *testing.B) {
	const perCPU = 1 << 20
	mem := make([]byte, perCPU*SlotSize)
	heads := make([]byte, HeadSize)
	r, err := New(mem, heads, 1, perCPU)
	if err != nil {
		b.Fatal(err)
	}
	f := fakeWriter{r, 0}
	for i := 0; i < perCPU+1000; i++ {
		f.write(1)
	}
	b.SetBytes(perCPU * SlotSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := r.Read(0)
		if err != nil || w.Records != perCPU {
			b.Fatalf("%v %v", w, err)
		}
	}
}

// Draining with ReadRange from where the last drain ended yields every
// record once, in order, across many drains and a wrapped ring.
func TestReadRangeDrains(t *testing.T) {
	r, _ := newFake(t, 1, 64)
	f := fakeWriter{r, 0}
	buf := make([]byte, r.CopyBytes())
	var cursor, next uint64
	for round := 0; round < 50; round++ {
		for i := 0; i < round%7*5; i++ {
			f.write(1 + i%3/2)
		}
		w, err := r.ReadRange(0, cursor, buf)
		if err != nil {
			t.Fatal(err)
		}
		check(t, w)
		if w.Lost != 0 || w.First != cursor {
			t.Fatalf("round %d: window %v from cursor %d", round, w, cursor)
		}
		for _, e := range w.Events(nil) {
			if e.Seq != next {
				t.Fatalf("round %d: seq %d, want %d", round, e.Seq, next)
			}
			next = e.Seq + uint64(len(e.Data)/PayloadSize)
		}
		cursor = w.Next
	}
	// A drain a whole ring behind counts what it missed as lost.
	for i := 0; i < 200; i++ {
		f.write(1)
	}
	w, _ := r.ReadRange(0, cursor, buf)
	check(t, w)
	if w.First != cursor || w.Lost != 200-64 || w.Records != 64 {
		t.Fatalf("lagging drain: %v from %d", w, cursor)
	}
	// An unpublished slot ends the range; the next drain picks it up.
	seq := f.reserve(1)
	f.fill(seq, seq, 7, 1, false)
	f.write(1)
	r.TailWait = time.Millisecond
	w, _ = r.ReadRange(0, w.Next, buf)
	if w.Records != 0 || w.Next != seq {
		t.Fatalf("pending slot: %v", w)
	}
	f.fill(seq, seq, 7, 1, true)
	w, _ = r.ReadRange(0, w.Next, buf)
	check(t, w)
	if w.Records != 2 || w.Lost != 0 {
		t.Fatalf("after publishing: %v", w)
	}
}

// A buffer smaller than what waits drains it in pieces: a record cut by
// the buffer's end is left whole for the next read, and nothing is lost.
func TestReadRangeSmallBuffer(t *testing.T) {
	r, _ := newFake(t, 1, 64)
	f := fakeWriter{r, 0}
	for i := 0; i < 20; i++ {
		f.write(1 + i%3) // records of 1, 2 and 3 slots
	}
	buf := make([]byte, 5*SlotSize)
	var cursor, next uint64
	records := 0
	for reads := 0; cursor < r.Head(0); reads++ {
		if reads > 40 {
			t.Fatalf("no progress at %d", cursor)
		}
		w, err := r.ReadRange(0, cursor, buf)
		if err != nil {
			t.Fatal(err)
		}
		check(t, w)
		if w.Lost != 0 || w.First != cursor || w.Next <= cursor || w.Next-cursor > 5 {
			t.Fatalf("read from %d: %v", cursor, w)
		}
		for _, e := range w.Events(nil) {
			if e.Seq != next {
				t.Fatalf("seq %d, want %d", e.Seq, next)
			}
			next = e.Seq + uint64(len(e.Data)/PayloadSize)
			records++
		}
		cursor = w.Next
	}
	if records != 20 {
		t.Fatalf("%d records drained, 20 written", records)
	}
}

func TestBatchesFrom(t *testing.T) {
	r, _ := newFake(t, 1, 64)
	f := fakeWriter{r, 0}
	for i := 0; i < 40; i++ {
		f.write(1)
	}
	w, _ := r.Read(0)
	var got []uint64
	var lost uint64
	first := true
	w.BatchesFrom(25, 4, func(b Batch) error {
		if first && b.FirstSeq != 25 {
			t.Errorf("first batch starts at %d", b.FirstSeq)
		}
		first = false
		lost += b.Lost
		for _, e := range b.Events {
			got = append(got, e.Seq)
		}
		return nil
	})
	if len(got) != 15 || got[0] != 25 || got[14] != 39 || lost != 0 {
		t.Fatalf("got %v lost %d", got, lost)
	}
	// Starting before the window counts nothing; after it, nothing is left.
	n := 0
	w.BatchesFrom(0, 100, func(b Batch) error { n += len(b.Events); lost += b.Lost; return nil })
	if n != 40 || lost != 0 {
		t.Fatalf("from 0: %d events, %d lost", n, lost)
	}
}

func TestTierEvictsOldestFirst(t *testing.T) {
	if _, err := NewTier(2, 0, 0); err == nil {
		t.Fatal("a tier without budget or age limit")
	}
	tier, err := NewTier(2, 300, 0)
	if err != nil {
		t.Fatal(err)
	}
	block := func(first, last uint64) Block {
		return Block{Payload: make([]byte, 100), Sum: snapshot.ChunkSummary{Events: 10, FirstTS: first, LastTS: last}}
	}
	tier.Add(0, block(0, 10), 10, 10)
	tier.Add(1, block(5, 20), 10, 20)
	tier.Add(0, block(11, 30), 20, 30)
	if h := tier.Held(); h.Blocks != 3 || h.Bytes != 300 {
		t.Fatalf("held %+v", h)
	}
	tier.Add(1, block(21, 40), 20, 40) // over budget: CPU 0's first block is the oldest
	b0, next0 := tier.Blocks(0)
	b1, _ := tier.Blocks(1)
	if len(b0) != 1 || b0[0].Sum.FirstTS != 11 || next0 != 20 || len(b1) != 2 {
		t.Fatalf("cpu0 %v cpu1 %v", b0, b1)
	}
	if e := tier.Evicted(); e.Blocks != 1 || e.Events != 10 || e.Bytes != 100 {
		t.Fatalf("evicted %+v", e)
	}
	aged, _ := NewTier(1, 0, 15)
	aged.Add(0, block(0, 10), 1, 10)
	aged.Add(0, block(11, 20), 2, 20)
	aged.Add(0, block(21, 30), 3, 30) // block ending at 10 is older than 30-15
	if bs, _ := aged.Blocks(0); len(bs) != 2 || bs[0].Sum.LastTS != 20 {
		t.Fatalf("aged blocks %v", bs)
	}
	if first, last := aged.Span(0); first != 11 || last != 30 {
		t.Fatalf("span %d..%d", first, last)
	}
}
