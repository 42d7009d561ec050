/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* attach.h: how programs attach to tracepoints and read kernel objects,
 * shared by the recording programs (ring.h) and the watch programs
 * (watch.bpf.c). */
#ifndef REWIND_ATTACH_H
#define REWIND_ATTACH_H

/*
 * Programs attach as tp_btf and read the kernel objects their arguments
 * point to directly, typed by the kernel's BTF. Built with RW_RAW_TP, for
 * kernels without BTF of their own (rewind --btf FILE), they attach as raw
 * tracepoints, whose arguments the kernel leaves untyped: every field is
 * then read with bpf_probe_read_kernel at the offset CO-RE relocates against
 * the given BTF. Programs name a tracepoint with RW_TP and read a field of
 * a kernel object with RW_R (or rw_copy_comm for a task name).
 */
#ifdef RW_RAW_TP
#define RW_TP(name) SEC("raw_tp/" #name)
#define RW_R(p, field) BPF_CORE_READ(p, field)
#define rw_copy_comm(dst, src) bpf_probe_read_kernel((dst), 16, (src))
#else
#define RW_TP(name) SEC("tp_btf/" #name)
#define RW_R(p, field) ((p)->field)
#define rw_copy_comm(dst, src) __builtin_memcpy((dst), (src), 16)
#endif

#endif /* REWIND_ATTACH_H */
