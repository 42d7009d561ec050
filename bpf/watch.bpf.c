//go:build ignore

/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * rewind's watch programs: trigger conditions evaluated where their event
 * happens, and live latency histograms, from one set of per-thread start
 * times. They write nothing into the recording rings: a condition that
 * matches sends one firing (struct rw_w_firing) through rw_w_firings, the
 * only thing that wakes user space, and the histograms are per-CPU counts
 * user space reads when /metrics is scraped.
 *
 * User space attaches a program only while a trigger or a histogram needs
 * it (bpf/watch.go), so with none set they cost nothing. They use no
 * fetching atomics (5.10 has none): every count is per CPU.
 *
 * The histograms count the tasks the filter (filter.h; the session's
 * tracked tasks) passes, but block I/O, which completes in interrupts and
 * is counted for every device. Triggers have filters of their own.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "attach.h"
#include "kernel.h"
#include "filter.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define RW_W_TRIGGERS 8	/* trigger slots per watch */
#define RW_W_BUCKETS 256	/* histogram buckets: log-linear, 8 per power of two */

/* Trigger kinds (bpf/watch.go mirrors them). */
enum rw_w_kind {
	RW_W_NONE = 0,
	RW_W_SYSCALL = 1,	/* a system call slower than threshold ns */
	RW_W_RUNQ = 2,		/* a task waited longer than threshold ns to run */
	RW_W_BLOCK = 3,		/* a block request slower than threshold ns */
	RW_W_SIGNAL = 4,	/* a signal in sigmask delivered */
	RW_W_EXIT = 5,		/* a process exited non-zero or by a signal */
	RW_W_OOM = 6,		/* the OOM killer chose a victim */
};

/* Which filters of a trigger apply. */
#define RW_WF_SYSCALL 1
#define RW_WF_PID 2
#define RW_WF_COMM 4
#define RW_WF_CGROUP 8
#define RW_WF_CPU 16
#define RW_WF_DEV 32
#define RW_WF_SIGNALED 64	/* exit: only deaths by a signal */

/* Histograms (rw_w_hists bits and rw_w_hkey.hist). */
#define RW_WH_SYSCALL 1
#define RW_WH_RUNQ 2
#define RW_WH_OFFCPU 4
#define RW_WH_BLOCK 8

struct rw_w_trigger {
	__u32 kind;	/* enum rw_w_kind; RW_W_NONE: the slot is free */
	__u32 flags;	/* RW_WF_* */
	__u64 threshold;	/* ns, for latencies */
	__u64 cgroup;	/* cgroup v2 id */
	__u64 sigmask;	/* signal s is bit s-1 */
	__s32 syscall;
	__u32 pid;	/* a thread id or a process id */
	__s32 cpu;
	__u32 dev;	/* major << 20 | minor */
	char comm[16];
};

/* One firing: the event that matched a trigger. */
struct rw_w_firing {
	__u64 ts;	/* CLOCK_BOOTTIME ns: for a latency, its end */
	__u64 value;	/* latency ns, signal, exit code (wait status), victim pid */
	__u64 arg;	/* syscall number; block: dev << 8 | op; signal: si_code */
	__u32 trigger;	/* slot */
	__u32 cpu;
	__u32 tid;
	__u32 pid;
	char comm[16];
};

/* A histogram bucket: label is the syscall number, or the block device
 * (op the operation). Its value counts the values in the bucket and sums
 * them. */
struct rw_w_hkey {
	__u32 hist;
	__u32 label;
	__u32 op;
	__u32 bucket;
};

/* Problems counted per CPU, rw_w_stats indexes. */
#define RW_WS_HIST_FULL 0	/* histogram updates lost: rw_w_hist is full */
#define RW_WS_FIRING_LOST 1	/* firings lost: rw_w_firings is full */
#define RW_WS_COLLIDED 2	/* start times lost to another thread with the same low id bits */
#define RW_WS_MATCHED 3	/* 3 + slot: matches of each trigger */
#define RW_WS_MAX (RW_WS_MATCHED + RW_W_TRIGGERS)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct rw_w_trigger);
	__uint(max_entries, RW_W_TRIGGERS);
} rw_w_triggers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} rw_w_firings SEC(".maps");

