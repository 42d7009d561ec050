/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* locks and work: kernel lock contention, workqueue items. */

RW_TP(contention_begin)
int BPF_PROG(rw_contention_begin, void *lock, unsigned int flags)
{
	struct rw_ev_contention_begin *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_CONTENTION_BEGIN)))
		return 0;
	e->lock = (__u64)lock;
	e->flags = flags;
	rw_end(&r);
	return 0;
}

RW_TP(contention_end)
int BPF_PROG(rw_contention_end, void *lock, int ret)
{
	struct rw_ev_contention_end *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_CONTENTION_END)))
		return 0;
	e->lock = (__u64)lock;
	e->ret = ret;
	rw_end(&r);
	return 0;
}

RW_TP(workqueue_execute_start)
int BPF_PROG(rw_workqueue_execute_start, struct work_struct *work)
{
	struct rw_ev_workqueue_execute_start *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_WORKQUEUE_EXECUTE_START)))
		return 0;
	e->work = (__u64)work;
	e->function = (__u64)BPF_CORE_READ(work, func);
	rw_end(&r);
	return 0;
}

/* A raw tracepoint: tp_btf refuses the function-pointer argument, and the
 * work item itself may be freed by now, so only the two values are read. */
SEC("raw_tp/workqueue_execute_end")
int rw_workqueue_execute_end(struct bpf_raw_tracepoint_args *ctx)
{
	struct rw_ev_workqueue_execute_end *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_WORKQUEUE_EXECUTE_END)))
		return 0;
	e->work = ctx->args[0];
	e->function = ctx->args[1];
	rw_end(&r);
	return 0;
}
