/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* filter.h: the in-kernel filter of tasks (pids, task names, cgroups),
 * shared by the recording programs (ring.h) and the live histograms
 * (watch.bpf.c); bpf.Filter builds it. Needs attach.h. */
#ifndef REWIND_FILTER_H
#define REWIND_FILTER_H

/* Non-zero while a filter is set: programs then consult rw_filter. */
volatile __u32 rw_filter_on;

#define RW_FILTER_PID 1
#define RW_FILTER_COMM 2
#define RW_FILTER_CGROUP 4

/*
 * A filter is one hash map holding its flags and its sets of ids, task
 * names and cgroups. User space builds a new map for every change and swaps
 * it into rw_filter in one update, so a program sees the old filter or the
 * new one, never a mix or an empty one: no moment where events pass
 * unfiltered or matching ones are dropped.
 */
enum rw_filter_kind {
	RW_FK_FLAGS = 0,	/* value: RW_FILTER_* flags */
	RW_FK_ID = 1,		/* id: a tid or tgid */
	RW_FK_COMM = 2,		/* comm: a task name */
	RW_FK_CGROUP = 3,	/* id: a cgroup v2 id */
};

struct rw_filter_key {
	enum rw_filter_kind kind;	/* 4 bytes */
	__u32 __pad;
	union {
		__u64 id;
		char comm[16];
	};
};

#define RW_FILTER_MAX 2048

/* Keeps the key's definition in BTF: the inner map's spec needs its size. */
const struct rw_filter_key rw_filter_key_anchor __attribute__((unused));

struct rw_filter_set {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct rw_filter_key);
	__type(value, __u32);
	__uint(max_entries, RW_FILTER_MAX);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct rw_filter_set);
} rw_filter SEC(".maps");

/* rw_filter_get returns the filter set and its flags, or NULL for none. */
static __always_inline void *rw_filter_get(__u32 *flags)
{
	struct rw_filter_key k = {};
	__u32 zero = 0, *f;
	void *set;

	set = bpf_map_lookup_elem(&rw_filter, &zero);
	if (!set)
		return NULL;
	k.kind = RW_FK_FLAGS;
	f = bpf_map_lookup_elem(set, &k);
	if (!f)
		return NULL;
	*flags = *f;
	return set;
}

static __always_inline bool rw_filter_has(void *set, __u32 kind, __u64 id)
{
	struct rw_filter_key k = {};

	k.kind = kind;
	k.id = id;
	return bpf_map_lookup_elem(set, &k) != NULL;
}

static __always_inline bool rw_filter_comm(void *set, const char *comm)
{
	struct rw_filter_key k = {};

	k.kind = RW_FK_COMM;
	__builtin_memcpy(k.comm, comm, sizeof(k.comm));
	return bpf_map_lookup_elem(set, &k) != NULL;
}

static __always_inline bool rw_match_current(void *set, __u32 flags, __u64 pid_tgid)
{
	if ((flags & RW_FILTER_PID) && !rw_filter_has(set, RW_FK_ID, pid_tgid >> 32) &&
	    !rw_filter_has(set, RW_FK_ID, (__u32)pid_tgid))
		return false;
	if (flags & RW_FILTER_COMM) {
		char comm[16] = {};

		bpf_get_current_comm(comm, sizeof(comm));
		if (!rw_filter_comm(set, comm))
			return false;
	}
	if ((flags & RW_FILTER_CGROUP) && !rw_filter_has(set, RW_FK_CGROUP, bpf_get_current_cgroup_id()))
		return false;
	return true;
}

static __always_inline bool rw_match_task(void *set, __u32 flags, struct task_struct *t)
{
	if ((flags & RW_FILTER_PID) && !rw_filter_has(set, RW_FK_ID, RW_R(t, tgid)) && !rw_filter_has(set, RW_FK_ID, RW_R(t, pid)))
		return false;
	if (flags & RW_FILTER_COMM) {
		char comm[16];

		rw_copy_comm(comm, t->comm);
		if (!rw_filter_comm(set, comm))
			return false;
	}
	if ((flags & RW_FILTER_CGROUP) && !rw_filter_has(set, RW_FK_CGROUP, BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id)))
		return false;
	return true;
}

/* rw_filter_pass_current and rw_filter_pass_task: whether the current
 * task, or another, passes the filter (every task does while none is set). */
static __always_inline bool rw_filter_pass_current(__u64 pid_tgid)
{
	__u32 flags = 0;
	void *set;

	if (!rw_filter_on)
		return true;
	set = rw_filter_get(&flags);
	return !set || rw_match_current(set, flags, pid_tgid);
}

static __always_inline bool rw_filter_pass_task(struct task_struct *t)
{
	__u32 flags = 0;
	void *set;

	if (!rw_filter_on)
		return true;
	set = rw_filter_get(&flags);
	return !set || rw_match_task(set, flags, t);
}

#endif /* REWIND_FILTER_H */
