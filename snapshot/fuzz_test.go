package snapshot

import (
	"bytes"
	"errors"
	"math/rand"
	"slices"
	"sort"
	"testing"

	"github.com/rewindtrace/rewind/snapshot/schema"
)

// FuzzReader feeds arbitrary files to the reader. It must refuse a file
// with one of its documented errors or read it, reporting every damaged
// range as a *CorruptionError inside the file and every chunk it cannot
// decode at that chunk's offset; never panic; and never work longer than
// the file's size allows (the fuzzer's limit per input catches a loop). A
// file laid out as the writer lays one out and read without damage is then
// damaged on purpose, a bit flipped in a chunk and the file cut inside a
// chunk, and each must be reported at that chunk while the others read.
func FuzzReader(f *testing.F) {
	data := testFileBytes(f, 2, 2, 50)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add(data[:headerSize+10])
	for _, p := range pinned {
		f.Add(readTestdata(f, p.file))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := checkRead(t, data)
		if r == nil || !r.Indexed() || len(r.Damage()) > 0 || len(r.Chunks()) == 0 || !tiled(t, r) {
			return
		}
		// The chunk and the byte come from the input, so that the fuzzer
		// reaches every one.
		h := crc(data)
		k := int(h % uint32(len(r.Chunks())))
		s := r.Chunks()[k]
		at := s.Offset + 1 + int64(h>>8)%(s.Length-1)
		bad := append([]byte(nil), data...)
		bad[at] ^= 1 << (h >> 29)
		checkChunkDamage(t, bad, k, at)
		checkTruncated(t, data, r, k, at)
	})
}

// checkRead reads everything in data, checking that every error is one the
// reader documents, and returns the reader, or nil when it refused data.
func checkRead(t *testing.T, data []byte) *Reader {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		if !errors.Is(err, ErrNotSnapshot) && !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrBrokenHeader) {
			t.Fatalf("open: %v is not a documented error", err)
		}
		return nil
	}
	var c Chunk
	for _, s := range r.Chunks() {
		if err := r.ReadChunk(s, &c); err != nil {
			requireDamageAt(t, err, s)
		}
	}
	for _, s := range r.SeriesSections() {
		if _, err := r.ReadSeries(s); err != nil {
			requireDamageAt(t, err, s)
		}
	}
	if _, err := r.Symbols(); err != nil {
		var ce *CorruptionError
		if !errors.As(err, &ce) {
			t.Fatalf("symbols: %v is not a CorruptionError", err)
		}
	}
	if _, err := Summarize(r); err != nil {
		t.Fatalf("summarize: %v", err)
	}
	for _, d := range r.Damage() {
		if d.Offset < 0 || d.Offset >= d.End || d.End > int64(len(data)) {
			t.Fatalf("damage %v outside the file's %d bytes", d, len(data))
		}
	}
	return r
}

// requireDamageAt checks that err reports section s as damaged.
func requireDamageAt(t *testing.T, err error, s Section) {
	t.Helper()
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("%s at %d: %v is not a CorruptionError", s.Kind, s.Offset, err)
	}
	if ce.Offset != s.Offset || ce.End != s.End() {
		t.Fatalf("%s [%d, %d): damage reported at [%d, %d)", s.Kind, s.Offset, s.End(), ce.Offset, ce.End)
	}
}

// indexSections returns the sections r's index lists, the index too, in
// file order. r read its file through the index without damage.
func indexSections(t *testing.T, r *Reader) []Section {
	t.Helper()
	secs, err := r.readIndex()
	if err != nil {
		t.Fatalf("read the index again: %v", err)
	}
	var tr [trailerSize]byte
	if _, err := r.r.ReadAt(tr[:], r.size-trailerSize); err != nil {
		t.Fatal(err)
	}
	off, length, _ := parseTrailer(tr[:])
	secs = append(secs, Section{Kind: KindIndex, Offset: int64(off), Length: int64(length)})
	sort.Slice(secs, func(i, j int) bool { return secs[i].Offset < secs[j].Offset })
	return secs
}

