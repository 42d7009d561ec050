package snapshot

import (
	"bytes"
	"math/rand"
	"os"
	"testing"
)

// FuzzReader feeds arbitrary files to the reader: it must return an error or
// a reader whose chunks decode or fail with a CorruptionError, never panic.
func FuzzReader(f *testing.F) {
	path, _ := writeTestFile(f, 2, 2, 50)
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add(data[:headerSize+10])
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		var c Chunk
		for _, s := range r.Chunks() {
			_ = r.ReadChunk(s, &c)
		}
		if _, err := Summarize(r); err != nil {
			t.Fatalf("summarize: %v", err)
		}
	})
}

// FuzzDecodeChunk feeds arbitrary chunk payloads to the decoder, which must
// reject what it cannot decode and never read out of bounds.
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
	f.Fuzz(func(t *testing.T, p []byte) {
		var c Chunk
		if err := DecodeChunk(s, p, &c); err != nil {
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
