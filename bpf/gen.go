package bpf

// The objects and their Go loaders are generated from rewind.bpf.c and
// committed, so building rewind needs no clang. `make generate` reruns this;
// TestGeneratedUpToDate fails when the committed files are stale.
//
// Four builds of the same source:
//   - rewind: tp_btf programs, slots reserved with a fetching atomic add
//     (5.12 on);
//   - rewindCompat: the same for kernels without fetching atomics (5.10 and
//     5.11), see rw_reserve in include/ring.h; x86 only, whose store
//     ordering its reservation relies on;
//   - rewindRaw and rewindRawCompat: raw tracepoint programs for kernels
//     without BTF of their own, relocated against a BTF file (--btf), see
//     RW_TP in include/attach.h.
//
// And two of the watch programs (watch.bpf.c: triggers and live
// histograms), which need no fetching atomics: watch (tp_btf) and watchRaw.
//
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target amd64,arm64 -go-package bpf rewind rewind.bpf.c -- -I./include
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 -DRW_NO_FETCH" -target amd64 -go-package bpf rewindCompat rewind.bpf.c -- -I./include
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 -DRW_RAW_TP" -target amd64,arm64 -go-package bpf rewindRaw rewind.bpf.c -- -I./include
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 -DRW_NO_FETCH -DRW_RAW_TP" -target amd64 -go-package bpf rewindRawCompat rewind.bpf.c -- -I./include
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target amd64,arm64 -go-package bpf watch watch.bpf.c -- -I./include
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 -DRW_RAW_TP" -target amd64,arm64 -go-package bpf watchRaw watch.bpf.c -- -I./include