// tiled reports whether r, which read its file through the index without
// damage, found it laid out as the writer lays a file out: sections with
// intact headers one after the other from the file header to the index.
// Only in such a file does damage to one chunk leave the others, and the
// way to them, intact.
func tiled(t *testing.T, r *Reader) bool {
	off := int64(headerSize)
	for _, s := range indexSections(t, r) {
		var hb [sectionHeaderSize]byte
		r.r.ReadAt(hb[:], s.Offset)
		h, ok := parseSectionHeader(hb[:])
		if s.Offset != off || !ok || h.kind != s.Kind || int64(h.length) != s.Length-sectionHeaderSize {
			return false
		}
		off = s.End()
	}
	return true
}

// checkTruncated cuts data at at, inside chunk k, and checks that the
// reader reports damage from that chunk's offset and reads every chunk
// before it.
func checkTruncated(t *testing.T, data []byte, r *Reader, k int, at int64) {
	t.Helper()
	s := r.Chunks()[k]
	secs := indexSections(t, r)
	// A scan takes the first metadata and schema sections in the file: the
	// reader must open the cut file when those are before the cut and read.
	var meta, sch *Section
	var before []Section
	for i, x := range secs {
		if x.End() > s.Offset {
			break
		}
		switch {
		case x.Kind == KindMeta && meta == nil:
			meta = &secs[i]
		case x.Kind == KindSchema && sch == nil:
			sch = &secs[i]
		case x.Kind == KindChunk:
			before = append(before, x)
		}
	}
	var m Meta
	var sj schemaJSON
	opens := meta != nil && sch != nil && r.readJSON(*meta, &m) == nil && r.readJSON(*sch, &sj) == nil
	if opens {
		_, err := schema.New(sj.Events)
		opens = err == nil
	}
	cut := data[:at:at]
	r2, err := NewReader(bytes.NewReader(cut), int64(len(cut)))
	if err != nil {
		if opens {
			t.Fatalf("cut at %d, in chunk %d [%d, %d): %v", at, k, s.Offset, s.End(), err)
		}
		return
	}
	if r2.Indexed() {
		return // the chunk's bytes end in what reads as a trailer and an index
	}
	var c Chunk
	found := 0
	for _, x := range r2.Chunks() {
		if x.End() > s.Offset {
			continue
		}
		if err := r2.ReadChunk(x, &c); err != nil {
			t.Fatalf("cut at %d, in chunk %d: chunk at %d: %v", at, k, x.Offset, err)
		}
		found++
	}
	if found != len(before) {
		t.Fatalf("cut at %d, in chunk %d: %d whole chunks before it, want %d", at, k, found, len(before))
	}
	for _, d := range r2.Damage() {
		if d.Offset == s.Offset {
			return
		}
	}
	t.Fatalf("cut at %d, in chunk %d [%d, %d): damage %v", at, k, s.Offset, s.End(), r2.Damage())
}

