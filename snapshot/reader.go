package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/rewindtrace/rewind/snapshot/schema"
)

// Section is one section of a file, as the index or a scan found it.
type Section struct {
	Kind    Kind
	Offset  int64 // of the section header
	Length  int64 // header and payload
	CPU     int
	Events  int
	FirstTS uint64
	LastTS  uint64
	Lost    uint64
}

// End is the offset just past the section.
func (s Section) End() int64 { return s.Offset + s.Length }

// Reader reads a snapshot. Open parses everything but the chunks, which
// ReadChunk decodes one at a time. A Reader is safe for concurrent
// ReadChunk calls with distinct Chunks.
type Reader struct {
	r       io.ReaderAt
	size    int64
	closer  io.Closer
	Major   uint16
	Minor   uint16
	meta    Meta
	schema  *schema.Schema
	procs   []Proc
	chunks  []Section
	series  []Section
	symbols *Section
	indexed bool

	mu     sync.Mutex // guards damage
	damage []*CorruptionError
}

// Open opens the snapshot at path.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	r, err := NewReader(f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// Close closes the file Open opened.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	c := r.closer
	r.closer = nil
	return c.Close()
}

// NewReader reads a snapshot of size bytes from ra. It fails only when the
// data is not a snapshot, has an unsupported version, or its metadata or
// schema cannot be read; other damage is reported by Damage.
func NewReader(ra io.ReaderAt, size int64) (*Reader, error) {
	r := &Reader{r: ra, size: size}
	var h [headerSize]byte
	if size < headerSize {
		return nil, fmt.Errorf("%w: %d bytes is shorter than a header", ErrNotSnapshot, size)
	}
	if _, err := ra.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if [8]byte(h[:8]) != fileMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrNotSnapshot, h[:8])
	}
	r.Major, r.Minor = le.Uint16(h[8:]), le.Uint16(h[10:])
	if r.Major != FormatMajor {
		return nil, fmt.Errorf("%w: %d.%d (this rewind reads %d.x)", ErrUnsupportedVersion, r.Major, r.Minor, FormatMajor)
	}
	sections, err := r.readIndex()
	if err != nil {
		sections = r.scan()
	} else {
		r.indexed = true
	}
	var meta, sch, procs *Section
	for i := range sections {
		s := &sections[i]
		switch s.Kind {
		case KindMeta:
			if meta == nil {
				meta = s
			}
		case KindSchema:
			if sch == nil {
				sch = s
			}
		case KindProcs:
			if procs == nil {
				procs = s
			}
		case KindChunk:
			r.chunks = append(r.chunks, *s)
		case KindSeries:
			r.series = append(r.series, *s)
		case KindSymbols:
			if r.symbols == nil {
				r.symbols = s
			}
		}
	}
	if meta == nil || sch == nil {
		return nil, fmt.Errorf("%w: no intact metadata or schema section", ErrBrokenHeader)
	}
	if err := r.readJSON(*meta, &r.meta); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrBrokenHeader, err)
	}
	var sj schemaJSON
	if err := r.readJSON(*sch, &sj); err != nil {
		return nil, fmt.Errorf("%w: schema: %v", ErrBrokenHeader, err)
	}
	if r.schema, err = schema.New(sj.Events); err != nil {
		return nil, fmt.Errorf("%w: schema: %v", ErrBrokenHeader, err)
	}
	if procs != nil {
		r.damaged(r.readJSON(*procs, &r.procs))
	}
	return r, nil
}

// Meta returns the snapshot's metadata.
func (r *Reader) Meta() *Meta { return &r.meta }

// Schema returns the schema the file carries.
func (r *Reader) Schema() *schema.Schema { return r.schema }

// Procs returns the process table taken at snapshot time.
func (r *Reader) Procs() []Proc { return r.procs }

// Chunks returns every chunk section, in file order.
func (r *Reader) Chunks() []Section { return r.chunks }

// Span returns the earliest and latest timestamps the chunks and counter
// series claim, without reading them.
func (r *Reader) Span() (first, last uint64) {
	found := false
	for _, c := range append(r.chunks[:len(r.chunks):len(r.chunks)], r.series...) {
		if c.LastTS == 0 {
			continue // a section found by scanning, without its times
		}
		if !found || c.FirstTS < first {
			first = c.FirstTS
		}
		found = true
		last = max(last, c.LastTS)
	}
	return first, last
}

// Size is the file size.
func (r *Reader) Size() int64 { return r.size }

// Indexed reports whether the sections came from the file's index rather
// than a scan (a scan means the file was truncated or its index damaged).
func (r *Reader) Indexed() bool { return r.indexed }

// Damage returns the damaged byte ranges found so far, in file order. Reads
// of damaged chunks add to it.
func (r *Reader) Damage() []*CorruptionError {
	r.mu.Lock()
	defer r.mu.Unlock()
	sort.Slice(r.damage, func(i, j int) bool { return r.damage[i].Offset < r.damage[j].Offset })
	return append([]*CorruptionError(nil), r.damage...)
}

