package snapshot

import (
	"encoding/binary"
	"fmt"
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
	rows   [][]int32 // per event id: indexes of its events
	vals   []uint64
	cols   []colOut
	raw    [][]byte // one scratch buffer per column position
}

type colOut struct {
	typ, field uint16
	enc, width uint8
	values     uint32
	raw        []byte
}

// NewEncoder returns an encoder for events of the schema.
func NewEncoder(s *schema.Schema) *Encoder {
	return &Encoder{schema: s, rows: make([][]int32, int(s.MaxID())+1)}
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
	sortByTS(ev)
	for i := range e.rows {
		e.rows[i] = e.rows[i][:0]
	}
	for i := range ev {
		t := ev[i].Type
		if e.schema.ByID(t) == nil {
			return nil, ChunkSummary{}, fmt.Errorf("encode chunk: event type %d is not in the schema", t)
		}
		e.rows[t] = append(e.rows[t], int32(i))
	}
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
	e.vals = e.vals[:0]
	for i := range ev {
		e.vals = append(e.vals, uint64(ev[i].TID))
	}
	e.addFixed(0, colTID, e.vals, widthOf(uint64(tidOr)))
	e.vals = e.vals[:0]
	for i := range ev {
		e.vals = append(e.vals, uint64(ev[i].PID))
	}
	e.addFixed(0, colPID, e.vals, widthOf(uint64(pidOr)))

	// Field columns, event type by event type.
	var types []uint16
	for t, rows := range e.rows {
		if len(rows) == 0 {
			continue
		}
		types = append(types, uint16(t))
		et := e.schema.ByID(uint16(t))
		for fi, f := range et.Fields {
			if f.Type == schema.Str {
				e.addStr(uint16(t), uint16(fi), f, ev, rows)
				continue
			}
			var w int
			e.vals, w = collect(e.vals[:0], ev, rows, f)
			e.addFixed(uint16(t), uint16(fi), e.vals, w)
		}
	}
	return e.finish(in, sum, types)
}

// collect appends field f of the events at rows to vals, widened to 64
// bits (sign-extended for signed types), and returns the narrowest width
// that holds them all. Scalars of each size have their own loop: this runs
// for every field of every event the history tier drains.
func collect(vals []uint64, ev []Event, rows []int32, f schema.Field) ([]uint64, int) {
	var w widthTracker
	size, signed := f.Type.Size(), f.Type.Signed()
	start, off := len(vals), f.Offset
	switch {
	case f.Count > 1:
		for _, r := range rows {
			for k := 0; k < f.Count; k++ {
				vals = append(vals, readRaw(ev[r].Data, off+k*size, size, false))
			}
		}
	case size == 1:
		for _, r := range rows {
			var v uint64
			if d := ev[r].Data; off < len(d) {
				v = uint64(d[off])
			}
			vals = append(vals, v)
		}
	case size == 2:
		for _, r := range rows {
			var v uint64
			if d := ev[r].Data; off+2 <= len(d) {
				v = uint64(le.Uint16(d[off:]))
			}
			vals = append(vals, v)
		}
	case size == 4:
		for _, r := range rows {
			var v uint64
			if d := ev[r].Data; off+4 <= len(d) {
				v = uint64(le.Uint32(d[off:]))
			}
			vals = append(vals, v)
		}
	default:
		for _, r := range rows {
			var v uint64
			if d := ev[r].Data; off+8 <= len(d) {
				v = le.Uint64(d[off:])
			}
			vals = append(vals, v)
		}
	}
	if signed && size < 8 {
		shift := uint(64 - 8*size)
		for i := start; i < len(vals); i++ {
			vals[i] = uint64(int64(vals[i]<<shift) >> shift)
		}
	}
	for _, v := range vals[start:] {
		w.add(v, signed)
	}
	return vals, w.width(signed)
}

// widthTracker finds the narrowest width that holds every value added.
type widthTracker struct {
	or     uint64
	lo, hi int64
}

func (w *widthTracker) add(v uint64, signed bool) {
	if signed {
		w.lo, w.hi = min(w.lo, int64(v)), max(w.hi, int64(v))
	} else {
		w.or |= v
	}
}

func (w *widthTracker) width(signed bool) int {
	if !signed {
		return widthOf(w.or)
	}
	switch {
	case w.lo >= -1<<7 && w.hi < 1<<7:
		return 1
	case w.lo >= -1<<15 && w.hi < 1<<15:
		return 2
	case w.lo >= -1<<31 && w.hi < 1<<31:
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

// readRaw reads a little-endian integer of size bytes at off, sign-extended
// when signed; bytes past the end of d read as zero.
func readRaw(d []byte, off, size int, signed bool) uint64 {
	var v uint64
	if off+size <= len(d) {
		switch size {
		case 1:
			v = uint64(d[off])
		case 2:
			v = uint64(le.Uint16(d[off:]))
		case 4:
			v = uint64(le.Uint32(d[off:]))
		default:
			return le.Uint64(d[off:])
		}
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
	buf := e.scratch(len(vals) * w)
	for _, v := range vals {
		switch w {
		case 1:
			buf = append(buf, byte(v))
		case 2:
			buf = le.AppendUint16(buf, uint16(v))
		case 4:
			buf = le.AppendUint32(buf, uint32(v))
		default:
			buf = le.AppendUint64(buf, v)
		}
	}
	e.cols = append(e.cols, colOut{typ: typ, field: field, enc: encFixed, width: uint8(w), values: uint32(len(vals)), raw: buf})
}

func (e *Encoder) addStr(typ, field uint16, f schema.Field, ev []Event, rows []int32) {
	buf := e.scratch(len(rows) * 8)
	for _, r := range rows {
		d := ev[r].Data
		var s []byte
		if f.Offset < len(d) {
			s = d[f.Offset:min(len(d), f.Offset+f.Count)]
		}
		for i, c := range s {
			if c == 0 {
				s = s[:i]
				break
			}
		}
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	e.cols = append(e.cols, colOut{typ: typ, field: field, enc: encStr, values: uint32(len(rows)), raw: buf})
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
		le.PutUint32(x[4:], uint32(len(e.rows[t])))
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
