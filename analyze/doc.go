// Package analyze will turn snapshots into latency histograms and
// percentiles offline (run-queue latency, off-CPU time, syscall latency,
// block I/O, IRQs, faults, per-process summaries), reading chunks through
// the snapshot package.
package analyze