struct rw_w_hval {
	__u64 count;
	__u64 sum;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct rw_w_hkey);
	__type(value, struct rw_w_hval);
	__uint(max_entries, 16384);
} rw_w_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, RW_WS_MAX);
} rw_w_stats SEC(".maps");

/*
 * Start times by thread: of a system call, of waiting to run, of being off
 * CPU. Arrays indexed by the thread id's low bits, so that a program reads
 * and writes them in place (no helper call, no hash); an entry names its
 * thread, and two threads whose ids share the low bits and are both in a
 * system call at once lose one measurement (counted, RW_WS_COLLIDED).
 */
#define RW_W_TIDS (1 << 16)

struct rw_w_tstart {
	__u32 tid;
	__u32 __pad;
	__u64 ts;	/* 0: none */
	__s64 id;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct rw_w_tstart);
	__uint(max_entries, RW_W_TIDS);
} rw_w_sys_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct rw_w_tstart);
	__uint(max_entries, RW_W_TIDS);
} rw_w_runq_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct rw_w_tstart);
	__uint(max_entries, RW_W_TIDS);
} rw_w_off_start SEC(".maps");

/* The block requests' issue times, by request address. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);
	__type(value, __u64);
	__uint(max_entries, 16384);
} rw_w_blk_start SEC(".maps");

/* Set before load. */
const volatile __u32 rw_w_self_tgid = 0;	/* the daemon: never watched */
const volatile __u8 rw_w_issue_rq_arg = 0;	/* block_rq_issue's request: argument 1 on 5.10 (q, rq) */
const volatile __u8 rw_w_oom_task = 0;	/* mark_victim passes a task (6.x), not a pid (5.10) */

/* Changed at run time through the mmapped .data. */
volatile __u32 rw_w_kinds;	/* bit k: a trigger of kind k is set */
volatile __u32 rw_w_hists;	/* RW_WH_*: histograms kept */

/* Keeps the shared types in BTF for bpf2go. */
const struct rw_w_firing *rw_w_firing_anchor __attribute__((unused));
const struct rw_w_hkey *rw_w_hkey_anchor __attribute__((unused));
const struct rw_w_hval *rw_w_hval_anchor __attribute__((unused));

static __always_inline void rw_w_count(__u32 i, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&rw_w_stats, &i);

	if (c)
		*c += n;
}

/* rw_w_len64 is bits.Len64 (v > 0): one more than the highest set bit. */
static __always_inline __u32 rw_w_len64(__u64 v)
{
	__u32 n = 0;

	if (v >= 1ULL << 32) { v >>= 32; n += 32; }
	if (v >= 1ULL << 16) { v >>= 16; n += 16; }
	if (v >= 1ULL << 8) { v >>= 8; n += 8; }
	if (v >= 1ULL << 4) { v >>= 4; n += 4; }
	if (v >= 1ULL << 2) { v >>= 2; n += 2; }
	if (v >= 1ULL << 1) { v >>= 1; n += 1; }
	return n + (__u32)v;
}

/* rw_w_bucket is hist.Index(v, 3) (analyze/hist), capped at the last
 * bucket: exact below 16, then 8 buckets per power of two. */
static __always_inline __u32 rw_w_bucket(__u64 v)
{
	__u32 g, i;

	if (v < 16)
		return v;
	g = rw_w_len64(v) - 4;
	i = ((g + 1) << 3) + (__u32)(v >> g) - 8;
	return i < RW_W_BUCKETS ? i : RW_W_BUCKETS - 1;
}

static __always_inline void rw_w_observe(__u32 hist, __u32 label, __u32 op, __u64 v)
{
	struct rw_w_hkey k = {.hist = hist, .label = label, .op = op, .bucket = rw_w_bucket(v)};
	struct rw_w_hval *c = bpf_map_lookup_elem(&rw_w_hist, &k), one = {.count = 1, .sum = v};

	if (c) {
		c->count++;
		c->sum += v;
		return;
	}
	/* Another CPU may insert the key between the lookup and the update:
	 * the update then fails and the second lookup finds it. */
	if (bpf_map_update_elem(&rw_w_hist, &k, &one, BPF_NOEXIST) == 0)
		return;
	c = bpf_map_lookup_elem(&rw_w_hist, &k);
	if (c) {
		c->count++;
		c->sum += v;
	} else {
		rw_w_count(RW_WS_HIST_FULL, 1);
	}
}