// damaged adds err to Damage when it is a *CorruptionError, and returns it.
func (r *Reader) damaged(err error) error {
	var ce *CorruptionError
	if errors.As(err, &ce) {
		r.addDamage(ce)
	}
	return err
}

func (r *Reader) addDamage(e *CorruptionError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.damage {
		if d.Offset == e.Offset && d.End == e.End {
			return
		}
	}
	r.damage = append(r.damage, e)
}

// readIndex follows the trailer to the index.
func (r *Reader) readIndex() ([]Section, error) {
	if r.size < headerSize+trailerSize {
		return nil, errShort
	}
	var t [trailerSize]byte
	if _, err := r.r.ReadAt(t[:], r.size-trailerSize); err != nil {
		return nil, err
	}
	// Offsets and lengths come from the file: they are compared as read,
	// never added where the sum could wrap around.
	off, length, ok := parseTrailer(t[:])
	end := uint64(r.size - trailerSize)
	if !ok || off < headerSize || length < sectionHeaderSize || off > end || length != end-off {
		return nil, errors.New("no intact trailer")
	}
	idx := Section{Kind: KindIndex, Offset: int64(off), Length: int64(length)}
	p, err := r.payload(idx)
	if err != nil {
		return nil, r.damaged(err)
	}
	if len(p) < 4 {
		return nil, errShort
	}
	n := int(le.Uint32(p))
	if len(p) != 4+n*indexEntrySize {
		r.addDamage(corrupt(idx.Offset, idx.End(), "index of %d bytes holds no %d entries", len(p), n))
		return nil, errShort
	}
	out := make([]Section, 0, n)
	for i := 0; i < n; i++ {
		e := parseIndexEntry(p[4+i*indexEntrySize:])
		if e.Offset < headerSize || e.Length < sectionHeaderSize || e.Offset > off || e.Length > off-e.Offset {
			r.addDamage(corrupt(idx.Offset, idx.End(), "index entry %d points outside the file", i))
			return nil, errShort
		}
		out = append(out, Section{Kind: e.Kind, Offset: int64(e.Offset), Length: int64(e.Length),
			CPU: int(e.CPU), Events: int(e.Events), FirstTS: e.FirstTS, LastTS: e.LastTS, Lost: e.Lost})
	}
	return out, nil
}

// scan walks the sections from the start, resynchronising on the section
// magic after damage, and records what it skips.
func (r *Reader) scan() []Section {
	var out []Section
	off := int64(headerSize)
	var hb [sectionHeaderSize]byte
	var buf []byte // resync's, allocated once
	for off < r.size {
		n, _ := r.r.ReadAt(hb[:], off)
		if n >= 4 && [4]byte(hb[:4]) == trailerMagic && off+trailerSize == r.size {
			break
		}
		h, ok := parseSectionHeader(hb[:n])
		if ok && r.fits(off, h.length) {
			s := Section{Kind: h.kind, Offset: off, Length: sectionHeaderSize + int64(h.length)}
			if s.Kind == KindChunk {
				r.chunkSummary(&s)
			}
			out = append(out, s)
			off = s.End()
			continue
		}
		next := r.resync(off+1, &buf)
		reason := "no section header"
		if ok {
			reason = fmt.Sprintf("%s section of %d bytes runs past the end of the file", h.kind, h.length)
		}
		r.addDamage(corrupt(off, next, "%s (file truncated or overwritten)", reason))
		off = next
	}
	return out
}

// fits reports whether a section whose header is at off and whose payload
// is length bytes lies inside the file. length is compared as read: a
// length above 2^63 must not turn negative and pass (the scan would then
// stand still).
func (r *Reader) fits(off int64, length uint64) bool {
	return off >= headerSize && off <= r.size-sectionHeaderSize && length <= uint64(r.size-off-sectionHeaderSize)
}

// resync finds the next offset at or after from that holds an intact
// section header, or the file size. It reads the file through *bufp, which
// it allocates the first time, no larger than the file.
func (r *Reader) resync(from int64, bufp *[]byte) int64 {
	if from >= r.size {
		return r.size
	}
	if *bufp == nil {
		*bufp = make([]byte, min(1<<16, r.size-headerSize)+sectionHeaderSize)
	}
	buf := *bufp
	block := int64(len(buf) - sectionHeaderSize)
	for off := from; off < r.size; off += block {
		n, _ := r.r.ReadAt(buf, off)
		b := buf[:n]
		for i := 0; i+4 <= len(b) && int64(i) < block; i++ {
			j := bytes.Index(b[i:], sectionMagic[:])
			if j < 0 || int64(i+j) >= block {
				break
			}
			i += j
			var hb [sectionHeaderSize]byte
			m, _ := r.r.ReadAt(hb[:], off+int64(i))
			if h, ok := parseSectionHeader(hb[:m]); ok && r.fits(off+int64(i), h.length) {
				return off + int64(i)
			}
		}
	}
	return r.size
}

