package bpf

// The objects and their Go loaders are generated from rewind.bpf.c and
// committed, so building rewind needs no clang. `make generate` reruns this;
// TestGeneratedUpToDate fails when the committed files are stale.
//
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target amd64,arm64 -go-package bpf rewind rewind.bpf.c -- -I./include
