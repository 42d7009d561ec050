/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* signals: generated (by the recording task, for a target) and delivered
 * (to the recording task). */

#define RW_SI_USER 0
#define RW_SI_KERNEL 0x80

/* rw_si_code mirrors TP_STORE_SIGINFO in include/trace/events/signal.h:
 * SEND_SIG_NOINFO (0) and SEND_SIG_PRIV (1) stand for no siginfo. */
static __always_inline __s32 rw_si_code(struct kernel_siginfo *info)
{
	if ((unsigned long)info == 0)
		return RW_SI_USER;
	if ((unsigned long)info == 1)
		return RW_SI_KERNEL;
	return BPF_CORE_READ(info, si_code);
}

RW_TP(signal_generate)
int BPF_PROG(rw_signal_generate, int sig, struct kernel_siginfo *info, struct task_struct *task, int group, int result)
{
	struct rw_ev_signal_generate *e;
	struct rw_rec r;

	if (!(e = rw_open_pair(&r, RW_EV_SIGNAL_GENERATE, task)))
		return 0;
	rw_copy_comm(e->target_comm, task->comm);
	e->target_tid = RW_R(task, pid);
	e->sig = sig;
	e->code = rw_si_code(info);
	e->group = group;
	e->result = result;
	rw_end(&r);
	return 0;
}

RW_TP(signal_deliver)
int BPF_PROG(rw_signal_deliver, int sig, struct kernel_siginfo *info, struct k_sigaction *ka)
{
	struct rw_ev_signal_deliver *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_SIGNAL_DELIVER)))
		return 0;
	e->sig = sig;
	e->code = rw_si_code(info);
	e->sa_handler = (__u64)BPF_CORE_READ(ka, sa.sa_handler);
	e->sa_flags = BPF_CORE_READ(ka, sa.sa_flags);
	rw_end(&r);
	return 0;
}
