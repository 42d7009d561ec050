// Package elfid reads ELF files' build ids, which tell the file a stack
// sample's frames came from apart from another of the same name.
package elfid

import (
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
)

// BuildID reads an ELF file's build id: "gnu:<hex>" or "go:<id>", or ""
// when it has none (or is not ELF).
func BuildID(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if s := f.Section(".note.gnu.build-id"); s != nil {
		if desc := noteDesc(s, f.ByteOrder); desc != nil {
			return "gnu:" + hex.EncodeToString(desc)
		}
	}
	if s := f.Section(".note.go.buildid"); s != nil {
		if desc := noteDesc(s, f.ByteOrder); desc != nil {
			return "go:" + string(desc)
		}
	}
	return ""
}

// noteDesc returns the descriptor of an ELF note section's first note.
func noteDesc(s *elf.Section, bo binary.ByteOrder) []byte {
	b, err := s.Data()
	if err != nil || len(b) < 12 {
		return nil
	}
	namesz, descsz := bo.Uint32(b[0:]), bo.Uint32(b[4:])
	start := 12 + (uint64(namesz)+3)&^3
	if start+uint64(descsz) > uint64(len(b)) {
		return nil
	}
	return b[start : start+uint64(descsz)]
}
