package snapshot

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/rewindtrace/rewind/snapshot/schema"
)

// Chunk is one decoded chunk: a CPU's events in timestamp order, the common
// fields as slices and each event type's fields as columns. Decode into the
// same Chunk again to reuse its memory.
type Chunk struct {
	CPU               int
	FirstTS, LastTS   uint64
	FirstSeq, NextSeq uint64
	Lost              uint64

	TS   []uint64
	Seq  []uint64
	Type []uint16
	TID  []uint32
	PID  []uint32
	// Row[i] is event i's row in its event type's columns.
	Row []uint32

	counts []TypeCount
	cols   [][]Column // by event id, then field index; nil where absent
	bufs   [][]byte   // decompression buffers, reused
	nbuf   int

	typeRows []int         // by event id up to the schema's largest: events of that type
	unknown  []unknownRows // the types above the schema's largest id, sorted
	next     []uint32      // scratch for index
	// schema is the schema cols are laid out for.
	schema *schema.Schema
}

// unknownRows counts the events of a type above the schema's largest id,
// and the rows index has handed out.
type unknownRows struct {
	typ        uint16
	rows, next uint32
}

// TypeCount is how many events of one type a chunk holds.
type TypeCount struct {
	Type  uint16
	Count int
}

// Len is the number of events.
func (c *Chunk) Len() int { return len(c.TS) }

// Counts returns the events per type, in id order.
func (c *Chunk) Counts() []TypeCount { return c.counts }

// Column returns the column of field index field of event type typ, or nil
// when the chunk has no events of that type or the schema does not know it.
func (c *Chunk) Column(typ uint16, field int) *Column {
	if int(typ) >= len(c.cols) || field < 0 || field >= len(c.cols[typ]) {
		return nil
	}
	col := &c.cols[typ][field]
	if col.N == 0 && col.data == nil {
		return nil
	}
	return col
}

// Column holds one field of every event of one type in a chunk.
type Column struct {
	Field  schema.Field
	N      int // rows
	width  int // bytes per stored element (fixed columns)
	stride int // bytes per row: width × Field.Count
	signed bool
	data   []byte
	offs   []uint32 // string columns: row i is data[offs[2i]:offs[2i+1]]
}

// Uint returns the first element of row as an unsigned integer.
func (c *Column) Uint(row int) uint64 { return c.at(row * c.stride) }

// UintAt returns element elem of row.
func (c *Column) UintAt(row, elem int) uint64 { return c.at(row*c.stride + elem*c.width) }

// at reads the element at byte offset i, sign-extending signed fields.
func (c *Column) at(i int) uint64 {
	switch c.width {
	case 1:
		if c.signed {
			return uint64(int64(int8(c.data[i])))
		}
		return uint64(c.data[i])
	case 2:
		v := le.Uint16(c.data[i:])
		if c.signed {
			return uint64(int64(int16(v)))
		}
		return uint64(v)
	case 4:
		v := le.Uint32(c.data[i:])
		if c.signed {
			return uint64(int64(int32(v)))
		}
		return uint64(v)
	}
	return le.Uint64(c.data[i:])
}

// Int returns the first element of row as a signed integer.
func (c *Column) Int(row int) int64 { return int64(c.UintAt(row, 0)) }

// Bytes returns a string field's bytes; they alias the chunk.
func (c *Column) Bytes(row int) []byte { return c.data[c.offs[2*row]:c.offs[2*row+1]] }

// IsStr reports whether the column holds strings.
func (c *Column) IsStr() bool { return c.offs != nil }

var errShort = errors.New("chunk ends early")

// Want selects the columns to decode, so that readers skip decompressing
// what they do not read. The zero Want decodes the common columns but Seq.
type Want struct {
	Seq bool
	// Fields[id][i] asks for field i of event id.
	Fields [][]bool
}

