/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* syscalls: raw_syscalls:sys_enter and sys_exit. */

/* System call arguments as the syscall ABI passes them. */
#if defined(__TARGET_ARCH_x86)
#define RW_SC_ARG0(r) RW_R(r, di)
#define RW_SC_ARG1(r) RW_R(r, si)
#define RW_SC_ARG2(r) RW_R(r, dx)
#define RW_SC_ARG3(r) RW_R(r, r10)
#define RW_SC_NR(r) RW_R(r, orig_ax)
#elif defined(__TARGET_ARCH_arm64)
struct pt_regs___rw_arm64 {
	__u64 regs[31];
	__s32 syscallno;
} __attribute__((preserve_access_index));
#define RW_SC_ARG0(r) RW_R((struct pt_regs___rw_arm64 *)(r), regs[0])
#define RW_SC_ARG1(r) RW_R((struct pt_regs___rw_arm64 *)(r), regs[1])
#define RW_SC_ARG2(r) RW_R((struct pt_regs___rw_arm64 *)(r), regs[2])
#define RW_SC_ARG3(r) RW_R((struct pt_regs___rw_arm64 *)(r), regs[3])
#define RW_SC_NR(r) RW_R((struct pt_regs___rw_arm64 *)(r), syscallno)
#else
#error "rewind: unsupported architecture"
#endif

RW_TP(sys_enter)
int BPF_PROG(rw_sys_enter, struct pt_regs *regs, long id)
{
	struct rw_ev_sys_enter *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_SYS_ENTER)))
		return 0;
	e->id = id;
	e->args[0] = RW_SC_ARG0(regs);
	e->args[1] = RW_SC_ARG1(regs);
	e->args[2] = RW_SC_ARG2(regs);
	e->args[3] = RW_SC_ARG3(regs);
	rw_end(&r);
	return 0;
}

RW_TP(sys_exit)
int BPF_PROG(rw_sys_exit, struct pt_regs *regs, long ret)
{
	struct rw_ev_sys_exit *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_SYS_EXIT)))
		return 0;
	e->id = RW_SC_NR(regs);
	e->ret = ret;
	rw_end(&r);
	return 0;
}
