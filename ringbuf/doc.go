// Package ringbuf holds recorded events in memory: the kernel tier's per-CPU
// overwrite rings, which BPF programs write and this package reads through
// mmap without stopping them.
package ringbuf