// Field asks for an event's field by name; unknown names are ignored.
func (w *Want) Field(s *schema.Schema, event, field string) {
	e := s.ByName(event)
	if e == nil || e.Field(field) < 0 {
		return
	}
	for len(w.Fields) <= int(e.ID) {
		w.Fields = append(w.Fields, nil)
	}
	if w.Fields[e.ID] == nil {
		w.Fields[e.ID] = make([]bool, len(e.Fields))
	}
	w.Fields[e.ID][e.Field(field)] = true
}

func (w *Want) field(typ uint16, f int) bool {
	return int(typ) < len(w.Fields) && f < len(w.Fields[typ]) && w.Fields[typ][f]
}

// DecodeChunk decodes a chunk section payload into c. Unknown event types
// keep their events (Type says which) but no columns.
func DecodeChunk(s *schema.Schema, p []byte, c *Chunk) error {
	return DecodeChunkWant(s, p, c, nil)
}

// DecodeChunkWant is DecodeChunk for the columns want selects (all when
// nil); the others read as absent (Column returns nil, Seq is empty).
func DecodeChunkWant(s *schema.Schema, p []byte, c *Chunk, want *Want) error {
	if len(p) < chunkHeaderSize {
		return errShort
	}
	n := int(le.Uint32(p[4:]))
	ncols, ntypes := int(le.Uint16(p[48:])), int(le.Uint16(p[50:]))
	if n == 0 || n > MaxChunkEvents {
		return fmt.Errorf("chunk holds %d events, want 1..%d", n, MaxChunkEvents)
	}
	c.CPU = int(le.Uint16(p[0:]))
	c.FirstTS, c.LastTS = le.Uint64(p[8:]), le.Uint64(p[16:])
	c.FirstSeq, c.NextSeq, c.Lost = le.Uint64(p[24:]), le.Uint64(p[32:]), le.Uint64(p[40:])
	off := chunkHeaderSize
	if len(p) < off+ntypes*typeCountSize+ncols*columnDirSize {
		return errShort
	}
	c.reset(s)
	// Rows per type: by id up to the schema's largest id, so that the
	// schema and not a type id read from the chunk sizes the table; in a
	// sorted list for the ids above it (written by a newer recorder).
	maxType := 0
	for i := 0; i < ntypes; i++ {
		maxType = max(maxType, int(le.Uint16(p[off+i*typeCountSize:])))
	}
	typeRows := grow(c.typeRows, min(maxType, int(s.MaxID()))+1) // all zero: see reset
	c.typeRows = typeRows
	total := 0
	for i := 0; i < ntypes; i++ {
		x := p[off+i*typeCountSize:]
		t, k := le.Uint16(x[0:]), int(le.Uint32(x[4:]))
		if k < 1 || k > n || int(t) < len(typeRows) && typeRows[t] != 0 {
			return fmt.Errorf("type count %d for event type %d is invalid", k, t)
		}
		if int(t) < len(typeRows) {
			typeRows[t] = k
		} else {
			c.unknown = append(c.unknown, unknownRows{typ: t, rows: uint32(k)})
		}
		total += k
		c.counts = append(c.counts, TypeCount{Type: t, Count: k})
	}
	if total != n {
		return fmt.Errorf("type counts add up to %d events, header says %d", total, n)
	}
	slices.SortFunc(c.unknown, func(a, b unknownRows) int { return cmp.Compare(a.typ, b.typ) })
	for i := 1; i < len(c.unknown); i++ {
		if c.unknown[i].typ == c.unknown[i-1].typ {
			return fmt.Errorf("event type %d counted twice", c.unknown[i].typ)
		}
	}
	off += ntypes * typeCountSize
	dir := p[off : off+ncols*columnDirSize]
	data := p[off+ncols*columnDirSize:]

	c.nbuf = 0
	var seen [nCommon]bool
	for i := 0; i < ncols; i++ {
		x := dir[i*columnDirSize:]
		typ, field := le.Uint16(x[0:]), int(le.Uint16(x[2:]))
		enc, width, codec := x[4], int(x[5]), x[6]
		values := int(le.Uint32(x[8:]))
		rawLen, storedLen := int(le.Uint32(x[12:])), int(le.Uint32(x[16:]))
		if storedLen > len(data) {
			return fmt.Errorf("column %d of %d bytes overruns the chunk", i, storedLen)
		}
		if rawLen > maxRawLen(s, typ, field, n) {
			return fmt.Errorf("column %d: raw length %d is more than %d events can need", i, rawLen, n)
		}
		stored := data[:storedLen]
		data = data[storedLen:]
		if want != nil && (typ == 0 && field == colSeq && !want.Seq || typ != 0 && !want.field(typ, field)) {
			if typ == 0 {
				seen[field] = true
			}
			continue
		}
		raw, err := c.unpack(stored, codec, rawLen)
		if err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
		if typ == 0 {
			if field >= nCommon || seen[field] {
				return fmt.Errorf("column %d: unknown or repeated common column %d", i, field)
			}
			seen[field] = true
			if values != n {
				return fmt.Errorf("common column %d holds %d values for %d events", field, values, n)
			}
			if err := c.decodeCommon(field, enc, width, raw, n); err != nil {
				return fmt.Errorf("common column %d: %w", field, err)
			}
			continue
		}
		et := s.ByID(typ)
		if et == nil {
			continue // a reader skips event types it does not know
		}
		rows := 0
		if int(typ) < len(typeRows) {
			rows = typeRows[typ]
		}
		if rows == 0 || field >= len(et.Fields) {
			return fmt.Errorf("column %d: field %d of event type %d not expected", i, field, typ)
		}
		col := &c.cols[typ][field]
		if col.data != nil {
			return fmt.Errorf("column %d: repeated field %d of event type %d", i, field, typ)
		}
		if err := decodeField(col, et.Fields[field], enc, width, raw, values, rows); err != nil {
			return fmt.Errorf("column %d (%s.%s): %w", i, et.Name, et.Fields[field].Name, err)
		}
	}
	for f, ok := range seen {
		if !ok {
			return fmt.Errorf("common column %d missing", f)
		}
	}
	if want != nil && !want.Seq {
		c.Seq = c.Seq[:0]
	}
	for _, tc := range c.counts {
		et := s.ByID(tc.Type)
		if et == nil {
			continue
		}
		for f := range et.Fields {
			if want != nil && !want.field(tc.Type, f) {
				continue
			}
			if c.cols[tc.Type][f].data == nil {
				return fmt.Errorf("event type %s: column %s missing", et.Name, et.Fields[f].Name)
			}
		}
	}
	return c.index()
}

