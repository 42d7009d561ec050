// Package analyze turns snapshots into latency histograms, counters and
// per-process summaries, offline.
//
// Chunks are decoded and analysed in parallel, on every core: what pairs
// within one CPU's stretch of time (a syscall's enter and exit, an
// interrupt's entry and exit) is matched in the chunk. Scheduling and block
// events, whose pairs cross CPUs, and the pairs a chunk boundary or a
// migration split, go to a single merge pass that walks them in time order
// across CPUs. Chunks are dispatched in time order and the merge frees each
// as soon as it has walked it, so memory stays bounded by the chunks in
// flight, not by the snapshot.
package analyze
