//go:build ignore

/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * rewind's BPF programs: one tp_btf program per event, named rw_<event>, each
 * writing one record (struct rw_ev_<event>, include/events.h) into its CPU's
 * overwrite ring (include/ring.h). Nothing here wakes user space.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "events.h"
#include "ring.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Keeps every payload type in BTF for the Go catalogue. */
const struct rw_schema *rw_schema_anchor __attribute__((unused));

/* Task states, <linux/sched.h>; stable since 5.14 (TASK_FROZEN since 6.1). */
#define RW_TASK_UNINTERRUPTIBLE 0x0002
#define RW_TASK_REPORT 0x007f
#define RW_TASK_REPORT_IDLE 0x0080
#define RW_TASK_REPORT_MAX 0x0100
#define RW_TASK_NOLOAD 0x0400
#define RW_TASK_RTLOCK_WAIT 0x1000
#define RW_TASK_FROZEN 0x8000

struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline unsigned int rw_task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___pre514 *)t, state);
}

/* rw_report_state mirrors __trace_sched_switch_state() in
 * include/trace/events/sched.h: the encoding ftrace, perf and Perfetto use. */
static __always_inline __u16 rw_report_state(bool preempt, struct task_struct *prev)
{
	unsigned int state, s;

	if (preempt)
		return RW_TASK_REPORT_MAX;
	state = rw_task_state(prev);
	s = (state | (unsigned int)prev->exit_state) & RW_TASK_REPORT;
	if ((state & (RW_TASK_UNINTERRUPTIBLE | RW_TASK_NOLOAD)) == (RW_TASK_UNINTERRUPTIBLE | RW_TASK_NOLOAD))
		s = RW_TASK_REPORT_IDLE;
	if (state & (RW_TASK_RTLOCK_WAIT | RW_TASK_FROZEN))
		s = RW_TASK_UNINTERRUPTIBLE;
	/* keep the highest set bit, as 1 << (fls(s) - 1) does */
	s |= s >> 1;
	s |= s >> 2;
	s |= s >> 4;
	s |= s >> 8;
	return s - (s >> 1);
}

static __always_inline void rw_copy_comm(char *dst, const char *src)
{
	__builtin_memcpy(dst, src, 16);
}

static __always_inline __s32 rw_task_cpu(struct task_struct *t)
{
	struct thread_info *ti = &t->thread_info;

	if (bpf_core_field_exists(ti->cpu))
		return BPF_CORE_READ(ti, cpu);
	return t->wake_cpu;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(rw_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct rw_ev_sched_switch *e;
	struct rw_rec r;

	if (!rw_want_pair(RW_EV_SCHED_SWITCH, pid_tgid, next))
		return 0;
	if (!rw_begin(&r, RW_EV_SCHED_SWITCH, pid_tgid, 1))
		return 0;
	e = (void *)r.slot->data;
	rw_copy_comm(e->prev_comm, prev->comm);
	rw_copy_comm(e->next_comm, next->comm);
	e->next_tid = next->pid;
	e->prev_prio = prev->prio;
	e->next_prio = next->prio;
	e->prev_state = rw_report_state(preempt, prev);
	rw_end(&r);
	return 0;
}

static __always_inline int rw_wakeup(__u16 type, struct task_struct *p)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct rw_ev_sched_waking *e;
	struct rw_rec r;

	if (!rw_want_pair(type, pid_tgid, p))
		return 0;
	if (!rw_begin(&r, type, pid_tgid, 1))
		return 0;
	e = (void *)r.slot->data;
	rw_copy_comm(e->target_comm, p->comm);
	e->target_tid = p->pid;
	e->target_pid = p->tgid;
	e->target_cpu = rw_task_cpu(p);
	e->target_prio = p->prio;
	rw_end(&r);
	return 0;
}