/* The subject of a candidate firing. */
struct rw_w_subject {
	__u32 tid;
	__u32 pid;
	__u64 cgroup;
	char comm[16];
};

static __always_inline void rw_w_current(struct rw_w_subject *s)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	s->tid = (__u32)pid_tgid;
	s->pid = pid_tgid >> 32;
	s->cgroup = bpf_get_current_cgroup_id();
	bpf_get_current_comm(s->comm, sizeof(s->comm));
}

static __always_inline void rw_w_task(struct rw_w_subject *s, struct task_struct *t)
{
	s->tid = RW_R(t, pid);
	s->pid = RW_R(t, tgid);
	s->cgroup = BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
	rw_copy_comm(s->comm, t->comm);
}

static __always_inline bool rw_w_same_comm(const char *a, const char *b)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (a[i] != b[i])
			return false;
		if (a[i] == 0)
			return true;
	}
	return true;
}

/*
 * rw_w_check evaluates every trigger of kind against one event and sends a
 * firing for each that matches. value is compared with the threshold for
 * latencies; id is the syscall, dev the device. The subject is read only
 * once a trigger's value test passes: from task, from the current task
 * when task is NULL and s is not filled yet.
 */
static __always_inline void rw_w_check(__u32 kind, __u64 now, struct rw_w_subject *s, bool filled, struct task_struct *task,
				       __u64 value, __s64 id, __u32 dev, __u64 arg)
{
	__u32 cpu = bpf_get_smp_processor_id();

#pragma unroll
	for (__u32 i = 0; i < RW_W_TRIGGERS; i++) {
		__u32 slot = i;
		struct rw_w_trigger *t = bpf_map_lookup_elem(&rw_w_triggers, &slot);
		struct rw_w_firing f;

		if (!t || t->kind != kind)
			continue;
		switch (kind) {
		case RW_W_SYSCALL:
		case RW_W_RUNQ:
		case RW_W_BLOCK:
			if (value <= t->threshold)
				continue;
			break;
		case RW_W_SIGNAL:
			if (value < 1 || value > 64 || !(t->sigmask & (1ULL << (value - 1))))
				continue;
			break;
		case RW_W_EXIT:
			if ((t->flags & RW_WF_SIGNALED) && !(value & 0x7f))
				continue;
			break;
		}
		if ((t->flags & RW_WF_SYSCALL) && t->syscall != id)
			continue;
		if ((t->flags & RW_WF_CPU) && t->cpu != (__s32)cpu)
			continue;
		if ((t->flags & RW_WF_DEV) && t->dev != dev)
			continue;
		if (!filled) {
			if (task)
				rw_w_task(s, task);
			else
				rw_w_current(s);
			filled = true;
		}
		if ((t->flags & RW_WF_PID) && t->pid != s->tid && t->pid != s->pid)
			continue;
		if ((t->flags & RW_WF_CGROUP) && t->cgroup != s->cgroup)
			continue;
		if ((t->flags & RW_WF_COMM) && !rw_w_same_comm(t->comm, s->comm))
			continue;
		rw_w_count(RW_WS_MATCHED + i, 1);
		f.ts = now;
		f.value = value;
		f.arg = arg;
		f.trigger = i;
		f.cpu = cpu;
		f.tid = s->tid;
		f.pid = s->pid;
		__builtin_memcpy(f.comm, s->comm, sizeof(f.comm));
		if (bpf_ringbuf_output(&rw_w_firings, &f, sizeof(f), 0))
			rw_w_count(RW_WS_FIRING_LOST, 1);
	}
}

/* rw_w_slot is a thread's entry in a start time array. */
static __always_inline struct rw_w_tstart *rw_w_slot(void *map, __u32 tid)
{
	__u32 i = tid & (RW_W_TIDS - 1);

	return bpf_map_lookup_elem(map, &i);
}

