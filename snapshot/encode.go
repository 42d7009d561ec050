package snapshot

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"runtime"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/rewindtrace/rewind/snapshot/schema"
)

// Chunk header and column directory layout (docs/FORMAT.md, "Chunk").
const (
	chunkHeaderSize = 56
	typeCountSize   = 8
	columnDirSize   = 24
	// MaxChunkEvents bounds the events in one chunk.
	MaxChunkEvents = 1 << 20
	// maxColumnBytes bounds one decompressed column.
	maxColumnBytes = 256 << 20
	// maxZstdRatio bounds what a zstd frame of n bytes can decompress to,
	// n × maxZstdRatio: a block yields at most 128 KiB and takes at least
	// four bytes (an RLE block: its three-byte header and the byte to
	// repeat). A size declared beyond that is damage, found before
	// allocating for it.
	maxZstdRatio = (128 << 10) / 4
	// zstdSlack is room past a decompressed size that lets the decoder copy
	// in 16-byte blocks, its fast path, into a buffer it may not grow.
	zstdSlack = 64
)

// Column encodings.
const (
	encFixed = 1 // little-endian values of `width` bytes
	encDelta = 2 // zigzag varints of the difference from the previous value
	encStr   = 3 // per value: uvarint length, then the bytes
)

// Column codecs.
const (
	codecNone = 0
	codecZstd = 1
)

// Common columns: event type 0, field numbers below.
const (
	colType = 0
	colTS   = 1
	colSeq  = 2
	colTID  = 3
	colPID  = 4
	nCommon = 5
)

// zstd encoder and decoder shared by every goroutine: EncodeAll and
// DecodeAll are safe for concurrent use.
var zstdCodec struct {
	once sync.Once
	enc  *zstd.Encoder
	dec  *zstd.Decoder // columns: output capped at the destination's capacity
	sdec *zstd.Decoder // JSON sections: output capped at maxJSONLength
	err  error
}

func codecs() (*zstd.Encoder, *zstd.Decoder, error) {
	zstdCodec.once.Do(func() {
		n := runtime.GOMAXPROCS(0)
		zstdCodec.enc, zstdCodec.err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(n), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
		if zstdCodec.err != nil {
			return
		}
		zstdCodec.dec, zstdCodec.err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(n),
			zstd.WithDecoderMaxMemory(maxColumnBytes), zstd.WithDecodeAllCapLimit(true), zstd.IgnoreChecksum(true))
		if zstdCodec.err != nil {
			return
		}
		zstdCodec.sdec, zstdCodec.err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(uint64(maxJSONLength)))
	})
	return zstdCodec.enc, zstdCodec.dec, zstdCodec.err
}

// ChunkInput is one CPU's run of events for a chunk.
type ChunkInput struct {
	CPU int
	// Events in any order; EncodeChunk sorts them by timestamp in place.
	Events []Event
	// FirstSeq and NextSeq span the sequence numbers the chunk covers, and
	// Lost counts those in the span that hold no event.
	FirstSeq, NextSeq uint64
	Lost              uint64
}

// ChunkSummary is what the index records about a chunk.
type ChunkSummary struct {
	CPU             int
	Events          int
	FirstTS, LastTS uint64
	Lost            uint64
}

// Encoder encodes chunks. It reuses its buffers, so it is not safe for
// concurrent use; use one per goroutine.
type Encoder struct {
	schema *schema.Schema
	types  [][]fieldIn  // per event id: its fields, nil when not in the schema
	counts []int        // per event id: its events in the chunk
	fcols  [][]fieldCol // per event id and field: the chunk's values
	cols   []colOut
	raw    [][]byte // one scratch buffer per column position
}

// fieldIn is how to read one field out of an event's payload.
type fieldIn struct {
	off, count, size int
	str, signed      bool
}

// fieldCol gathers one field's values, in event order, as the chunk's
// events are read: each event's payload is read once, while it is in cache.
type fieldCol struct {
	vals []uint64 // integers, widened to 64 bits (not yet sign-extended)
	str  []byte   // strings, as the column stores them
}

type colOut struct {
	typ, field uint16
	enc, width uint8
	values     uint32
	raw        []byte
}

