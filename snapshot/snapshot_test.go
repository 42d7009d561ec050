package snapshot

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/rewindtrace/rewind/snapshot/schema"
)

// testSchema has the field shapes the recorder uses: strings, narrow and
// wide integers, signed values and an array.
func testSchema(t testing.TB) *schema.Schema {
	s, err := schema.New([]schema.Event{
		{ID: 1, Name: "switch", Size: 40, Fields: []schema.Field{
			{Name: "prev_comm", Type: schema.Str, Count: 16, Offset: 0, Kind: schema.KindComm},
			{Name: "next_comm", Type: schema.Str, Count: 16, Offset: 16, Kind: schema.KindComm},
			{Name: "next_tid", Type: schema.U32, Count: 1, Offset: 32},
			{Name: "prio", Type: schema.U8, Count: 1, Offset: 36},
			{Name: "state", Type: schema.U16, Count: 1, Offset: 38},
		}},
		{ID: 7, Name: "enter", Size: 40, Fields: []schema.Field{
			{Name: "id", Type: schema.S32, Count: 1, Offset: 0},
			{Name: "args", Type: schema.U64, Count: 4, Offset: 8},
		}},
		{ID: 8, Name: "exit", Size: 16, Fields: []schema.Field{
			{Name: "id", Type: schema.S32, Count: 1, Offset: 0},
			{Name: "ret", Type: schema.S64, Count: 1, Offset: 8},
		}},
		{ID: 9, Name: "exec", Size: 100, Fields: []schema.Field{
			{Name: "filename", Type: schema.Str, Count: 96, Offset: 4},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randEvents(rng *rand.Rand, n int, seq0, ts0 uint64) []Event {
	ev := make([]Event, n)
	ts := ts0
	for i := range ev {
		ts += uint64(rng.Intn(5000))
		e := Event{TS: ts, Seq: seq0 + uint64(i), TID: uint32(1000 + rng.Intn(5)), PID: 1000}
		switch rng.Intn(4) {
		case 0:
			e.Type = 1
			e.Data = make([]byte, 40)
			copy(e.Data[0:], "prev-task")
			copy(e.Data[16:], "a-next-task-long")
			le.PutUint32(e.Data[32:], uint32(rng.Intn(1<<20)))
			e.Data[36] = 120
			le.PutUint16(e.Data[38:], 0x100)
		case 1:
			e.Type = 7
			e.Data = make([]byte, 40)
			le.PutUint32(e.Data[0:], uint32(rng.Intn(400)))
			for k := 0; k < 4; k++ {
				le.PutUint64(e.Data[8+8*k:], rng.Uint64())
			}
		case 2:
			e.Type = 8
			e.Data = make([]byte, 16)
			le.PutUint32(e.Data[0:], uint32(rng.Intn(400)))
			le.PutUint64(e.Data[8:], uint64(int64(-rng.Intn(100))))
		default:
			e.Type = 9
			name := bytes.Repeat([]byte("x"), rng.Intn(96))
			e.Data = append(make([]byte, 4), name...) // shorter than Size: the rest reads as zero
		}
		ev[i] = e
	}
	return ev
}

// writeTestFile writes chunks of events for cpus CPUs and returns the path
// and the events written, per CPU.
func writeTestFile(t testing.TB, cpus, chunksPerCPU, perChunk int) (string, [][]Event) {
	path := filepath.Join(t.TempDir(), "test.rwd")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, writeTestSnapshot(t, w, cpus, chunksPerCPU, perChunk)
}

// testFileBytes returns the file writeTestFile writes, written to memory.
func testFileBytes(t testing.TB, cpus, chunksPerCPU, perChunk int) []byte {
	var buf bytes.Buffer
	writeTestSnapshot(t, NewWriter(&buf), cpus, chunksPerCPU, perChunk)
	return buf.Bytes()
}

// writeTestSnapshot writes a snapshot of chunks of events for cpus CPUs
// with w, commits it, and returns the events written, per CPU.
func writeTestSnapshot(t testing.TB, w *Writer, cpus, chunksPerCPU, perChunk int) [][]Event {
	s := testSchema(t)
	meta := &Meta{Recorder: "test", Host: "h", CPUs: cpus, Clock: "boottime", Trigger: Trigger{Kind: TriggerManual}}
	if err := w.WriteMeta(meta); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteSchema(s); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteProcs([]Proc{{PID: 1, Comm: "init", Threads: []Thread{{TID: 1, Comm: "init"}}}}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	enc := NewEncoder(s)
	all := make([][]Event, cpus)
	for cpu := 0; cpu < cpus; cpu++ {
		seq := uint64(100)
		for c := 0; c < chunksPerCPU; c++ {
			ev := randEvents(rng, perChunk, seq, uint64(1e9)+uint64(c)*1e8)
			all[cpu] = append(all[cpu], ev...)
			p, sum, err := enc.EncodeChunk(ChunkInput{CPU: cpu, Events: ev, FirstSeq: seq, NextSeq: seq + uint64(perChunk), Lost: 0})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteChunk(p, sum); err != nil {
				t.Fatal(err)
			}
			seq += uint64(perChunk)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return all
}

// payloadField reads field f of raw event data the way the encoder does.
func payloadField(e Event, f schema.Field, elem int) uint64 {
	return readRaw(e.Data, f.Offset+elem*f.Type.Size(), f.Type.Size(), f.Type.Signed())
}

func checkChunk(t *testing.T, s *schema.Schema, c *Chunk, want []Event) {
	t.Helper()
	if c.Len() != len(want) {
		t.Fatalf("chunk has %d events, want %d", c.Len(), len(want))
	}
	for i, e := range want {
		if c.TS[i] != e.TS || c.Seq[i] != e.Seq || c.Type[i] != e.Type || c.TID[i] != e.TID || c.PID[i] != e.PID {
			t.Fatalf("event %d: got ts %d seq %d type %d tid %d pid %d, want %+v", i, c.TS[i], c.Seq[i], c.Type[i], c.TID[i], c.PID[i], e)
		}
		et := s.ByID(e.Type)
		for fi, f := range et.Fields {
			col := c.Column(e.Type, fi)
			row := int(c.Row[i])
			if f.Type == schema.Str {
				raw := e.Data[min(len(e.Data), f.Offset):min(len(e.Data), f.Offset+f.Count)]
				if j := bytes.IndexByte(raw, 0); j >= 0 {
					raw = raw[:j]
				}
				if got := col.Bytes(row); !bytes.Equal(got, raw) {
					t.Fatalf("event %d %s = %q, want %q", i, f.Name, got, raw)
				}
				continue
			}
			for k := 0; k < f.Count; k++ {
				if got, want := col.UintAt(row, k), payloadField(e, f, k); got != want {
					t.Fatalf("event %d %s[%d] = %#x, want %#x", i, f.Name, k, got, want)
				}
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	path, all := writeTestFile(t, 2, 3, 5000)
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Indexed() || len(r.Damage()) != 0 {
		t.Fatalf("indexed %v damage %v", r.Indexed(), r.Damage())
	}
	if r.Meta().Host != "h" || len(r.Procs()) != 1 || r.Schema().ByName("exec") == nil {
		t.Fatalf("meta %+v procs %+v", r.Meta(), r.Procs())
	}
	if len(r.Chunks()) != 6 {
		t.Fatalf("%d chunks", len(r.Chunks()))
	}
	var c Chunk
	next := make([]int, 2)
	for _, s := range r.Chunks() {
		if err := r.ReadChunk(s, &c); err != nil {
			t.Fatal(err)
		}
		want := all[s.CPU][next[s.CPU] : next[s.CPU]+c.Len()]
		next[s.CPU] += c.Len()
		checkChunk(t, r.Schema(), &c, want)
	}
	sum, err := Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 30000 || len(sum.PerCPU) != 2 || sum.DamagedChunks != 0 {
		t.Fatalf("summary %+v", sum)
	}
	var n uint64
	for _, v := range sum.EventCounts {
		n += v
	}
	if n != 30000 {
		t.Fatalf("event counts %v", sum.EventCounts)
	}
}

func TestEncodeSortsByTimestamp(t *testing.T) {
	s := testSchema(t)
	ev := []Event{
		{TS: 30, Seq: 1, Type: 8, Data: make([]byte, 16)},
		{TS: 10, Seq: 2, Type: 8, Data: make([]byte, 16)},
		{TS: 20, Seq: 3, Type: 8, Data: make([]byte, 16)},
	}
	p, sum, err := NewEncoder(s).EncodeChunk(ChunkInput{Events: ev, FirstSeq: 1, NextSeq: 4})
	if err != nil {
		t.Fatal(err)
	}
	if sum.FirstTS != 10 || sum.LastTS != 30 {
		t.Fatalf("summary %+v", sum)
	}
	var c Chunk
	if err := DecodeChunk(s, p, &c); err != nil {
		t.Fatal(err)
	}
	if c.TS[0] != 10 || c.Seq[0] != 2 || c.TS[2] != 30 || c.Seq[2] != 1 {
		t.Fatalf("ts %v seq %v", c.TS, c.Seq)
	}
}

func TestEncodeRejectsUnknownType(t *testing.T) {
	_, _, err := NewEncoder(testSchema(t)).EncodeChunk(ChunkInput{Events: []Event{{Type: 3}}})
	if err == nil {
		t.Fatal("unknown event type encoded")
	}
}

// readAll opens data and decodes every chunk it can, returning the intact
// chunks' event count and the reader; a chunk it cannot decode must be
// reported damaged at its offset.
func readAll(t *testing.T, data []byte) (events int, r *Reader, err error) {
	r, err = NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return 0, nil, err
	}
	var c Chunk
	for _, s := range r.Chunks() {
		if err := r.ReadChunk(s, &c); err != nil {
			requireDamageAt(t, err, s)
			continue
		}
		events += c.Len()
	}
	return events, r, nil
}

func TestTruncatedKeepsIntactChunks(t *testing.T) {
	data := testFileBytes(t, 2, 4, 2000)
	full, r, err := readAll(t, data)
	if err != nil || full != 16000 {
		t.Fatalf("full file: %d events, %v", full, err)
	}
	chunks := r.Chunks()
	// Cut in the middle of the fifth chunk: four chunks stay whole.
	cut := chunks[4].Offset + chunks[4].Length/2
	got, r2, err := readAll(t, data[:cut])
	if err != nil {
		t.Fatal(err)
	}
	if got != 4*2000 {
		t.Fatalf("truncated file yields %d events, want %d", got, 4*2000)
	}
	if r2.Indexed() {
		t.Fatal("truncated file claims an index")
	}
	d := r2.Damage()
	if len(d) != 1 || d[0].Offset != chunks[4].Offset || d[0].End != cut {
		t.Fatalf("damage %v, want [%d, %d)", d, chunks[4].Offset, cut)
	}
	// Every cut point yields a reader or a clear error, never a panic, and
	// never more events than the whole file.
	for cut := int64(0); cut < int64(len(data)); cut += 997 {
		n, _, err := readAll(t, data[:cut])
		if err != nil && !errors.Is(err, ErrNotSnapshot) && !errors.Is(err, ErrBrokenHeader) {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if n > full {
			t.Fatalf("cut %d: %d events", cut, n)
		}
	}
}

func TestCorruptChunkIsSkipped(t *testing.T) {
	file := testFileBytes(t, 1, 3, 1000)
	data := bytes.Clone(file)
	_, r, err := readAll(t, data)
	if err != nil {
		t.Fatal(err)
	}
	bad := r.Chunks()[1]
	data[bad.Offset+bad.Length/2] ^= 0xff
	got, r2, err := readAll(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if got != 2000 {
		t.Fatalf("got %d events, want the other two chunks' 2000", got)
	}
	d := r2.Damage()
	if len(d) != 1 || d[0].Offset != bad.Offset || d[0].End != bad.End() {
		t.Fatalf("damage %v", d)
	}
	// A damaged section header is skipped by resynchronising on the next.
	data = bytes.Clone(file)
	data[bad.Offset+2] ^= 0xff
	copy(data[len(data)-trailerSize:], make([]byte, trailerSize)) // force a scan
	got, r3, err := readAll(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if got != 2000 || len(r3.Damage()) == 0 || r3.Damage()[0].Offset != bad.Offset {
		t.Fatalf("got %d events, damage %v", got, r3.Damage())
	}
}

func TestNotASnapshot(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	junk := make([]byte, 4096)
	rng.Read(junk)
	if _, err := NewReader(bytes.NewReader(junk), int64(len(junk))); !errors.Is(err, ErrNotSnapshot) {
		t.Fatalf("random bytes: %v", err)
	}
	if _, err := NewReader(bytes.NewReader(nil), 0); !errors.Is(err, ErrNotSnapshot) {
		t.Fatalf("empty: %v", err)
	}
	h := marshalFileHeader()
	le.PutUint16(h[8:], 9)
	if _, err := NewReader(bytes.NewReader(h[:]), headerSize); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("version 9: %v", err)
	}
	h = marshalFileHeader()
	if _, err := NewReader(bytes.NewReader(h[:]), headerSize); !errors.Is(err, ErrBrokenHeader) {
		t.Fatalf("header only: %v", err)
	}
}

// A snapshot written to a stream is the file Create and Commit place.
func TestStreamWriter(t *testing.T) {
	path, _ := writeTestFile(t, 2, 2, 100)
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if stream := testFileBytes(t, 2, 2, 100); !bytes.Equal(stream, file) {
		t.Fatalf("stream of %d bytes, file of %d, differ", len(stream), len(file))
	}
	w := NewWriter(io.Discard)
	w.Abort()
	if err := w.WriteMeta(&Meta{}); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write after Abort: %v", err)
	}
	if err := w.Commit(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("commit after Abort: %v", err)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "x.rwd"))
	if err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}

func TestDecodeWant(t *testing.T) {
	path, all := writeTestFile(t, 1, 1, 3000)
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := r.Schema()
	var want Want
	want.Field(s, "exit", "ret")
	want.Field(s, "nope", "ret") // ignored
	var c Chunk
	if err := r.ReadChunkWant(r.Chunks()[0], &c, &want); err != nil {
		t.Fatal(err)
	}
	exit, enter := s.ByName("exit"), s.ByName("enter")
	if c.Column(exit.ID, exit.Field("ret")) == nil || c.Column(exit.ID, exit.Field("id")) != nil || c.Column(enter.ID, 0) != nil || len(c.Seq) != 0 {
		t.Fatal("decoded other columns than asked for")
	}
	if c.Len() != 3000 || c.TS[0] != all[0][0].TS {
		t.Fatal("common columns wrong")
	}
	for i := 0; i < c.Len(); i++ {
		if c.Type[i] == exit.ID {
			f := exit.Fields[exit.Field("ret")]
			if got, want := c.Column(exit.ID, exit.Field("ret")).UintAt(int(c.Row[i]), 0), payloadField(all[0][i], f, 0); got != want {
				t.Fatalf("event %d ret %d, want %d", i, got, want)
			}
		}
	}
}

func TestCStrLen(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	fill := []byte{0x01, 0x80, 0xff, 0x7f, 'a'}
	for n := 0; n <= 40; n++ {
		for trial := 0; trial < 200; trial++ {
			s := make([]byte, n)
			for i := range s {
				s[i] = fill[rng.Intn(len(fill))]
			}
			for z := rng.Intn(3); z > 0 && n > 0; z-- {
				s[rng.Intn(n)] = 0
			}
			want := bytes.IndexByte(s, 0)
			if want < 0 {
				want = n
			}
			if got := cstrLen(s); got != want {
				t.Fatalf("cstrLen(% x) = %d, want %d", s, got, want)
			}
		}
	}
}
