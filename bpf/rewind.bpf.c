//go:build ignore

/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * rewind's BPF programs: one program per event, named rw_<event> (tp_btf on
 * its tracepoint, or perf_event for CPU samples), each
 * writing one record (struct rw_ev_<event>, include/events.h) into its CPU's
 * overwrite ring (include/ring.h). Nothing here wakes user space. The
 * programs live in progs/, one file per event group.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "events.h"
#include "ring.h"
#include "kernel.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Keeps every payload type in BTF for the Go catalogue. */
const struct rw_schema *rw_schema_anchor __attribute__((unused));

#include "progs/common.h"
#include "progs/sched.h"
#include "progs/syscalls.h"
#include "progs/process.h"
#include "progs/block.h"
#include "progs/irq.h"
#include "progs/faults.h"
#include "progs/signals.h"
#include "progs/net.h"
#include "progs/memory.h"
#include "progs/lock.h"
#include "progs/power.h"
#include "progs/stacks.h"