// NewEncoder returns an encoder for events of the schema.
func NewEncoder(s *schema.Schema) *Encoder {
	n := int(s.MaxID()) + 1
	e := &Encoder{schema: s, types: make([][]fieldIn, n), counts: make([]int, n), fcols: make([][]fieldCol, n)}
	for i := range e.types {
		et := s.ByID(uint16(i))
		if et == nil {
			continue
		}
		fs := make([]fieldIn, len(et.Fields))
		for fi, f := range et.Fields {
			fs[fi] = fieldIn{off: f.Offset, count: f.Count, size: f.Type.Size(), str: f.Type == schema.Str, signed: f.Type.Signed()}
		}
		e.types[i] = fs
		e.fcols[i] = make([]fieldCol, len(fs))
	}
	return e
}

// EncodeChunk encodes in as a chunk section payload.
func (e *Encoder) EncodeChunk(in ChunkInput) ([]byte, ChunkSummary, error) {
	ev := in.Events
	if len(ev) == 0 || len(ev) > MaxChunkEvents {
		return nil, ChunkSummary{}, fmt.Errorf("encode chunk: %d events, want 1..%d", len(ev), MaxChunkEvents)
	}
	if in.CPU < 0 || in.CPU > 0xffff {
		return nil, ChunkSummary{}, fmt.Errorf("encode chunk: cpu %d out of range", in.CPU)
	}
	for i := range ev {
		if t := ev[i].Type; int(t) >= len(e.types) || e.types[t] == nil {
			return nil, ChunkSummary{}, fmt.Errorf("encode chunk: event type %d is not in the schema", t)
		}
	}
	sortByTS(ev)
	for t := range e.counts {
		e.counts[t] = 0
		for fi := range e.fcols[t] {
			c := &e.fcols[t][fi]
			c.vals, c.str = c.vals[:0], c.str[:0]
		}
	}
	e.gather(ev)
	sum := ChunkSummary{CPU: in.CPU, Events: len(ev), FirstTS: ev[0].TS, LastTS: ev[len(ev)-1].TS, Lost: in.Lost}
	e.cols = e.cols[:0]

	// Common columns. Event ids are narrow; tids and pids take the width
	// their largest value needs.
	typeWidth := 1
	if e.schema.MaxID() > 0xff {
		typeWidth = 2
	}
	buf := e.scratch(len(ev) * typeWidth)
	for i := range ev {
		if typeWidth == 1 {
			buf = append(buf, byte(ev[i].Type))
		} else {
			buf = le.AppendUint16(buf, ev[i].Type)
		}
	}
	e.cols = append(e.cols, colOut{field: colType, enc: encFixed, width: uint8(typeWidth), values: uint32(len(ev)), raw: buf})
	buf = e.scratch(len(ev) * 2)
	prev := sum.FirstTS
	for i := range ev {
		buf = binary.AppendUvarint(buf, zigzag(int64(ev[i].TS-prev)))
		prev = ev[i].TS
	}
	e.cols = append(e.cols, colOut{field: colTS, enc: encDelta, values: uint32(len(ev)), raw: buf})
	buf = e.scratch(len(ev))
	prev = in.FirstSeq
	for i := range ev {
		buf = binary.AppendUvarint(buf, zigzag(int64(ev[i].Seq-prev)))
		prev = ev[i].Seq
	}
	e.cols = append(e.cols, colOut{field: colSeq, enc: encDelta, values: uint32(len(ev)), raw: buf})
	var tidOr, pidOr uint32
	for i := range ev {
		tidOr |= ev[i].TID
		pidOr |= ev[i].PID
	}
	e.addIDs(colTID, ev, false, widthOf(uint64(tidOr)))
	e.addIDs(colPID, ev, true, widthOf(uint64(pidOr)))

	// Field columns, event type by event type.
	var types []uint16
	for t, n := range e.counts {
		if n == 0 {
			continue
		}
		types = append(types, uint16(t))
		for fi, f := range e.types[t] {
			c := &e.fcols[t][fi]
			if f.str {
				e.cols = append(e.cols, colOut{typ: uint16(t), field: uint16(fi), enc: encStr, values: uint32(n), raw: c.str})
				continue
			}
			e.addFixed(uint16(t), uint16(fi), c.vals, width(c.vals, f))
		}
	}
	return e.finish(in, sum, types)
}

