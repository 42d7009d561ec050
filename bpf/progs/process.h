/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* process: lifecycle and names. */

RW_TP(sched_process_fork)
int BPF_PROG(rw_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	struct rw_ev_sched_process_fork *e;
	struct rw_rec r;

	if (!(e = rw_open_pair(&r, RW_EV_SCHED_PROCESS_FORK, child)))
		return 0;
	rw_copy_comm(e->parent_comm, parent->comm);
	rw_copy_comm(e->child_comm, child->comm);
	e->child_tid = RW_R(child, pid);
	e->child_pid = RW_R(child, tgid);
	rw_end(&r);
	return 0;
}

RW_TP(sched_process_exec)
int BPF_PROG(rw_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct rw_ev_sched_process_exec *e;
	struct rw_draft d;
	long n;

	if (!(e = rw_draft_current(&d, RW_EV_SCHED_PROCESS_EXEC)))
		return 0;
	e->old_tid = old_pid;
	n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	if (n < 1)
		n = 1;
	rw_emit(&d, RW_EV_SCHED_PROCESS_EXEC, offsetof(struct rw_ev_sched_process_exec, filename) + n);
	return 0;
}

RW_TP(sched_process_exit)
int BPF_PROG(rw_sched_process_exit, struct task_struct *p)
{
	struct rw_ev_sched_process_exit *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_SCHED_PROCESS_EXIT)))
		return 0;
	e->exit_code = RW_R(p, exit_code);
	e->prio = RW_R(p, prio);
	/* the tracepoint's own group_dead argument is newer than 6.x */
	e->group_dead = BPF_CORE_READ(p, signal, live.counter) == 0;
	rw_end(&r);
	return 0;
}

RW_TP(sched_process_free)
int BPF_PROG(rw_sched_process_free, struct task_struct *p)
{
	struct rw_ev_sched_process_free *e;
	struct rw_rec r;

	if (!(e = rw_open_pair(&r, RW_EV_SCHED_PROCESS_FREE, p)))
		return 0;
	rw_target(e, p);
	e->target_prio = RW_R(p, prio);
	rw_end(&r);
	return 0;
}

RW_TP(task_newtask)
int BPF_PROG(rw_task_newtask, struct task_struct *task, u64 clone_flags)
{
	struct rw_ev_task_newtask *e;
	struct rw_rec r;

	if (!(e = rw_open_pair(&r, RW_EV_TASK_NEWTASK, task)))
		return 0;
	rw_target(e, task);
	e->clone_flags = clone_flags;
	e->oom_score_adj = BPF_CORE_READ(task, signal, oom_score_adj);
	rw_end(&r);
	return 0;
}

RW_TP(task_rename)
int BPF_PROG(rw_task_rename, struct task_struct *task, const char *comm)
{
	struct rw_ev_task_rename *e;
	struct rw_rec r;

	if (!(e = rw_open_pair(&r, RW_EV_TASK_RENAME, task)))
		return 0;
	rw_copy_comm(e->oldcomm, task->comm);
	__builtin_memset(e->newcomm, 0, sizeof(e->newcomm));
	bpf_probe_read_kernel_str(e->newcomm, sizeof(e->newcomm), comm);
	e->target_tid = RW_R(task, pid);
	e->target_pid = RW_R(task, tgid);
	rw_end(&r);
	return 0;
}
