/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* sched: switches and wakeups. */

/* Task states, <linux/sched.h>; stable since 5.14 (TASK_FROZEN since 6.1). */
#define RW_TASK_UNINTERRUPTIBLE 0x0002
#define RW_TASK_REPORT 0x007f
#define RW_TASK_REPORT_IDLE 0x0080
#define RW_TASK_REPORT_MAX 0x0100
#define RW_TASK_NOLOAD 0x0400
#define RW_TASK_RTLOCK_WAIT 0x1000
#define RW_TASK_FROZEN 0x8000

/* rw_report_state mirrors __trace_sched_switch_state() in
 * include/trace/events/sched.h: the encoding ftrace, perf and Perfetto use. */
static __always_inline __u16 rw_report_state(bool preempt, struct task_struct *prev)
{
	unsigned int state, s;

	if (preempt)
		return RW_TASK_REPORT_MAX;
	state = rw_task_state(prev);
	s = (state | (unsigned int)RW_R(prev, exit_state)) & RW_TASK_REPORT;
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

RW_TP(sched_switch)
int BPF_PROG(rw_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct rw_ev_sched_switch *e;
	struct rw_rec r;

	if (!(e = rw_open_pair(&r, RW_EV_SCHED_SWITCH, next)))
		return 0;
	rw_copy_comm(e->prev_comm, prev->comm);
	rw_copy_comm(e->next_comm, next->comm);
	e->next_tid = RW_R(next, pid);
	e->prev_prio = RW_R(prev, prio);
	e->next_prio = RW_R(next, prio);
	e->prev_state = rw_report_state(preempt, prev);
	rw_end(&r);
	return 0;
}

static __always_inline int rw_wakeup(__u16 type, struct task_struct *p)
{
	struct rw_ev_sched_waking *e;
	struct rw_rec r;

	if (!(e = rw_open_pair(&r, type, p)))
		return 0;
	rw_target(e, p);
	e->target_cpu = rw_task_cpu(p);
	e->target_prio = RW_R(p, prio);
	rw_end(&r);
	return 0;
}

RW_TP(sched_waking)
int BPF_PROG(rw_sched_waking, struct task_struct *p)
{
	return rw_wakeup(RW_EV_SCHED_WAKING, p);
}

RW_TP(sched_wakeup_new)
int BPF_PROG(rw_sched_wakeup_new, struct task_struct *p)
{
	return rw_wakeup(RW_EV_SCHED_WAKEUP_NEW, p);
}

RW_TP(sched_migrate_task)
int BPF_PROG(rw_sched_migrate_task, struct task_struct *p, int dest_cpu)
{
	struct rw_ev_sched_migrate_task *e;
	struct rw_rec r;

	if (!(e = rw_open_pair(&r, RW_EV_SCHED_MIGRATE_TASK, p)))
		return 0;
	rw_target(e, p);
	e->orig_cpu = rw_task_cpu(p);
	e->dest_cpu = dest_cpu;
	e->target_prio = RW_R(p, prio);
	rw_end(&r);
	return 0;
}