/* rw_w_begin notes that tid starts something at now. */
static __always_inline void rw_w_begin(void *map, __u32 tid, __u64 now, __s64 id)
{
	struct rw_w_tstart *e = rw_w_slot(map, tid);

	if (!e)
		return;
	if (e->ts && e->tid != tid)
		rw_w_count(RW_WS_COLLIDED, 1);
	e->tid = tid;
	e->id = id;
	e->ts = now;
}

/* rw_w_end returns how long ago tid started, and its id, and forgets it;
 * 0 when it started nothing that is still noted. */
static __always_inline __u64 rw_w_end(void *map, __u32 tid, __u64 now, __s64 *id)
{
	struct rw_w_tstart *e = rw_w_slot(map, tid);
	__u64 ts;

	if (!e || e->tid != tid || !(ts = e->ts) || ts > now)
		return 0;
	e->ts = 0;
	if (id)
		*id = e->id;
	return now - ts;
}

#define rw_w_want(kind) (rw_w_kinds & (1U << (kind)))

/* syscalls */

RW_TP(sys_enter)
int BPF_PROG(rw_w_sys_enter, struct pt_regs *regs, long id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	if ((pid_tgid >> 32) == rw_w_self_tgid)
		return 0;
	rw_w_begin(&rw_w_sys_start, (__u32)pid_tgid, bpf_ktime_get_boot_ns(), id);
	return 0;
}

RW_TP(sys_exit)
int BPF_PROG(rw_w_sys_exit, struct pt_regs *regs, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid(), now = bpf_ktime_get_boot_ns(), lat;
	struct rw_w_subject s;
	__s64 id = 0;

	if (!(lat = rw_w_end(&rw_w_sys_start, (__u32)pid_tgid, now, &id)))
		return 0;
	if ((rw_w_hists & RW_WH_SYSCALL) && rw_filter_pass_current(pid_tgid))
		rw_w_observe(RW_WH_SYSCALL, (__u32)id, 0, lat);
	if (rw_w_want(RW_W_SYSCALL))
		rw_w_check(RW_W_SYSCALL, now, &s, false, NULL, lat, id, 0, id);
	return 0;
}

/* scheduling: run-queue latency (woken or preempted until switched in) and
 * off-CPU time (switched out until switched in) */

static __always_inline int rw_w_enqueue(struct task_struct *p)
{
	__u32 tid = RW_R(p, pid);

	if (tid == 0 || RW_R(p, tgid) == rw_w_self_tgid)
		return 0;
	rw_w_begin(&rw_w_runq_start, tid, bpf_ktime_get_boot_ns(), 0);
	return 0;
}

RW_TP(sched_wakeup)
int BPF_PROG(rw_w_sched_wakeup, struct task_struct *p)
{
	return rw_w_enqueue(p);
}

RW_TP(sched_wakeup_new)
int BPF_PROG(rw_w_sched_wakeup_new, struct task_struct *p)
{
	return rw_w_enqueue(p);
}

RW_TP(sched_switch)
int BPF_PROG(rw_w_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_boot_ns(), lat;
	__u32 prev_tid = RW_R(prev, pid), next_tid = RW_R(next, pid);
	struct rw_w_subject s;

	if (prev_tid != 0 && RW_R(prev, tgid) != rw_w_self_tgid) {
		/* preempted: still runnable, so waiting to run from now */
		if (preempt || rw_task_state(prev) == 0)
			rw_w_begin(&rw_w_runq_start, prev_tid, now, 0);
		if (rw_w_hists & RW_WH_OFFCPU)
			rw_w_begin(&rw_w_off_start, prev_tid, now, 0);
	}
	if (next_tid == 0)
		return 0;
	if ((rw_w_hists & RW_WH_OFFCPU) && (lat = rw_w_end(&rw_w_off_start, next_tid, now, NULL)) && rw_filter_pass_task(next))
		rw_w_observe(RW_WH_OFFCPU, 0, 0, lat);
	if (!(lat = rw_w_end(&rw_w_runq_start, next_tid, now, NULL)))
		return 0;
	if ((rw_w_hists & RW_WH_RUNQ) && rw_filter_pass_task(next))
		rw_w_observe(RW_WH_RUNQ, 0, 0, lat);
	if (rw_w_want(RW_W_RUNQ))
		rw_w_check(RW_W_RUNQ, now, &s, false, next, lat, 0, 0, 0);
	return 0;
}

