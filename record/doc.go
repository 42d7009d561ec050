// Package record is the recording engine: it checks the system, loads and
// attaches the BPF programs, reads the kernel tier's rings and writes
// snapshots.
package record
