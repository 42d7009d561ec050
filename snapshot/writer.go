package snapshot

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rewindtrace/rewind/snapshot/schema"
)

// Writer writes a snapshot to a temporary file next to its destination and
// renames it into place on Commit, so a reader never sees half a file; or,
// made by NewWriter, to a stream. Write the metadata, schema and process
// table first, then chunks. A Writer is not safe for concurrent use.
type Writer struct {
	f      *os.File // nil for a stream
	name   string   // what errors call the destination: its path, not the temporary file's
	bw     *bufio.Writer
	path   string
	off    uint64
	index  []indexEntry
	err    error // first write error; later calls return it
	closed bool
}

// Create starts a snapshot that Commit will place at path.
func Create(path string) (_ *Writer, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create snapshot: %w", err)
	}
	w := &Writer{f: f, name: path, bw: bufio.NewWriterSize(f, 1<<20), path: path}
	h := marshalFileHeader()
	w.write(h[:])
	if w.err != nil {
		w.Abort()
		return nil, w.err
	}
	return w, nil
}

// NewWriter starts a snapshot written to dst as it goes, through a 1 MiB
// buffer: Commit writes the index and trailer and flushes. Abort drops
// what is still buffered and leaves dst with what reached it (a reader
// salvages its intact sections).
func NewWriter(dst io.Writer) *Writer {
	w := &Writer{name: "snapshot stream", bw: bufio.NewWriterSize(dst, 1<<20)}
	h := marshalFileHeader()
	w.write(h[:])
	return w
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	if _, err := w.bw.Write(b); err != nil {
		w.err = w.fail("write", err)
		return
	}
	w.off += uint64(len(b))
}

// section writes one framed section and records it in the index.
func (w *Writer) section(kind Kind, flags uint16, payload []byte, e indexEntry) error {
	if w.closed {
		return os.ErrClosed
	}
	h := sectionHeader{kind: kind, flags: flags, length: uint64(len(payload)), crc: crc(payload)}.marshal()
	e.Kind, e.Offset, e.Length = kind, w.off, uint64(sectionHeaderSize+len(payload))
	w.write(h[:])
	w.write(payload)
	if w.err == nil && kind != KindIndex {
		w.index = append(w.index, e)
	}
	return w.err
}

func (w *Writer) jsonSection(kind Kind, v any, compress bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", kind, err)
	}
	var flags uint16
	if compress {
		enc, _, err := codecs()
		if err != nil {
			return err
		}
		b, flags = enc.EncodeAll(b, nil), flagZstd
	}
	return w.section(kind, flags, b, indexEntry{})
}

// WriteMeta writes the metadata section.
func (w *Writer) WriteMeta(m *Meta) error { return w.jsonSection(KindMeta, m, false) }

// WriteSchema writes the event schema section.
func (w *Writer) WriteSchema(s *schema.Schema) error {
	return w.jsonSection(KindSchema, schemaJSON{Events: s.Events()}, false)
}

type schemaJSON struct {
	Events []schema.Event `json:"events"`
}

// WriteProcs writes the process table, compressed.
func (w *Writer) WriteProcs(procs []Proc) error { return w.jsonSection(KindProcs, procs, true) }

// WriteChunk writes a chunk encoded by an Encoder.
func (w *Writer) WriteChunk(payload []byte, sum ChunkSummary) error {
	return w.section(KindChunk, 0, payload, indexEntry{
		CPU: uint16(sum.CPU), Events: uint32(sum.Events), FirstTS: sum.FirstTS, LastTS: sum.LastTS, Lost: sum.Lost,
	})
}

// Commit writes the index and trailer, syncs the file and renames it into
// place (a stream's Writer flushes instead). After an error the temporary
// file is removed.
func (w *Writer) Commit() (err error) {
	if w.closed {
		return os.ErrClosed
	}
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	idx := le.AppendUint32(nil, uint32(len(w.index)))
	for _, e := range w.index {
		idx = e.append(idx)
	}
	indexOff := w.off
	if err := w.section(KindIndex, 0, idx, indexEntry{}); err != nil {
		return err
	}
	t := marshalTrailer(indexOff, uint64(sectionHeaderSize+len(idx)))
	w.write(t[:])
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		return w.fail("write", err)
	}
	if w.f == nil {
		w.closed = true
		return nil
	}
	if err := w.f.Sync(); err != nil {
		return w.fail("sync", err) // delayed allocation may find the disk full only now
	}
	if err := w.f.Close(); err != nil {
		return w.fail("close", err)
	}
	if err := os.Rename(w.f.Name(), w.path); err != nil {
		return fmt.Errorf("rename snapshot into place: %w", err)
	}
	w.closed = true
	if d, err := os.Open(filepath.Dir(w.path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil && !errors.Is(err, os.ErrInvalid) {
			return fmt.Errorf("sync directory of %s: %w", w.path, err)
		}
	}
	return nil
}

// fail names the destination in err, an operation's error on the file or
// stream behind it: "write /var/x.rwd: no space left on device", rather
// than the temporary file, which Abort removes, named twice.
func (w *Writer) fail(op string, err error) error {
	if pe, ok := err.(*os.PathError); ok && w.f != nil {
		err = pe.Err
	}
	return fmt.Errorf("%s %s: %w", op, w.name, err)
}

// Abort removes the temporary file (a stream's Writer writes nothing
// more). It is safe to call after Commit and more than once.
func (w *Writer) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	if w.f != nil {
		w.f.Close()
		os.Remove(w.f.Name())
	}
}

// Size is the number of bytes written so far.
func (w *Writer) Size() uint64 { return w.off }