// FuzzDecodeChunk feeds arbitrary chunk payloads to the decoder, which must
// reject what it cannot decode and never read out of bounds; and to a
// reader, as a chunk section with its checksums right, which must decode
// it the same way or report the section damaged.
func FuzzDecodeChunk(f *testing.F) {
	s := testSchema(f)
	rng := rand.New(rand.NewSource(3))
	for _, n := range []int{1, 7, 300} {
		p, _, err := NewEncoder(s).EncodeChunk(ChunkInput{Events: randEvents(rng, n, 5, 1000), FirstSeq: 5, NextSeq: 5 + uint64(n)})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	seed, _, err := NewEncoder(s).EncodeChunk(ChunkInput{Events: randEvents(rng, 20, 1, 1000), FirstSeq: 1, NextSeq: 21})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		var c Chunk
		err := DecodeChunk(s, p, &c)
		// A chunk decoded into memory that held another decodes the same.
		var reused Chunk
		if err := DecodeChunk(s, seed, &reused); err != nil {
			t.Fatal(err)
		}
		if rerr := DecodeChunk(s, p, &reused); (err == nil) != (rerr == nil) {
			t.Fatalf("fresh chunk: %v; reused chunk: %v", err, rerr)
		} else if err == nil {
			sameChunk(t, s, &c, &reused)
		}
		r, sec := oneSection(t, s, KindChunk, 0, p)
		var rc Chunk
		switch cerr := r.ReadChunk(sec, &rc); {
		case (err == nil) != (cerr == nil):
			t.Fatalf("decoder says %v, reader says %v", err, cerr)
		case cerr != nil:
			requireDamageAt(t, cerr, sec)
			return
		}
		// A chunk that decodes is consistent: every event's row exists in
		// every column of its type.
		for i, typ := range c.Type {
			et := s.ByID(typ)
			if et == nil {
				continue
			}
			for fi := range et.Fields {
				col := c.Column(typ, fi)
				if col == nil || int(c.Row[i]) >= col.N {
					t.Fatalf("event %d: no row %d in column %d", i, c.Row[i], fi)
				}
				if col.IsStr() {
					_ = col.Bytes(int(c.Row[i]))
				} else {
					_ = col.UintAt(int(c.Row[i]), et.Fields[fi].Count-1)
				}
			}
		}
	})
}

// sameChunk checks that a and b hold the same events.
func sameChunk(t *testing.T, s *schema.Schema, a, b *Chunk) {
	t.Helper()
	if a.CPU != b.CPU || a.FirstTS != b.FirstTS || a.LastTS != b.LastTS || a.FirstSeq != b.FirstSeq || a.NextSeq != b.NextSeq || a.Lost != b.Lost ||
		!slices.Equal(a.TS, b.TS) || !slices.Equal(a.Seq, b.Seq) || !slices.Equal(a.Type, b.Type) ||
		!slices.Equal(a.TID, b.TID) || !slices.Equal(a.PID, b.PID) || !slices.Equal(a.Row, b.Row) || !slices.Equal(a.Counts(), b.Counts()) {
		t.Fatal("chunks differ in their common fields")
	}
	for _, e := range s.Events() {
		for f, field := range e.Fields {
			ca, cb := a.Column(e.ID, f), b.Column(e.ID, f)
			if (ca == nil) != (cb == nil) {
				t.Fatalf("%s.%s: column %v in one chunk, %v in the other", e.Name, field.Name, ca != nil, cb != nil)
			}
			if ca == nil {
				continue
			}
			for row := 0; row < ca.N; row++ {
				if ca.IsStr() {
					if !bytes.Equal(ca.Bytes(row), cb.Bytes(row)) {
						t.Fatalf("%s.%s row %d differs", e.Name, field.Name, row)
					}
					continue
				}
				for el := 0; el < field.Count; el++ {
					if ca.UintAt(row, el) != cb.UintAt(row, el) {
						t.Fatalf("%s.%s row %d differs", e.Name, field.Name, row)
					}
				}
			}
		}
	}
}

// oneSection returns a reader of a file that holds one section, of kind
// with payload p and its checksums right, so that reading it reaches the
// decoder; and the section. The reader has the schema s and nothing else
// NewReader would read, which the fuzz targets leave out for speed.
func oneSection(t testing.TB, s *schema.Schema, kind Kind, flags uint16, p []byte) (*Reader, Section) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	sec := rawSection(t, w, kind, flags, p)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return &Reader{r: bytes.NewReader(buf.Bytes()), size: int64(buf.Len()), schema: s, Major: FormatMajor, Minor: FormatMinor}, sec
}

// rawSection writes a section of kind with payload p as it is, whatever p
// holds, and returns where it is.
func rawSection(t testing.TB, w *Writer, kind Kind, flags uint16, p []byte) Section {
	off := w.Size()
	if err := w.section(kind, flags, p, indexEntry{}); err != nil {
		t.Fatal(err)
	}
	return Section{Kind: kind, Offset: int64(off), Length: int64(w.Size() - off)}
}
