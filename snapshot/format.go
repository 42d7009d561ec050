package snapshot

import (
	"encoding/binary"
	"hash/crc32"
)

// Version of the format this package writes and reads.
const (
	FormatMajor = 1
	FormatMinor = 1 // 1.1 added series and symbols sections
)

// File layout constants; docs/FORMAT.md draws them.
const (
	headerSize        = 16
	sectionHeaderSize = 24
	trailerSize       = 32
)

var (
	fileMagic     = [8]byte{0x89, 'R', 'W', 'D', '\r', '\n', 0x1a, '\n'}
	sectionMagic  = [4]byte{'R', 'W', 'S', 'C'}
	trailerMagic  = [4]byte{'R', 'W', 'T', 'R'}
	trailerEnd    = [4]byte{'R', 'W', 'D', '!'}
	castagnoli    = crc32.MakeTable(crc32.Castagnoli)
	maxJSONLength = int64(256 << 20)
)

// Kind identifies a section.
type Kind uint16

// Section kinds. Readers skip kinds they do not know.
const (
	KindMeta    Kind = 1 // JSON Meta
	KindSchema  Kind = 2 // JSON event schema
	KindProcs   Kind = 3 // JSON process/thread table
	KindChunk   Kind = 4 // one CPU's events, columnar
	KindIndex   Kind = 5 // where every section is
	KindSeries  Kind = 6 // one counter source's samples (1.1)
	KindSymbols Kind = 7 // kernel symbols and process mappings for stacks (1.1)
)

func (k Kind) String() string {
	switch k {
	case KindMeta:
		return "meta"
	case KindSchema:
		return "schema"
	case KindProcs:
		return "procs"
	case KindChunk:
		return "chunk"
	case KindIndex:
		return "index"
	case KindSeries:
		return "series"
	case KindSymbols:
		return "symbols"
	}
	return "unknown"
}

// Section flags.
const (
	flagZstd = 1 // payload is one zstd frame
)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

var le = binary.LittleEndian

// sectionHeader is the 24 bytes before every section's payload.
type sectionHeader struct {
	kind   Kind
	flags  uint16
	length uint64 // payload bytes
	crc    uint32 // CRC32C of the payload
}

func (h sectionHeader) marshal() [sectionHeaderSize]byte {
	var b [sectionHeaderSize]byte
	copy(b[0:4], sectionMagic[:])
	le.PutUint16(b[4:], uint16(h.kind))
	le.PutUint16(b[6:], h.flags)
	le.PutUint64(b[8:], h.length)
	le.PutUint32(b[16:], h.crc)
	le.PutUint32(b[20:], crc(b[:20]))
	return b
}

// parseSectionHeader decodes b; ok is false unless magic and header CRC match.
func parseSectionHeader(b []byte) (h sectionHeader, ok bool) {
	if len(b) < sectionHeaderSize || [4]byte(b[0:4]) != sectionMagic || le.Uint32(b[20:]) != crc(b[:20]) {
		return h, false
	}
	return sectionHeader{kind: Kind(le.Uint16(b[4:])), flags: le.Uint16(b[6:]), length: le.Uint64(b[8:]), crc: le.Uint32(b[16:])}, true
}

func marshalFileHeader() [headerSize]byte {
	var b [headerSize]byte
	copy(b[:8], fileMagic[:])
	le.PutUint16(b[8:], FormatMajor)
	le.PutUint16(b[10:], FormatMinor)
	return b
}

func marshalTrailer(indexOff, indexLen uint64) [trailerSize]byte {
	var b [trailerSize]byte
	copy(b[0:4], trailerMagic[:])
	le.PutUint64(b[8:], indexOff)
	le.PutUint64(b[16:], indexLen)
	le.PutUint32(b[24:], crc(b[:24]))
	copy(b[28:], trailerEnd[:])
	return b
}

func parseTrailer(b []byte) (indexOff, indexLen uint64, ok bool) {
	if len(b) != trailerSize || [4]byte(b[0:4]) != trailerMagic || [4]byte(b[28:32]) != trailerEnd || le.Uint32(b[24:]) != crc(b[:24]) {
		return 0, 0, false
	}
	return le.Uint64(b[8:]), le.Uint64(b[16:]), true
}

// indexEntry describes one section; the index lists every section but itself.
type indexEntry struct {
	Kind    Kind
	CPU     uint16
	Events  uint32
	Offset  uint64 // of the section header
	Length  uint64 // header + payload
	FirstTS uint64
	LastTS  uint64
	Lost    uint64
}

const indexEntrySize = 48

func (e indexEntry) append(b []byte) []byte {
	var x [indexEntrySize]byte
	le.PutUint16(x[0:], uint16(e.Kind))
	le.PutUint16(x[2:], e.CPU)
	le.PutUint32(x[4:], e.Events)
	le.PutUint64(x[8:], e.Offset)
	le.PutUint64(x[16:], e.Length)
	le.PutUint64(x[24:], e.FirstTS)
	le.PutUint64(x[32:], e.LastTS)
	le.PutUint64(x[40:], e.Lost)
	return append(b, x[:]...)
}

func parseIndexEntry(x []byte) indexEntry {
	return indexEntry{
		Kind: Kind(le.Uint16(x[0:])), CPU: le.Uint16(x[2:]), Events: le.Uint32(x[4:]),
		Offset: le.Uint64(x[8:]), Length: le.Uint64(x[16:]),
		FirstTS: le.Uint64(x[24:]), LastTS: le.Uint64(x[32:]), Lost: le.Uint64(x[40:]),
	}
}
