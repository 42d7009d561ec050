/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* power: idle states and frequency changes. */

RW_TP(cpu_idle)
int BPF_PROG(rw_cpu_idle, unsigned int state, unsigned int cpu_id)
{
	struct rw_ev_cpu_idle *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_CPU_IDLE)))
		return 0;
	e->state = state;
	e->cpu_id = cpu_id;
	rw_end(&r);
	return 0;
}

RW_TP(cpu_frequency)
int BPF_PROG(rw_cpu_frequency, unsigned int state, unsigned int cpu_id)
{
	struct rw_ev_cpu_frequency *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_CPU_FREQUENCY)))
		return 0;
	e->state = state;
	e->cpu_id = cpu_id;
	rw_end(&r);
	return 0;
}