// chunkSummary fills a scanned chunk's index fields from its header.
func (r *Reader) chunkSummary(s *Section) {
	var b [chunkHeaderSize]byte
	if s.Length < sectionHeaderSize+chunkHeaderSize {
		return
	}
	if _, err := r.r.ReadAt(b[:], s.Offset+sectionHeaderSize); err != nil {
		return
	}
	s.CPU = int(le.Uint16(b[0:]))
	s.Events = int(le.Uint32(b[4:]))
	s.FirstTS, s.LastTS, s.Lost = le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[40:])
}

// payload reads a section's payload and checks its header and CRC.
func (r *Reader) payload(s Section) ([]byte, error) {
	if s.Length < sectionHeaderSize || s.Offset < 0 || s.End() > r.size {
		return nil, corrupt(s.Offset, min(s.End(), r.size), "section out of bounds")
	}
	buf := make([]byte, s.Length)
	if _, err := r.r.ReadAt(buf, s.Offset); err != nil {
		return nil, corrupt(s.Offset, s.End(), "read: %v", err)
	}
	h, ok := parseSectionHeader(buf)
	if !ok || h.kind != s.Kind || int64(h.length) != s.Length-sectionHeaderSize {
		return nil, corrupt(s.Offset, s.End(), "%s section header damaged", s.Kind)
	}
	p := buf[sectionHeaderSize:]
	if crc(p) != h.crc {
		return nil, corrupt(s.Offset, s.End(), "%s section checksum mismatch", s.Kind)
	}
	if h.flags&flagZstd != 0 {
		if _, _, err := codecs(); err != nil {
			return nil, err
		}
		var err error
		if p, err = unzstd(p); err != nil {
			return nil, corrupt(s.Offset, s.End(), "%s section: %v", s.Kind, err)
		}
	}
	return p, nil
}

// unzstd decompresses a section payload, one zstd frame, into at most
// maxJSONLength bytes, and never allocates for more than the frame can
// hold: a frame that declares its size (the writer's always do) is decoded
// into a buffer of that size and must fill it exactly. Call codecs first.
func unzstd(p []byte) ([]byte, error) {
	if len(p) == 0 {
		return nil, nil
	}
	limit := min(maxJSONLength, maxZstdRatio*int64(len(p)))
	var h zstd.Header
	if err := h.Decode(p); err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if !h.HasFCS {
		// Output grows with what is decoded, so with the file's bytes.
		out, err := zstdCodec.sdec.DecodeAll(p, nil)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if int64(len(out)) > limit {
			return nil, fmt.Errorf("zstd: %d bytes decompress to %d, more than %d", len(p), len(out), limit)
		}
		return out, nil
	}
	if h.FrameContentSize > uint64(limit) {
		return nil, fmt.Errorf("zstd: frame of %d bytes says it holds %d, more than %d", len(p), h.FrameContentSize, limit)
	}
	n := int(h.FrameContentSize)
	out, err := zstdCodec.dec.DecodeAll(p, make([]byte, 0, n+zstdSlack))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if len(out) != n {
		return nil, fmt.Errorf("zstd: decompressed %d bytes, frame says %d", len(out), n)
	}
	return out, nil
}

// readJSON decodes a JSON section into v. A section that cannot be read
// or decoded returns a *CorruptionError; the caller adds it to Damage if
// the file is still read.
func (r *Reader) readJSON(s Section, v any) error {
	if s.Length-sectionHeaderSize > maxJSONLength {
		return corrupt(s.Offset, s.End(), "%s section of %d bytes is too large", s.Kind, s.Length)
	}
	p, err := r.payload(s)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(p, v); err != nil {
		return corrupt(s.Offset, s.End(), "decode %s: %w", s.Kind, err)
	}
	return nil
}

// ReadChunk reads, checks and decodes one chunk into c. A damaged chunk
// returns a *CorruptionError, which Damage also reports afterwards.
func (r *Reader) ReadChunk(s Section, c *Chunk) error { return r.ReadChunkWant(s, c, nil) }

// ReadChunkWant is ReadChunk decoding only the columns want selects.
func (r *Reader) ReadChunkWant(s Section, c *Chunk, want *Want) error {
	p, err := r.payload(s)
	if err == nil {
		if err = DecodeChunkWant(r.schema, p, c, want); err != nil {
			err = corrupt(s.Offset, s.End(), "chunk: %v", err)
		}
	}
	return r.damaged(err)
}

// ChunkCounts reads and checks one chunk's payload and returns its events
// per type without decoding its columns.
func (r *Reader) ChunkCounts(s Section) ([]TypeCount, error) {
	p, err := r.payload(s)
	if err != nil {
		return nil, r.damaged(err)
	}
	if len(p) < chunkHeaderSize {
		return nil, r.damaged(corrupt(s.Offset, s.End(), "chunk: %v", errShort))
	}
	ntypes := int(le.Uint16(p[50:]))
	if len(p) < chunkHeaderSize+ntypes*typeCountSize {
		return nil, r.damaged(corrupt(s.Offset, s.End(), "chunk: %v", errShort))
	}
	out := make([]TypeCount, ntypes)
	for i := range out {
		x := p[chunkHeaderSize+i*typeCountSize:]
		out[i] = TypeCount{Type: le.Uint16(x), Count: int(le.Uint32(x[4:]))}
	}
	return out, nil
}
