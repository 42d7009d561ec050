// Package bpf holds rewind's BPF programs (rewind.bpf.c, include/), their
// generated loaders, and the event catalogue derived from the compiled
// object's BTF.
package bpf
