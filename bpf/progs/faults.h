/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* faults: the exceptions:page_fault_* tracepoints exist on x86 only. */

#if defined(__TARGET_ARCH_x86)
static __always_inline int rw_fault(__u16 type, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
	struct rw_ev_page_fault_user *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, type)))
		return 0;
	e->address = address;
	e->ip = RW_R(regs, ip);
	e->error_code = error_code;
	rw_end(&r);
	return 0;
}

RW_TP(page_fault_user)
int BPF_PROG(rw_page_fault_user, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
	return rw_fault(RW_EV_PAGE_FAULT_USER, address, regs, error_code);
}

RW_TP(page_fault_kernel)
int BPF_PROG(rw_page_fault_kernel, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
	return rw_fault(RW_EV_PAGE_FAULT_KERNEL, address, regs, error_code);
}
#endif