// gather reads every field of every event, in event order, into the
// field columns. An array's bytes past the end of a payload read as zero;
// a scalar that does not fit reads as zero.
func (e *Encoder) gather(ev []Event) {
	for i := range ev {
		t, d := ev[i].Type, ev[i].Data
		e.counts[t]++
		cols := e.fcols[t]
		for fi, f := range e.types[t] {
			c := &cols[fi]
			off := f.off
			switch {
			case f.str:
				var s []byte
				if off < len(d) {
					s = d[off:min(len(d), off+f.count)]
				}
				s = s[:cstrLen(s)]
				c.str = binary.AppendUvarint(c.str, uint64(len(s)))
				c.str = append(c.str, s...)
			case f.count > 1:
				if f.size == 8 && off+8*f.count <= len(d) {
					for k := 0; k < f.count; k++ {
						c.vals = append(c.vals, le.Uint64(d[off+8*k:]))
					}
					continue
				}
				for k := 0; k < f.count; k++ {
					c.vals = append(c.vals, readRaw(d, off+k*f.size, f.size, false))
				}
			case off+f.size <= len(d):
				c.vals = append(c.vals, loadLE(d, off, f.size))
			default:
				c.vals = append(c.vals, 0) // a scalar cut short reads as zero
			}
		}
	}
}

// width sign-extends a signed field's values in place and returns the
// narrowest width that holds them all.
func width(vals []uint64, f fieldIn) int {
	if !f.signed {
		var or uint64
		for _, v := range vals {
			or |= v
		}
		return widthOf(or)
	}
	var lo, hi int64
	shift := uint(64 - 8*f.size)
	for i, v := range vals {
		v = uint64(int64(v<<shift) >> shift)
		vals[i] = v
		lo, hi = min(lo, int64(v)), max(hi, int64(v))
	}
	switch {
	case lo >= -1<<7 && hi < 1<<7:
		return 1
	case lo >= -1<<15 && hi < 1<<15:
		return 2
	case lo >= -1<<31 && hi < 1<<31:
		return 4
	}
	return 8
}

// widthOf is the bytes an unsigned value (or the OR of several) needs.
func widthOf(or uint64) int {
	switch {
	case or < 1<<8:
		return 1
	case or < 1<<16:
		return 2
	case or < 1<<32:
		return 4
	}
	return 8
}

// loadLE reads the little-endian integer of size bytes (1, 2, 4 or 8) at
// off, which d holds whole.
func loadLE(d []byte, off, size int) uint64 {
	switch size {
	case 1:
		return uint64(d[off])
	case 2:
		return uint64(le.Uint16(d[off:]))
	case 4:
		return uint64(le.Uint32(d[off:]))
	}
	return le.Uint64(d[off:])
}

// readRaw reads a little-endian integer of size bytes at off, sign-extended
// when signed; bytes past the end of d read as zero.
func readRaw(d []byte, off, size int, signed bool) uint64 {
	var v uint64
	if off+size <= len(d) {
		v = loadLE(d, off, size)
	} else {
		var b [8]byte
		if off < len(d) {
			copy(b[:size], d[off:])
		}
		v = le.Uint64(b[:])
	}
	if signed && size < 8 {
		shift := uint(64 - 8*size)
		v = uint64(int64(v<<shift) >> shift)
	}
	return v
}

// addFixed stores vals at width w bytes each.
func (e *Encoder) addFixed(typ, field uint16, vals []uint64, w int) {
	buf := e.scratch(len(vals) * w)[:len(vals)*w]
	switch w {
	case 1:
		for i, v := range vals {
			buf[i] = byte(v)
		}
	case 2:
		for i, v := range vals {
			le.PutUint16(buf[2*i:], uint16(v))
		}
	case 4:
		for i, v := range vals {
			le.PutUint32(buf[4*i:], uint32(v))
		}
	default:
		for i, v := range vals {
			le.PutUint64(buf[8*i:], v)
		}
	}
	e.cols = append(e.cols, colOut{typ: typ, field: field, enc: encFixed, width: uint8(w), values: uint32(len(vals)), raw: buf})
}

