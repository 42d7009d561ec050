package snapshot

import (
	"bytes"
	"errors"
	"math/rand"
	"runtime"
	"testing"

	"github.com/rewindtrace/rewind/snapshot/schema"
)

// A section header whose length is 2^63 or more once read as a signed
// number stood still in the scan, appending the same section forever. Were
// it to again, go test's -timeout would report the scan's stack: a timer
// here would only add a machine-speed guess.
func TestScanHugeSectionLength(t *testing.T) {
	data := testFileBytes(t, 1, 2, 10)
	_, r, err := readAll(t, data)
	if err != nil {
		t.Fatal(err)
	}
	bad := r.Chunks()[0]
	data = data[:len(data)-trailerSize] // no trailer: a scan
	h := sectionHeader{kind: KindChunk, length: ^uint64(0) - sectionHeaderSize + 1}.marshal()
	copy(data[bad.Offset:], h[:])

	events, r2, err := readAll(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if d := r2.Damage(); events != 10 || len(d) == 0 || d[0].Offset != bad.Offset {
		t.Fatalf("%d events, damage %v; want the second chunk's 10 events and damage at %d", events, d, bad.Offset)
	}
}

// zstdRLE is a zstd frame that says it holds fcs bytes and holds n: one
// RLE block of n times 'x'.
func zstdRLE(fcs uint64, n int) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0} // magic; single segment, 8-byte content size
	b = le.AppendUint64(b, fcs)
	blk := uint32(1 | 1<<1 | n<<3) // last block, RLE, n bytes
	return append(b, byte(blk), byte(blk>>8), byte(blk>>16), 'x')
}

// allocated returns the bytes fn allocates.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A compressed section whose frame claims more than its bytes can hold is
// damage found before allocating for the claim.
func TestSectionClaimsHugeContent(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteMeta(&Meta{CPUs: 1, Clock: "boottime"}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteSchema(testSchema(t)); err != nil {
		t.Fatal(err)
	}
	procs := rawSection(t, w, KindProcs, flagZstd, zstdRLE(200<<20, 100))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	var r *Reader
	var err error
	if n := allocated(func() { r, err = NewReader(bytes.NewReader(data), int64(len(data))) }); n > 1<<20 {
		t.Errorf("reading a %d-byte file allocated %d bytes", len(data), n)
	}
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Damage(); len(d) != 1 || d[0].Offset != procs.Offset || d[0].End != procs.End() {
		t.Fatalf("damage %v, want the process table [%d, %d)", d, procs.Offset, procs.End())
	}
}

// A column whose raw length its stored bytes cannot hold is refused before
// a buffer of that length is allocated.
func TestColumnClaimsHugeRawLength(t *testing.T) {
	const n = 1 << 20
	frame := zstdRLE(10*n, 100)
	p := make([]byte, chunkHeaderSize, chunkHeaderSize+typeCountSize+columnDirSize+len(frame))
	le.PutUint32(p[4:], n)
	le.PutUint16(p[48:], 1) // one column
	le.PutUint16(p[50:], 1) // one type
	p = le.AppendUint16(p, 1)
	p = le.AppendUint16(p, 0)
	p = le.AppendUint32(p, n)
	dir := make([]byte, columnDirSize)
	dir[4], dir[5], dir[6] = encFixed, 1, codecZstd // the event type column
	le.PutUint32(dir[8:], n)
	le.PutUint32(dir[12:], 10*n)
	le.PutUint32(dir[16:], uint32(len(frame)))
	p = append(append(p, dir...), frame...)

	s := testSchema(t)
	var err error
	if got := allocated(func() { err = DecodeChunk(s, p, &Chunk{}) }); got > 1<<20 {
		t.Errorf("decoding a %d-byte chunk allocated %d bytes", len(p), got)
	}
	if err == nil || errors.Is(err, errShort) {
		t.Fatalf("decoded a column of %d bytes from a %d-byte frame: %v", 10*n, len(frame), err)
	}
}

// A chunk decoded with a schema that lacks some of its event types keeps
// those events, with rows of their own, and sizes nothing by their ids.
func TestDecodeUnknownTypes(t *testing.T) {
	s := testSchema(t)
	rng := rand.New(rand.NewSource(4))
	ev := randEvents(rng, 500, 1, 1000)
	p, _, err := NewEncoder(s).EncodeChunk(ChunkInput{Events: ev, FirstSeq: 1, NextSeq: 501})
	if err != nil {
		t.Fatal(err)
	}
	// The reader's schema knows switch (1) and exit (8) only.
	older, err := schema.New([]schema.Event{*s.ByID(1), *s.ByID(8)})
	if err != nil {
		t.Fatal(err)
	}
	var c Chunk
	for range 2 { // the second time into memory the first filled
		if err := DecodeChunk(older, p, &c); err != nil {
			t.Fatal(err)
		}
		rows := map[uint16]uint32{}
		for i, e := range ev {
			if c.Type[i] != e.Type || c.Row[i] != rows[e.Type] {
				t.Fatalf("event %d: type %d row %d, want type %d row %d", i, c.Type[i], c.Row[i], e.Type, rows[e.Type])
			}
			rows[e.Type]++
		}
		if c.Column(7, 0) != nil || c.Column(9, 0) != nil || c.Column(1, 0) == nil {
			t.Fatal("columns of unknown types decoded, or of known ones not")
		}
		if len(c.typeRows) > 9 {
			t.Fatalf("rows table of %d types for a schema whose largest id is 8", len(c.typeRows))
		}
	}
	// A chunk whose type column holds more events of an unknown type than
	// its count is refused.
	bad := append([]byte(nil), p...)
	for i, e := range ev {
		if e.Type == 9 {
			ev[i].Type = 7
			break
		}
	}
	q, _, err := NewEncoder(s).EncodeChunk(ChunkInput{Events: ev, FirstSeq: 1, NextSeq: 501})
	if err != nil {
		t.Fatal(err)
	}
	// Same events, one moved from type 9 to 7: take q's type counts with
	// p's columns.
	copy(bad[chunkHeaderSize:], q[chunkHeaderSize:chunkHeaderSize+4*typeCountSize])
	if err := DecodeChunk(older, bad, &c); err == nil {
		t.Fatal("decoded a chunk whose type counts disagree with its type column")
	}
}
