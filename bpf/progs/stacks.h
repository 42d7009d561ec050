/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* stacks: CPU samples (a perf cpu-clock event per CPU) and off-CPU stacks. */

/*
 * rw_take_stacks fills e with the current task's kernel stack, then its user
 * stack right after it, and emits the frames it took.
 */
static __always_inline void rw_take_stacks(void *ctx, struct rw_draft *d, __u16 type, struct rw_ev_cpu_sample *e)
{
	long k, u;
	__u32 kn, un;

	k = bpf_get_stack(ctx, e->frames, RW_KSTACK_MAX * sizeof(__u64), 0);
	kn = k > 0 ? k / sizeof(__u64) : 0;
	if (kn > RW_KSTACK_MAX)
		kn = RW_KSTACK_MAX;
	u = 0;
	if (d->pid_tgid >> 32) /* kernel threads have no user stack */
		u = bpf_get_stack(ctx, &e->frames[kn], RW_USTACK_MAX * sizeof(__u64), BPF_F_USER_STACK);
	un = u > 0 ? u / sizeof(__u64) : 0;
	if (un > RW_USTACK_MAX)
		un = RW_USTACK_MAX;
	e->kframes = kn;
	e->uframes = un;
	e->__pad = 0;
	rw_emit(d, type, offsetof(struct rw_ev_cpu_sample, frames) + (kn + un) * sizeof(__u64));
}

SEC("perf_event")
int rw_cpu_sample(struct bpf_perf_event_data *ctx)
{
	struct rw_ev_cpu_sample *e;
	struct rw_draft d;

	if (!(e = rw_draft_current(&d, RW_EV_CPU_SAMPLE)))
		return 0;
	if ((__u32)d.pid_tgid == 0) /* the idle task: nothing ran */
		return 0;
	rw_take_stacks(ctx, &d, RW_EV_CPU_SAMPLE, e);
	return 0;
}

RW_TP(sched_switch)
int BPF_PROG(rw_offcpu_sample, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct rw_ev_cpu_sample *e;
	struct rw_draft d;

	/* Only a task that blocks: not one preempted, nor the idle task. */
	if (preempt || rw_task_state(prev) == 0)
		return 0;
	if (!(e = rw_draft_current(&d, RW_EV_OFFCPU_SAMPLE)))
		return 0;
	if ((__u32)d.pid_tgid == 0)
		return 0;
	rw_take_stacks(ctx, &d, RW_EV_OFFCPU_SAMPLE, e);
	return 0;
}