// addIDs stores the events' tids (or pids) at width w bytes each.
func (e *Encoder) addIDs(field uint16, ev []Event, pids bool, w int) {
	buf := e.scratch(len(ev) * w)[:len(ev)*w]
	for i := range ev {
		v := ev[i].TID
		if pids {
			v = ev[i].PID
		}
		switch w {
		case 1:
			buf[i] = byte(v)
		case 2:
			le.PutUint16(buf[2*i:], uint16(v))
		default:
			le.PutUint32(buf[4*i:], v)
		}
	}
	e.cols = append(e.cols, colOut{field: field, enc: encFixed, width: uint8(w), values: uint32(len(ev)), raw: buf})
}

// cstrLen is the length of the C string in s: up to its first NUL, or all
// of s. It tests eight bytes at a time (task names are 16).
func cstrLen(s []byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		v := le.Uint64(s[i:])
		// The lowest byte set here is the first zero byte of v: borrows
		// only run upwards from one.
		if z := (v - ones) &^ v & highs; z != 0 {
			return i + bits.TrailingZeros64(z)/8
		}
	}
	for ; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return len(s)
}

// scratch returns an empty buffer for the next column, reusing old ones.
func (e *Encoder) scratch(capacity int) []byte {
	i := len(e.cols)
	for len(e.raw) <= i {
		e.raw = append(e.raw, nil)
	}
	if cap(e.raw[i]) < capacity {
		e.raw[i] = make([]byte, 0, capacity)
	}
	return e.raw[i][:0]
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// finish compresses the columns and lays out the chunk payload.
func (e *Encoder) finish(in ChunkInput, sum ChunkSummary, types []uint16) ([]byte, ChunkSummary, error) {
	enc, _, err := codecs()
	if err != nil {
		return nil, sum, err
	}
	stored := make([][]byte, len(e.cols))
	codec := make([]uint8, len(e.cols))
	total := chunkHeaderSize + len(types)*typeCountSize + len(e.cols)*columnDirSize
	for i, c := range e.cols {
		// Store raw whenever compression would not save anything.
		stored[i] = c.raw
		if len(c.raw) >= 64 {
			z := enc.EncodeAll(c.raw, make([]byte, 0, len(c.raw)/4+64))
			if len(z) < len(c.raw) {
				stored[i], codec[i] = z, codecZstd
			}
		}
		total += len(stored[i])
	}
	out := make([]byte, chunkHeaderSize, total)
	le.PutUint16(out[0:], uint16(in.CPU))
	le.PutUint32(out[4:], uint32(len(in.Events)))
	le.PutUint64(out[8:], sum.FirstTS)
	le.PutUint64(out[16:], sum.LastTS)
	le.PutUint64(out[24:], in.FirstSeq)
	le.PutUint64(out[32:], in.NextSeq)
	le.PutUint64(out[40:], in.Lost)
	le.PutUint16(out[48:], uint16(len(e.cols)))
	le.PutUint16(out[50:], uint16(len(types)))
	for _, t := range types {
		var x [typeCountSize]byte
		le.PutUint16(x[0:], t)
		le.PutUint32(x[4:], uint32(e.counts[t]))
		out = append(out, x[:]...)
	}
	for i, c := range e.cols {
		var x [columnDirSize]byte
		le.PutUint16(x[0:], c.typ)
		le.PutUint16(x[2:], c.field)
		x[4], x[5], x[6] = c.enc, c.width, codec[i]
		le.PutUint32(x[8:], c.values)
		le.PutUint32(x[12:], uint32(len(c.raw)))
		le.PutUint32(x[16:], uint32(len(stored[i])))
		out = append(out, x[:]...)
	}
	for _, s := range stored {
		out = append(out, s...)
	}
	return out, sum, nil
}

// sortByTS orders events by timestamp, keeping sequence order among equal
// ones. Records arrive in sequence order and are out of timestamp order only
// where a program interrupted another on the same CPU, so the common case is
// a single check pass.
func sortByTS(ev []Event) {
	sorted := true
	for i := 1; i < len(ev); i++ {
		if ev[i].TS < ev[i-1].TS {
			sorted = false
			break
		}
	}
	if !sorted {
		sort.SliceStable(ev, func(i, j int) bool { return ev[i].TS < ev[j].TS })
	}
}