SEC("tp_btf/sched_waking")
int BPF_PROG(rw_sched_waking, struct task_struct *p)
{
	return rw_wakeup(RW_EV_SCHED_WAKING, p);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(rw_sched_wakeup_new, struct task_struct *p)
{
	return rw_wakeup(RW_EV_SCHED_WAKEUP_NEW, p);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(rw_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct rw_ev_sched_process_fork *e;
	struct rw_rec r;

	if (!rw_want_pair(RW_EV_SCHED_PROCESS_FORK, pid_tgid, child))
		return 0;
	if (!rw_begin(&r, RW_EV_SCHED_PROCESS_FORK, pid_tgid, 1))
		return 0;
	e = (void *)r.slot->data;
	rw_copy_comm(e->parent_comm, parent->comm);
	rw_copy_comm(e->child_comm, child->comm);
	e->child_tid = child->pid;
	e->child_pid = child->tgid;
	rw_end(&r);
	return 0;
}

/* Scratch for records that span several slots. Only process-context events
 * use it, and two of them never nest on one CPU. */
struct rw_scratch {
	__u8 data[RW_MAX_SLOTS * RW_MAX_PAYLOAD];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct rw_scratch);
	__uint(max_entries, 1);
} rw_scratch SEC(".maps");

_Static_assert(sizeof(struct rw_ev_sched_process_exec) <= RW_MAX_SLOTS * RW_MAX_PAYLOAD, "exec record too large");

SEC("tp_btf/sched_process_exec")
int BPF_PROG(rw_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct rw_ev_sched_process_exec *e;
	__u32 zero = 0, nslots, i;
	struct rw_scratch *sc;
	struct rw_slot *s;
	struct rw_rec r;
	long n;

	if (!rw_want_current(RW_EV_SCHED_PROCESS_EXEC, pid_tgid))
		return 0;
	sc = bpf_map_lookup_elem(&rw_scratch, &zero);
	if (!sc)
		return 0;
	e = (void *)sc->data;
	e->old_tid = old_pid;
	n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	if (n < 1)
		n = 1;
	nslots = (offsetof(struct rw_ev_sched_process_exec, filename) + n + RW_MAX_PAYLOAD - 1) / RW_MAX_PAYLOAD;
	if (nslots > RW_MAX_SLOTS)
		nslots = RW_MAX_SLOTS;
	if (!rw_begin(&r, RW_EV_SCHED_PROCESS_EXEC, pid_tgid, nslots))
		return 0;
	__builtin_memcpy(r.slot->data, sc->data, RW_MAX_PAYLOAD);
	for (i = 1; i < RW_MAX_SLOTS; i++) {
		if (i >= nslots)
			break;
		s = rw_slot_at(r.cpu, r.seq + i);
		if (!s)
			break;
		rw_mark(&s->hdr.seq, RW_SEQ_BUSY);
		s->hdr.ts = r.slot->hdr.ts;
		s->hdr.type = RW_EV_CONT;
		s->hdr.nslots = 1;
		s->hdr.flags = 0;
		s->hdr.tid = r.slot->hdr.tid;
		s->hdr.pid = r.slot->hdr.pid;
		__builtin_memcpy(s->data, sc->data + i * RW_MAX_PAYLOAD, RW_MAX_PAYLOAD);
		rw_mark(&s->hdr.seq, (__u32)(r.seq + i));
	}
	rw_end(&r);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(rw_sched_process_exit, struct task_struct *p)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct rw_ev_sched_process_exit *e;
	struct rw_rec r;

	if (!rw_want_current(RW_EV_SCHED_PROCESS_EXIT, pid_tgid))
		return 0;
	if (!rw_begin(&r, RW_EV_SCHED_PROCESS_EXIT, pid_tgid, 1))
		return 0;
	e = (void *)r.slot->data;
	e->exit_code = p->exit_code;
	e->prio = p->prio;
	/* the tracepoint's own group_dead argument is newer than 6.x */
	e->group_dead = BPF_CORE_READ(p, signal, live.counter) == 0;
	rw_end(&r);
	return 0;
}

/* System call arguments as the syscall ABI passes them. */
#if defined(__TARGET_ARCH_x86)
#define RW_SC_ARG0(r) ((r)->di)
#define RW_SC_ARG1(r) ((r)->si)
#define RW_SC_ARG2(r) ((r)->dx)
#define RW_SC_ARG3(r) ((r)->r10)
#define RW_SC_NR(r) ((r)->orig_ax)
#elif defined(__TARGET_ARCH_arm64)
struct pt_regs___rw_arm64 {
	__u64 regs[31];
	__s32 syscallno;
} __attribute__((preserve_access_index));
#define RW_SC_ARG0(r) (((struct pt_regs___rw_arm64 *)(r))->regs[0])
#define RW_SC_ARG1(r) (((struct pt_regs___rw_arm64 *)(r))->regs[1])
#define RW_SC_ARG2(r) (((struct pt_regs___rw_arm64 *)(r))->regs[2])
#define RW_SC_ARG3(r) (((struct pt_regs___rw_arm64 *)(r))->regs[3])
#define RW_SC_NR(r) (((struct pt_regs___rw_arm64 *)(r))->syscallno)
#else
#error "rewind: unsupported architecture"
#endif

SEC("tp_btf/sys_enter")
int BPF_PROG(rw_sys_enter, struct pt_regs *regs, long id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct rw_ev_sys_enter *e;
	struct rw_rec r;

	if (!rw_want_current(RW_EV_SYS_ENTER, pid_tgid))
		return 0;
	if (!rw_begin(&r, RW_EV_SYS_ENTER, pid_tgid, 1))
		return 0;
	e = (void *)r.slot->data;
	e->id = id;
	e->args[0] = RW_SC_ARG0(regs);
	e->args[1] = RW_SC_ARG1(regs);
	e->args[2] = RW_SC_ARG2(regs);
	e->args[3] = RW_SC_ARG3(regs);
	rw_end(&r);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(rw_sys_exit, struct pt_regs *regs, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct rw_ev_sys_exit *e;
	struct rw_rec r;

	if (!rw_want_current(RW_EV_SYS_EXIT, pid_tgid))
		return 0;
	if (!rw_begin(&r, RW_EV_SYS_EXIT, pid_tgid, 1))
		return 0;
	e = (void *)r.slot->data;
	e->id = RW_SC_NR(regs);
	e->ret = ret;
	rw_end(&r);
	return 0;
}
