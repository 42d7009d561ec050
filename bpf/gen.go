package bpf

// The objects and their Go loaders are generated from rewind.bpf.c and
// committed, so building rewind needs no clang. `make generate` reruns this;
// TestGeneratedUpToDate fails when the committed files are stale.
//
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target amd64,arm64 -go-package bpf rewind rewind.bpf.c -- -I./include
//
// The compat object is the same source built for kernels without fetching
// atomics (5.10 and 5.11): see rw_reserve in include/ring.h. It is built
// for x86 only, whose store ordering its reservation relies on.
//
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 -DRW_NO_FETCH" -target amd64 -go-package bpf rewindCompat rewind.bpf.c -- -I./include
