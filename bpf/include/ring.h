/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * ring.h: the kernel tier's per-CPU overwrite rings and the record protocol.
 *
 * Each CPU owns a power-of-two run of 64-byte slots in one BPF_F_MMAPABLE
 * array (rw_ring) and a head counter (rw_heads). A program reserves slots with
 * an atomic add on its CPU's head (so a program interrupted by another on the
 * same CPU never shares a slot), marks each slot busy, fills it, then publishes
 * the low 32 bits of the slot's sequence number. User space reads the rings
 * through mmap while recording goes on and accepts a slot only when the
 * sequence it reads before and after copying is the one it expects
 * (ringbuf/ring.go), so a snapshot needs no pause and loses nothing.
 *
 * ringbuf/layout.go mirrors struct rw_hdr; bpf/layout_test.go checks the
 * mirror against this object's BTF.
 */
#ifndef REWIND_RING_H
#define REWIND_RING_H

#define RW_SLOT_SIZE 64
#define RW_MAX_PAYLOAD 40	/* bytes of payload in one slot */
#define RW_MAX_SLOTS 32		/* slots one record may span (a stack sample's) */
#define RW_ZEROED (7 * RW_MAX_PAYLOAD)	/* scratch bytes cleared for a record (all but stacks fit) */
#define RW_SEQ_BUSY 0xffffffffU	/* slot is being written */

struct rw_hdr {
	__u64 ts;	/* CLOCK_BOOTTIME, ns */
	__u32 seq;	/* low 32 bits of the per-CPU sequence; published last */
	__u16 type;	/* enum rw_event_type */
	__u8 nslots;	/* slots this record spans (continuations follow) */
	__u8 flags;
	__u32 tid;	/* current task */
	__u32 pid;	/* current process (tgid) */
};

struct rw_slot {
	struct rw_hdr hdr;
	__u8 data[RW_MAX_PAYLOAD];
};

/* One per CPU, a cache line each so CPUs never share one. */
struct rw_head {
	__u64 head;	/* next sequence number to reserve */
	__u64 lost;	/* records this CPU could not write */
	__u64 __pad[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct rw_slot);
	__uint(max_entries, 1); /* set at load: CPUs × slots per CPU */
} rw_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct rw_head);
	__uint(max_entries, 1); /* set at load: CPUs */
} rw_heads SEC(".maps");

/* Set before load. */
const volatile __u32 rw_self_tgid = 0;	/* the recorder: never recorded */
const volatile __u32 rw_slot_mask = 0;	/* slots per CPU - 1 */

/* Changed at run time, without reloading, through the mmapped .data. */
volatile __u8 rw_enabled[RW_EV_MAX];
/* Non-zero while a filter is set: programs then consult rw_filter. */
volatile __u32 rw_filter_on;
/*
 * Non-zero: a program whose reservation crosses a multiple of
 * 1 << rw_wake_shift slots tells user space through rw_wake (the history
 * tier drains on that watermark rather than only on a timer).
 */
volatile __u32 rw_wake_shift;

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

/* rw_wake carries the CPU whose ring crossed a watermark. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rw_wake SEC(".maps");

#define rw_barrier() asm volatile("" ::: "memory")

/*
 * rw_mark stores v into a slot's seq so that every store before it (publish)
 * or after it (busy mark) is ordered with it. x86 keeps stores in program
 * order, so a compiler barrier is enough; weakly ordered CPUs get an atomic
 * exchange, which the JITs emit with full ordering.
 */
#if defined(__TARGET_ARCH_x86)
#define rw_mark(p, v)                            \
	do {                                     \
		rw_barrier();                    \
		*(volatile __u32 *)(p) = (v);    \
		rw_barrier();                    \
	} while (0)
#else
#define rw_mark(p, v) ((void)__sync_lock_test_and_set((p), (v)))
#endif

struct rw_rec {
	struct rw_slot *slot;
	__u64 seq;
	__u32 cpu;
};

static __always_inline struct rw_slot *rw_slot_at(__u32 cpu, __u64 seq)
{
	__u32 idx = cpu * (rw_slot_mask + 1) + ((__u32)seq & rw_slot_mask);

	return bpf_map_lookup_elem(&rw_ring, &idx);
}

