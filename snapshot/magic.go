package snapshot

// MagicSize is how many bytes HasMagic needs.
const MagicSize = len(fileMagic)

// HasMagic reports whether b starts with the magic every snapshot file
// starts with (docs/FORMAT.md), whatever its version: enough to tell a
// file rewind wrote from someone else's without reading it, not to say
// that it is intact.
func HasMagic(b []byte) bool {
	return len(b) >= MagicSize && [MagicSize]byte(b[:MagicSize]) == fileMagic
}
