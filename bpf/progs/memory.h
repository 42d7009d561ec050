/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* memory: OOM kills and direct reclaim. */

/* Before 6.2 the RSS counters were atomics in struct mm_rss_stat. */
struct mm_rss_stat___pre62 {
	atomic_long_t count[4];
} __attribute__((preserve_access_index));

struct mm_struct___pre62 {
	struct mm_rss_stat___pre62 rss_stat;
} __attribute__((preserve_access_index));

/* rw_mm_counter mirrors get_mm_counter(): MM_FILEPAGES 0, MM_ANONPAGES 1,
 * MM_SHMEMPAGES 3. */
static __always_inline __u64 rw_mm_counter(struct mm_struct *mm, int member)
{
	long v;

	if (bpf_core_type_exists(struct mm_rss_stat___pre62))
		v = BPF_CORE_READ((struct mm_struct___pre62 *)mm, rss_stat.count[member].counter);
	else
		v = BPF_CORE_READ(mm, rss_stat[member].count);
	return v < 0 ? 0 : v;
}

RW_TP(mark_victim)
int BPF_PROG(rw_mark_victim, struct task_struct *task, uid_t uid)
{
	struct rw_ev_mark_victim *e;
	struct mm_struct *mm;
	struct rw_draft d;

	if (!(e = rw_draft_pair(&d, RW_EV_MARK_VICTIM, task)))
		return 0;
	rw_target(e, task);
	e->uid = uid;
	e->oom_score_adj = BPF_CORE_READ(task, signal, oom_score_adj);
	mm = BPF_CORE_READ(task, mm);
	if (mm) {
		e->total_vm = BPF_CORE_READ(mm, total_vm);
		e->file_rss = rw_mm_counter(mm, 0);
		e->anon_rss = rw_mm_counter(mm, 1);
		e->shmem_rss = rw_mm_counter(mm, 3);
	}
	rw_emit(&d, RW_EV_MARK_VICTIM, sizeof(*e));
	return 0;
}

RW_TP(mm_vmscan_direct_reclaim_begin)
int BPF_PROG(rw_mm_vmscan_direct_reclaim_begin, int order, gfp_t gfp_flags)
{
	struct rw_ev_mm_vmscan_direct_reclaim_begin *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_MM_VMSCAN_DIRECT_RECLAIM_BEGIN)))
		return 0;
	e->order = order;
	e->gfp_flags = gfp_flags;
	rw_end(&r);
	return 0;
}

RW_TP(mm_vmscan_direct_reclaim_end)
int BPF_PROG(rw_mm_vmscan_direct_reclaim_end, unsigned long nr_reclaimed)
{
	struct rw_ev_mm_vmscan_direct_reclaim_end *e;
	struct rw_rec r;

	if (!(e = rw_open_current(&r, RW_EV_MM_VMSCAN_DIRECT_RECLAIM_END)))
		return 0;
	e->nr_reclaimed = nr_reclaimed;
	rw_end(&r);
	return 0;
}
