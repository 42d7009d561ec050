// Package kinds is the one table of rewind's event kinds: every event with
// its --events group and the fields rewind's Go code reads by name, the
// events that begin and end the same thing and the fields that pair them,
// and every field kind with how its values print and what they name.
//
// The compiled BPF object's BTF stays the source of ids, layouts and types
// (bpf.Catalog reads them from bpf/include/events.h); this table holds what
// the C cannot say. The catalogue, the analyses, view and the exporters
// spell no event or field name themselves: they use the identifiers here,
// so renaming an event is one edit in events.h and one here, and a test in
// package bpf checks the table against the compiled object both ways.
//
// It imports nothing of rewind's but the schema and the internal name
// tables, so every stage from bpf to the exporters may import it.
package kinds
