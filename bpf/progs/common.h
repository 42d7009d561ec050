/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Helpers shared by the programs. */

static __always_inline __s32 rw_task_cpu(struct task_struct *t)
{
	struct thread_info *ti = &t->thread_info;

	if (bpf_core_field_exists(ti->cpu))
		return BPF_CORE_READ(ti, cpu);
	return RW_R(t, wake_cpu);
}

/* rw_target fills the fields naming another task. */
#define rw_target(e, t)                                  \
	do {                                             \
		rw_copy_comm((e)->target_comm, (t)->comm); \
		(e)->target_tid = RW_R(t, pid);          \
		(e)->target_pid = RW_R(t, tgid);         \
	} while (0)

/*
 * rw_open_current and rw_open_pair filter an event, reserve one slot and
 * return its payload, or NULL when the event is not recorded. Close it with
 * rw_end.
 */
static __always_inline void *rw_open_current(struct rw_rec *r, __u16 type)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	if (!rw_want_current(type, pid_tgid) || !rw_begin(r, type, pid_tgid, 1))
		return NULL;
	return r->slot->data;
}

static __always_inline void *rw_open_pair(struct rw_rec *r, __u16 type, struct task_struct *other)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	if (!rw_want_pair(type, pid_tgid, other) || !rw_begin(r, type, pid_tgid, 1))
		return NULL;
	return r->slot->data;
}

/*
 * rw_draft_current and rw_draft_pair filter an event that spans several
 * slots and return its zeroed scratch buffer; emit it with rw_emit.
 */
static __always_inline void *rw_draft_zeroed(struct rw_draft *d, __u16 type)
{
	__u8 *data = rw_draft_open(d, type);

	/* The payloads but the stack samples' fit in RW_ZEROED bytes; the
	 * stack samples write every byte they emit. */
	if (data)
		__builtin_memset(data, 0, RW_ZEROED);
	return data;
}

static __always_inline void *rw_draft_current(struct rw_draft *d, __u16 type)
{
	d->pid_tgid = bpf_get_current_pid_tgid();
	if (!rw_want_current(type, d->pid_tgid))
		return NULL;
	return rw_draft_zeroed(d, type);
}

static __always_inline void *rw_draft_pair(struct rw_draft *d, __u16 type, struct task_struct *other)
{
	d->pid_tgid = bpf_get_current_pid_tgid();
	if (!rw_want_pair(type, d->pid_tgid, other))
		return NULL;
	return rw_draft_zeroed(d, type);
}

_Static_assert(sizeof(((struct rw_scratch *)0)->data) >= sizeof(struct rw_ev_sched_process_exec), "scratch too small");
_Static_assert(sizeof(((struct rw_scratch *)0)->data) >= sizeof(struct rw_ev_mark_victim), "scratch too small");
_Static_assert(sizeof(((struct rw_scratch *)0)->data) >= sizeof(struct rw_ev_inet_sock_set_state), "scratch too small");
