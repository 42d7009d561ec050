// Package snapshot writes and reads rewind's snapshot files (.rwd), format
// version 1, specified byte by byte in docs/FORMAT.md.
//
// A file is a header, then framed sections — metadata, the event schema,
// the process table, independent per-CPU chunks of columnar, delta-encoded,
// zstd-compressed events, each with its own CRC32C — then an index and a
// trailer. Writers produce a file atomically (temporary file, fsync, rename);
// readers stream chunk by chunk and keep going past damaged bytes, reporting
// each damaged range as a *CorruptionError.
//
// A change to any byte layout described here bumps FormatMajor; adding a
// section kind, a column encoding reader must understand, or a JSON field
// does not, because readers skip section kinds and JSON fields they do not
// know.
package snapshot