/* rw_begin reserves nslots slots on this CPU and fills the first one's header. */
static __always_inline struct rw_slot *rw_begin(struct rw_rec *r, __u16 type, __u64 pid_tgid, __u32 nslots)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct rw_head *h = bpf_map_lookup_elem(&rw_heads, &cpu);
	struct rw_slot *s;

	if (!h)
		return NULL;
	r->seq = __sync_fetch_and_add(&h->head, nslots);
	r->cpu = cpu;
	if (rw_wake_shift && (r->seq >> rw_wake_shift) != ((r->seq + nslots) >> rw_wake_shift))
		bpf_ringbuf_output(&rw_wake, &cpu, sizeof(cpu), 0);
	s = rw_slot_at(cpu, r->seq);
	if (!s) {
		__sync_fetch_and_add(&h->lost, 1);
		return NULL;
	}
	rw_mark(&s->hdr.seq, RW_SEQ_BUSY);
	s->hdr.ts = bpf_ktime_get_boot_ns();
	s->hdr.type = type;
	s->hdr.nslots = nslots;
	s->hdr.flags = 0;
	s->hdr.tid = (__u32)pid_tgid;
	s->hdr.pid = pid_tgid >> 32;
	r->slot = s;
	return s;
}

static __always_inline void rw_end(struct rw_rec *r)
{
	rw_mark(&r->slot->hdr.seq, (__u32)r->seq);
}

/*
 * Records longer than one slot are built in a scratch buffer, one per event
 * type and CPU: a tp_btf program never runs nested in itself on one CPU (the
 * kernel skips and counts the nested run), so no two writers share one.
 */
struct rw_scratch {
	__u8 data[RW_MAX_SLOTS * RW_MAX_PAYLOAD];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct rw_scratch);
	__uint(max_entries, RW_EV_MAX);
} rw_scratch SEC(".maps");

static __always_inline void *rw_scratch_for(__u32 type)
{
	return bpf_map_lookup_elem(&rw_scratch, &type);
}

/* rw_emit writes size bytes of scratch as one record over the slots it needs. */
static __always_inline void rw_emit(__u16 type, __u64 pid_tgid, const __u8 *scratch, __u32 size)
{
	__u32 nslots = (size + RW_MAX_PAYLOAD - 1) / RW_MAX_PAYLOAD, i;
	struct rw_slot *s;
	struct rw_rec r;

	if (nslots < 1)
		nslots = 1;
	if (nslots > RW_MAX_SLOTS)
		nslots = RW_MAX_SLOTS;
	if (!rw_begin(&r, type, pid_tgid, nslots))
		return;
	__builtin_memcpy(r.slot->data, scratch, RW_MAX_PAYLOAD);
	for (i = 1; i < RW_MAX_SLOTS; i++) {
		if (i >= nslots)
			break;
		s = rw_slot_at(r.cpu, r.seq + i);
		if (!s)
			break;
		rw_mark(&s->hdr.seq, RW_SEQ_BUSY);
		s->hdr.ts = r.slot->hdr.ts;
		s->hdr.type = RW_EV_CONT;
		s->hdr.nslots = 1;
		s->hdr.flags = 0;
		s->hdr.tid = r.slot->hdr.tid;
		s->hdr.pid = r.slot->hdr.pid;
		__builtin_memcpy(s->data, scratch + i * RW_MAX_PAYLOAD, RW_MAX_PAYLOAD);
		rw_mark(&s->hdr.seq, (__u32)(r.seq + i));
	}
	rw_end(&r);
}

/* Filters. Every event passes rw_want_* before it reserves a slot. */

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
	if ((flags & RW_FILTER_PID) && !rw_filter_has(set, RW_FK_ID, t->tgid) && !rw_filter_has(set, RW_FK_ID, t->pid))
		return false;
	if ((flags & RW_FILTER_COMM) && !rw_filter_comm(set, t->comm))
		return false;
	if ((flags & RW_FILTER_CGROUP) && !rw_filter_has(set, RW_FK_CGROUP, BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id)))
		return false;
	return true;
}

/* rw_want_current: an event about the current task only. */
static __always_inline bool rw_want_current(__u32 type, __u64 pid_tgid)
{
	__u32 flags = 0;
	void *set;

	if (type >= RW_EV_MAX || !rw_enabled[type])
		return false;
	if ((__u32)(pid_tgid >> 32) == rw_self_tgid)
		return false;
	if (!rw_filter_on)
		return true;
	set = rw_filter_get(&flags);
	return !set || rw_match_current(set, flags, pid_tgid);
}

/*
 * rw_want_pair: an event about the current task and another one (a switch,
 * a wakeup, a fork). It is kept when either side passes the filter, so that a
 * filtered recording still shows how its tasks were scheduled, and dropped
 * only when both sides are the recorder itself.
 */
static __always_inline bool rw_want_pair(__u32 type, __u64 pid_tgid, struct task_struct *other)
{
	__u32 flags = 0;
	void *set;

	if (type >= RW_EV_MAX || !rw_enabled[type])
		return false;
	if ((__u32)(pid_tgid >> 32) == rw_self_tgid && (__u32)other->tgid == rw_self_tgid)
		return false;
	if (!rw_filter_on)
		return true;
	set = rw_filter_get(&flags);
	return !set || rw_match_current(set, flags, pid_tgid) || rw_match_task(set, flags, other);
}

#endif /* REWIND_RING_H */