// maxRawLen bounds a column's raw length for n events: ten bytes per varint,
// eight per integer element, a length prefix and the bytes per string.
func maxRawLen(s *schema.Schema, typ uint16, field, n int) int {
	if typ == 0 {
		return n * binary.MaxVarintLen64
	}
	et := s.ByID(typ)
	if et == nil || field >= len(et.Fields) {
		return maxColumnBytes
	}
	f := et.Fields[field]
	if f.Type == schema.Str {
		return n * (binary.MaxVarintLen64 + f.Count)
	}
	return n * f.Count * 8
}

// reset empties what the last decode filled, for a decode with schema s.
// Only the types the last decode counted hold anything (counts, rows,
// columns), so only they are undone: the cost of a decode follows the
// chunk, not the highest event id the schema or the chunk names. A pass
// over every event id happens once per schema.
func (c *Chunk) reset(s *schema.Schema) {
	if c.schema != s {
		need := int(s.MaxID()) + 1
		if cap(c.cols) < need {
			c.cols = make([][]Column, need)
		}
		c.cols = c.cols[:need]
		for t := range c.cols {
			c.cols[t] = c.cols[t][:0]
		}
		for _, e := range s.Events() {
			if cap(c.cols[e.ID]) < len(e.Fields) {
				c.cols[e.ID] = make([]Column, len(e.Fields))
			}
			c.cols[e.ID] = c.cols[e.ID][:len(e.Fields)]
			for f := range e.Fields {
				c.cols[e.ID][f] = Column{Field: e.Fields[f], offs: c.cols[e.ID][f].offs[:0]}
			}
		}
		clear(c.typeRows[:cap(c.typeRows)])
		c.schema = s
		c.counts, c.unknown = c.counts[:0], c.unknown[:0]
		return
	}
	for _, tc := range c.counts {
		if int(tc.Type) < len(c.typeRows) {
			c.typeRows[tc.Type] = 0
		}
		if int(tc.Type) < len(c.cols) {
			cols := c.cols[tc.Type]
			for f := range cols {
				cols[f] = Column{Field: cols[f].Field, offs: cols[f].offs[:0]}
			}
		}
	}
	c.counts, c.unknown = c.counts[:0], c.unknown[:0]
}