/* block I/O: issued to completed */

#define RW_W_OP_READ 0
#define RW_W_OP_WRITE 1
#define RW_W_OP_FLUSH 2
#define RW_W_OP_DISCARD 3

static __always_inline int rw_w_issue(struct request *rq)
{
	__u64 key = (__u64)rq, now = bpf_ktime_get_boot_ns();

	bpf_map_update_elem(&rw_w_blk_start, &key, &now, BPF_ANY);
	return 0;
}

RW_TP(block_rq_issue)
int BPF_PROG(rw_w_block_rq_issue)
{
	/* 5.10 passes the queue first */
	if (rw_w_issue_rq_arg)
		return rw_w_issue((struct request *)ctx[1]);
	return rw_w_issue((struct request *)ctx[0]);
}

RW_TP(block_rq_complete)
int BPF_PROG(rw_w_block_rq_complete, struct request *rq)
{
	__u64 key = (__u64)rq, now = bpf_ktime_get_boot_ns(), lat;
	__u64 *ts = bpf_map_lookup_elem(&rw_w_blk_start, &key);
	struct rw_w_subject s;
	__u32 dev, op;

	if (!ts)
		return 0;
	lat = now - *ts;
	bpf_map_delete_elem(&rw_w_blk_start, &key);
	dev = rw_rq_dev(rq);
	op = RW_R(rq, cmd_flags) & 0xff;
	if (op > RW_W_OP_DISCARD)
		op = 0xff;
	if (rw_w_hists & RW_WH_BLOCK)
		rw_w_observe(RW_WH_BLOCK, dev, op, lat);
	if (rw_w_want(RW_W_BLOCK)) {
		/* in interrupt context: the current task is whoever ran */
		__builtin_memset(&s, 0, sizeof(s));
		rw_w_check(RW_W_BLOCK, now, &s, true, NULL, lat, 0, dev, ((__u64)dev << 8) | op);
	}
	return 0;
}

/* signals, exits, the OOM killer */

#define RW_W_SI_USER 0
#define RW_W_SI_KERNEL 0x80

RW_TP(signal_deliver)
int BPF_PROG(rw_w_signal_deliver, int sig, struct kernel_siginfo *info, struct k_sigaction *ka)
{
	struct rw_w_subject s;
	__s32 code = RW_W_SI_USER;

	if ((unsigned long)info == 1)
		code = RW_W_SI_KERNEL;
	else if ((unsigned long)info > 1)
		code = BPF_CORE_READ(info, si_code);
	rw_w_check(RW_W_SIGNAL, bpf_ktime_get_boot_ns(), &s, false, NULL, sig, 0, 0, (__u64)(__s64)code);
	return 0;
}

RW_TP(sched_process_exit)
int BPF_PROG(rw_w_sched_process_exit, struct task_struct *p)
{
	struct rw_w_subject s;
	int code = RW_R(p, exit_code);

	/* the process, not each thread: its leader carries the group's
	 * status (which thread is last out is racy to tell here) */
	if (code == 0 || RW_R(p, pid) != RW_R(p, tgid))
		return 0;
	rw_w_check(RW_W_EXIT, bpf_ktime_get_boot_ns(), &s, false, NULL, (__u32)code, 0, 0, 0);
	return 0;
}

RW_TP(mark_victim)
int BPF_PROG(rw_w_mark_victim)
{
	struct rw_w_subject s;

	__builtin_memset(&s, 0, sizeof(s));
	if (rw_w_oom_task) {
		rw_w_task(&s, (struct task_struct *)ctx[0]);
	} else {
		s.tid = (__u32)ctx[0];
		s.pid = s.tid;
	}
	rw_w_check(RW_W_OOM, bpf_ktime_get_boot_ns(), &s, true, NULL, s.pid, 0, 0, 0);
	return 0;
}
