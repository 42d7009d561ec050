// Package record is the recording engine: it checks the system, loads and
// attaches the BPF programs, reads the kernel tier's rings, drains them into
// the compressed history tier, samples counters and writes snapshots.
//
// A Recorder is loaded with New, records between Start and Stop (as often
// as wanted) and is released by Close; its events, filter, stack sampling
// and counter sources change while it records, and snapshots go to a path,
// a directory or a writer, one at a time, from any goroutine. A Session
// runs a Recorder the way `rewind record` does (signals, a duration, an
// estimate of the history held, a final snapshot); the daemon's sessions
// build on it.
package record