// unpack returns a column's raw bytes, decompressing into a reused buffer.
func (c *Chunk) unpack(stored []byte, codec uint8, rawLen int) ([]byte, error) {
	if rawLen > maxColumnBytes {
		return nil, fmt.Errorf("raw length %d too large", rawLen)
	}
	switch codec {
	case codecNone:
		if len(stored) != rawLen {
			return nil, fmt.Errorf("stored %d bytes, raw length says %d", len(stored), rawLen)
		}
		return stored, nil
	case codecZstd:
		_, dec, err := codecs()
		if err != nil {
			return nil, err
		}
		// rawLen comes from the file: before allocating for it, check that
		// the stored bytes could hold it.
		if rawLen > maxZstdRatio*len(stored) {
			return nil, fmt.Errorf("zstd: %d bytes cannot decompress to %d", len(stored), rawLen)
		}
		if c.nbuf == len(c.bufs) {
			c.bufs = append(c.bufs, nil)
		}
		// The decoder stops at the buffer's capacity (WithDecodeAllCapLimit):
		// it refuses a frame whose content size is larger before decoding
		// it, and a damaged frame cannot make it produce more than
		// rawLen+zstdSlack bytes. A smaller frame fails the length check.
		buf := c.bufs[c.nbuf]
		if cap(buf) < rawLen+zstdSlack || cap(buf) > 2*rawLen+4096 {
			buf = make([]byte, 0, rawLen+zstdSlack)
		}
		out, err := dec.DecodeAll(stored, buf[:0:rawLen+zstdSlack])
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if len(out) != rawLen {
			return nil, fmt.Errorf("decompressed %d bytes, raw length says %d", len(out), rawLen)
		}
		c.bufs[c.nbuf] = out
		c.nbuf++
		return out, nil
	}
	return nil, fmt.Errorf("unknown codec %d", codec)
}

