package snapshot

import (
	"math/rand"
	"testing"

	"github.com/rewindtrace/rewind/snapshot/schema"
)

// pipeEvents mimics `perf bench sched pipe` on one CPU: two tasks writing
// and reading one byte through pipes with the same buffers, switching to
// each other: the kernel tier's densest realistic mix.
func pipeEvents(n int) ([]Event, *schema.Schema) {
	s, err := schema.New([]schema.Event{
		{ID: 1, Name: "sched_switch", Size: 40, Fields: []schema.Field{
			{Name: "prev_comm", Type: schema.Str, Count: 16, Offset: 0},
			{Name: "next_comm", Type: schema.Str, Count: 16, Offset: 16},
			{Name: "next_tid", Type: schema.U32, Count: 1, Offset: 32},
			{Name: "prev_prio", Type: schema.U8, Count: 1, Offset: 36},
			{Name: "next_prio", Type: schema.U8, Count: 1, Offset: 37},
			{Name: "prev_state", Type: schema.U16, Count: 1, Offset: 38},
		}},
		{ID: 2, Name: "sched_waking", Size: 32, Fields: []schema.Field{
			{Name: "target_comm", Type: schema.Str, Count: 16, Offset: 0},
			{Name: "target_tid", Type: schema.U32, Count: 1, Offset: 16},
			{Name: "target_pid", Type: schema.U32, Count: 1, Offset: 20},
			{Name: "target_cpu", Type: schema.S32, Count: 1, Offset: 24},
			{Name: "target_prio", Type: schema.U8, Count: 1, Offset: 28},
		}},
		{ID: 7, Name: "sys_enter", Size: 40, Fields: []schema.Field{
			{Name: "id", Type: schema.S32, Count: 1, Offset: 0},
			{Name: "args", Type: schema.U64, Count: 4, Offset: 8},
		}},
		{ID: 8, Name: "sys_exit", Size: 16, Fields: []schema.Field{
			{Name: "id", Type: schema.S32, Count: 1, Offset: 0},
			{Name: "ret", Type: schema.S64, Count: 1, Offset: 8},
		}},
	})
	if err != nil {
		panic(err)
	}
	ev := make([]Event, 0, n)
	ts := uint64(1e12)
	tids := [2]uint32{4001, 4002}
	rng := rand.New(rand.NewSource(1))
	add := func(typ uint16, tid uint32, data []byte) {
		ts += 100 + uint64(rng.ExpFloat64()*300)
		ev = append(ev, Event{TS: ts, Seq: uint64(len(ev)), TID: tid, PID: 4001, Type: typ, Data: data})
	}
	for i := 0; len(ev) < n; i++ {
		me, other := tids[i%2], tids[(i+1)%2]
		enter := func(nr uint32, fd uint64) []byte {
			d := make([]byte, 40)
			le.PutUint32(d, nr)
			le.PutUint64(d[8:], fd)
			le.PutUint64(d[16:], 0x7ffd1234a000+uint64(me%2)*0x100)
			le.PutUint64(d[24:], 1)
			return d
		}
		exit := func(nr uint32) []byte {
			d := make([]byte, 16)
			le.PutUint32(d, nr)
			le.PutUint64(d[8:], 1)
			return d
		}
		add(7, me, enter(1, 4)) // write
		w := make([]byte, 32)
		copy(w, "sched-pipe")
		le.PutUint32(w[16:], other)
		le.PutUint32(w[20:], 4001)
		w[28] = 120
		add(2, me, w)
		add(8, me, exit(1))
		add(7, me, enter(0, 3)) // read: blocks
		sw := make([]byte, 40)
		copy(sw, "sched-pipe")
		copy(sw[16:], "sched-pipe")
		le.PutUint32(sw[32:], other)
		sw[36], sw[37] = 120, 120
		le.PutUint16(sw[38:], 1)
		add(1, me, sw)
		add(8, other, exit(0))
	}
	return ev[:n], s
}

func BenchmarkEncodeChunk(b *testing.B) {
	ev, s := pipeEvents(1 << 16)
	enc := NewEncoder(s)
	b.ResetTimer()
	var size int
	for i := 0; i < b.N; i++ {
		p, _, err := enc.EncodeChunk(ChunkInput{Events: ev, FirstSeq: 0, NextSeq: uint64(len(ev))})
		if err != nil {
			b.Fatal(err)
		}
		size = len(p)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ev)), "ns/event")
	b.ReportMetric(float64(size)/float64(len(ev)), "bytes/event")
}

func BenchmarkDecodeChunk(b *testing.B) {
	ev, s := pipeEvents(1 << 16)
	p, _, err := NewEncoder(s).EncodeChunk(ChunkInput{Events: ev, FirstSeq: 0, NextSeq: uint64(len(ev))})
	if err != nil {
		b.Fatal(err)
	}
	var c Chunk
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := DecodeChunk(s, p, &c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ev)), "ns/event")
}
