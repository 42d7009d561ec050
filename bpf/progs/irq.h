/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* irq: hard and soft interrupt handlers. The recording task is whichever
 * one the interrupt arrived in. */

RW_TP(irq_handler_entry)
int BPF_PROG(rw_irq_handler_entry, int irq, struct irqaction *action)
{
	struct rw_ev_irq_handler_entry *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_IRQ_HANDLER_ENTRY)))
		return 0;
	e->irq = irq;
	__builtin_memset(e->name, 0, sizeof(e->name));
	bpf_probe_read_kernel_str(e->name, sizeof(e->name), BPF_CORE_READ(action, name));
	rw_end(&r);
	return 0;
}

RW_TP(irq_handler_exit)
int BPF_PROG(rw_irq_handler_exit, int irq, struct irqaction *action, int ret)
{
	struct rw_ev_irq_handler_exit *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_IRQ_HANDLER_EXIT)))
		return 0;
	e->irq = irq;
	e->handled = ret;
	rw_end(&r);
	return 0;
}

RW_TP(softirq_entry)
int BPF_PROG(rw_softirq_entry, unsigned int vec)
{
	struct rw_ev_softirq_entry *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_SOFTIRQ_ENTRY)))
		return 0;
	e->vec = vec;
	rw_end(&r);
	return 0;
}

RW_TP(softirq_exit)
int BPF_PROG(rw_softirq_exit, unsigned int vec)
{
	struct rw_ev_softirq_exit *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_SOFTIRQ_EXIT)))
		return 0;
	e->vec = vec;
	rw_end(&r);
	return 0;
}