func (c *Chunk) decodeCommon(field int, enc uint8, width int, raw []byte, n int) error {
	switch field {
	case colTS, colSeq:
		if enc != encDelta {
			return fmt.Errorf("encoding %d, want delta", enc)
		}
		if len(raw) < n {
			return errShort // a varint takes a byte at least
		}
		if field == colTS {
			c.TS = grow(c.TS, n)
			return decodeDelta(c.TS, raw, c.FirstTS)
		}
		c.Seq = grow(c.Seq, n)
		return decodeDelta(c.Seq, raw, c.FirstSeq)
	case colType:
		return decodeFixed(&c.Type, n, enc, width, raw)
	case colTID:
		return decodeFixed(&c.TID, n, enc, width, raw)
	default:
		return decodeFixed(&c.PID, n, enc, width, raw)
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func decodeDelta(dst []uint64, raw []byte, base uint64) error {
	prev := base
	pos := 0
	for i := range dst {
		var u uint64
		// Time deltas mostly take one to three bytes: those without a loop.
		if pos+2 < len(raw) && raw[pos] < 0x80 {
			u = uint64(raw[pos])
			pos++
		} else if pos+2 < len(raw) && raw[pos+1] < 0x80 {
			u = uint64(raw[pos]&0x7f) | uint64(raw[pos+1])<<7
			pos += 2
		} else if pos+2 < len(raw) && raw[pos+2] < 0x80 {
			u = uint64(raw[pos]&0x7f) | uint64(raw[pos+1]&0x7f)<<7 | uint64(raw[pos+2])<<14
			pos += 3
		} else {
			v, k := binary.Uvarint(raw[pos:])
			if k <= 0 {
				return errShort
			}
			u = v
			pos += k
		}
		prev += uint64(unzigzag(u))
		dst[i] = prev
	}
	if pos != len(raw) {
		return fmt.Errorf("%d bytes left over", len(raw)-pos)
	}
	return nil
}

// decodeFixed widens a fixed column of n values into *dst, grown to n once
// raw is known to hold them; the stored width may not exceed dst's element
// size.
func decodeFixed[T uint16 | uint32](dstp *[]T, n int, enc uint8, width int, raw []byte) error {
	var zero T
	size := 2
	if _, ok := any(zero).(uint32); ok {
		size = 4
	}
	if enc != encFixed {
		return fmt.Errorf("encoding %d, want fixed", enc)
	}
	if width != 1 && width != 2 && width != 4 || width > size {
		return fmt.Errorf("width %d invalid", width)
	}
	if len(raw) != n*width {
		return fmt.Errorf("%d bytes for %d values of %d bytes", len(raw), n, width)
	}
	dst := grow(*dstp, n)
	*dstp = dst
	switch width {
	case 1:
		for i := range dst {
			dst[i] = T(raw[i])
		}
	case 2:
		for i := range dst {
			dst[i] = T(le.Uint16(raw[2*i:]))
		}
	default:
		for i := range dst {
			dst[i] = T(le.Uint32(raw[4*i:]))
		}
	}
	return nil
}

func decodeField(col *Column, f schema.Field, enc uint8, width int, raw []byte, values, rows int) error {
	col.N = rows
	if f.Type == schema.Str {
		if enc != encStr || values != rows {
			return fmt.Errorf("encoding %d with %d values, want strings for %d rows", enc, values, rows)
		}
		if len(raw) < rows {
			return errShort // a length prefix takes a byte at least
		}
		// Index the strings where they are, between length prefixes.
		col.offs = grow(col.offs, 2*rows)
		pos := 0
		for i := 0; i < rows; i++ {
			l, k := binary.Uvarint(raw[pos:])
			if k <= 0 || l > uint64(f.Count) || uint64(len(raw)-pos-k) < l {
				return errShort
			}
			col.offs[2*i] = uint32(pos + k)
			pos += k + int(l)
			col.offs[2*i+1] = uint32(pos)
		}
		if pos != len(raw) {
			return fmt.Errorf("%d bytes left over", len(raw)-pos)
		}
		col.data = raw
		return nil
	}
	if enc != encFixed || (width != 1 && width != 2 && width != 4 && width != 8) || width > f.Type.Size() {
		return fmt.Errorf("encoding %d width %d invalid for %s", enc, width, f.Type)
	}
	if values != rows*f.Count || len(raw) != values*width {
		return fmt.Errorf("%d values in %d bytes for %d rows of %d", values, len(raw), rows, f.Count)
	}
	col.width, col.stride, col.signed = width, width*f.Count, f.Type.Signed()
	col.data = raw
	return nil
}

// index fills Row and checks every event's type against the type counts.
func (c *Chunk) index() error {
	c.Row = grow(c.Row, len(c.Type))
	next := grow(c.next, len(c.typeRows))
	c.next = next
	for _, tc := range c.counts {
		if int(tc.Type) < len(next) {
			next[tc.Type] = 0 // other types have no rows: next is not read for them
		}
	}
	for i, t := range c.Type {
		if int(t) < len(next) {
			if int(next[t]) >= c.typeRows[t] {
				return fmt.Errorf("event %d has type %d beyond its count", i, t)
			}
			c.Row[i] = next[t]
			next[t]++
			continue
		}
		j, ok := slices.BinarySearchFunc(c.unknown, t, func(u unknownRows, t uint16) int { return cmp.Compare(u.typ, t) })
		if !ok || c.unknown[j].next >= c.unknown[j].rows {
			return fmt.Errorf("event %d has type %d beyond its count", i, t)
		}
		c.Row[i] = c.unknown[j].next
		c.unknown[j].next++
	}
	return nil
}
