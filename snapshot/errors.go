package snapshot

import (
	"errors"
	"fmt"
)

var (
	// ErrNotSnapshot means the file does not start like a rewind snapshot.
	ErrNotSnapshot = errors.New("not a rewind snapshot")
	// ErrBrokenHeader means the file is a snapshot whose metadata or schema
	// cannot be read, so none of its events can be decoded.
	ErrBrokenHeader = errors.New("snapshot header is broken")
	// ErrUnsupportedVersion means the file's major version is not FormatMajor.
	ErrUnsupportedVersion = errors.New("unsupported snapshot format version")
)

// CorruptionError reports damaged bytes [Offset, End) of a snapshot file.
type CorruptionError struct {
	Offset, End int64
	Err         error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("damaged bytes %d-%d (%d bytes): %v", e.Offset, e.End, e.End-e.Offset, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

func corrupt(off, end int64, format string, args ...any) *CorruptionError {
	return &CorruptionError{Offset: off, End: end, Err: fmt.Errorf(format, args...)}
}
