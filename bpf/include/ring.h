/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * ring.h: the kernel tier's per-CPU overwrite rings and the record protocol.
 *
 * Each CPU owns a power-of-two run of 64-byte slots in one BPF_F_MMAPABLE
 * array (rw_ring) and a head counter (rw_heads). A program reserves slots on
 * its CPU's head (rw_reserve: so a program interrupted by another on the same
 * CPU never shares a slot), marks each slot busy, fills it, then publishes
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

#include "attach.h"

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
	__u32 reserving; /* RW_NO_FETCH: a reservation is under way */
	__u32 __pad0;
	__u64 __pad[5];
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

/*
 * Tracepoint arguments differ between kernel versions (kfree_skb gained its
 * reason in 5.17, tcp_send_reset in 6.10). Before load, user space writes
 * here the size in bytes of each argument of each event's tracepoint, from
 * the kernel's BTF (btf_trace_<name>), 0 for an argument this kernel does not
 * pass. A program reads an argument that not every kernel has only under
 * rw_has_arg: the value is a load-time constant, so the verifier drops the
 * branch the kernel cannot take, ctx access and all.
 */
#define RW_MAX_ARGS 8
const volatile __u8 rw_tp_argsize[RW_EV_MAX][RW_MAX_ARGS];

#define rw_has_arg(type, i) (rw_tp_argsize[type][i] != 0)
#define rw_arg_size(type, i) (rw_tp_argsize[type][i])

/* Changed at run time, without reloading, through the mmapped .data. */
volatile __u8 rw_enabled[RW_EV_MAX];
/*
 * Non-zero: a program whose reservation crosses a multiple of
 * 1 << rw_wake_shift slots tells user space through rw_wake (the history
 * tier drains on that watermark rather than only on a timer).
 */
volatile __u32 rw_wake_shift;

#include "filter.h"

/* rw_wake carries the CPU whose ring crossed a watermark. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rw_wake SEC(".maps");

/*
 * rw_counts counts, per CPU and event, the records reserved: what metrics
 * report as events recorded. Only its CPU's programs write a CPU's
 * counter, with a plain increment: a program of the same event nested in
 * another on one CPU (older kernels) can miss one count.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, RW_EV_MAX);
} rw_counts SEC(".maps");

#define rw_barrier() asm volatile("" ::: "memory")


/*
 * rw_mark stores v into a slot's seq so that every store before it (publish)
 * or after it (busy mark) is ordered with it. x86 keeps stores in program
 * order, so a compiler barrier is enough; weakly ordered CPUs get an atomic
 * exchange, which the JITs emit with full ordering.
 */
#if defined(RW_NO_FETCH) && !defined(__TARGET_ARCH_x86)
#error "RW_NO_FETCH relies on x86 store ordering"
#endif
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

/*
 * rw_reserve takes n slots on this CPU's head and returns the first one's
 * sequence number in *seq, or false when the record is lost (and counted).
 *
 * Kernels from 5.12 on have fetching atomics: one atomic add reserves, and
 * nothing a program does can interleave with another's reservation.
 *
 * Built with RW_NO_FETCH, for 5.10 and 5.11, the reservation is a plain load
 * and store under a flag. It relies on what those kernels guarantee: the
 * programs run with preemption off (tracepoints) or in NMI (perf events), so
 * programs on one CPU nest only as interrupts do, each one finishing before
 * the one it interrupted goes on. A program that finds the flag set has
 * interrupted another one's reservation: it counts its record lost rather
 * than take the same slots. A program that interrupts before the flag is set
 * or after it is cleared reserves in full before the one it interrupted reads
 * the head. The window is a few instructions; the losses are counted per CPU
 * like any other.
 */
static __always_inline bool rw_reserve(struct rw_head *h, __u32 n, __u64 *seq)
{
#ifdef RW_NO_FETCH
	volatile struct rw_head *vh = h;

	if (vh->reserving) {
		__sync_fetch_and_add(&h->lost, 1); /* non-fetching: 5.10 has it */
		return false;
	}
	vh->reserving = 1;
	rw_barrier();
	*seq = vh->head;
	vh->head = *seq + n;
	rw_barrier();
	vh->reserving = 0;
#else
	*seq = __sync_fetch_and_add(&h->head, n);
#endif
	return true;
}

/* rw_begin reserves nslots slots on this CPU and fills the first one's header. */
static __always_inline struct rw_slot *rw_begin(struct rw_rec *r, __u16 type, __u64 pid_tgid, __u32 nslots)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct rw_head *h = bpf_map_lookup_elem(&rw_heads, &cpu);
	struct rw_slot *s;

	if (!h || !rw_reserve(h, nslots, &r->seq))
		return NULL;
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
	{
		__u32 key = type;
		__u64 *n = bpf_map_lookup_elem(&rw_counts, &key);

		if (n)
			*n += 1;
	}
	return s;
}

static __always_inline void rw_end(struct rw_rec *r)
{
	rw_mark(&r->slot->hdr.seq, (__u32)r->seq);
}

/*
 * Records longer than one slot are built in a scratch buffer, one per event
 * type and CPU. Only a program of the same event can take the buffer from
 * under another, by interrupting it on the same CPU: recent kernels never
 * run a tracepoint's program nested in itself (they skip and count the
 * nested run), but older ones do (tcp_retransmit_skb in a softirq that
 * interrupted the same event in a task). So every
 * open of a buffer bumps its generation; a record whose buffer changed
 * generation before it was copied to the ring is published torn (readers
 * count it lost), not written with another record's bytes.
 */
struct rw_scratch {
	__u8 data[RW_MAX_SLOTS * RW_MAX_PAYLOAD];
	__u32 gen;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct rw_scratch);
	__uint(max_entries, RW_EV_MAX);
} rw_scratch SEC(".maps");

/* rw_draft is a record being built in scratch. */
struct rw_draft {
	struct rw_scratch *sc;
	__u64 pid_tgid;
	__u32 gen;
};

/* rw_draft_open takes type's scratch buffer for d, or returns NULL. */
static __always_inline void *rw_draft_open(struct rw_draft *d, __u32 type)
{
	struct rw_scratch *sc = bpf_map_lookup_elem(&rw_scratch, &type);

	if (!sc)
		return NULL;
	d->sc = sc;
	d->gen = ++((volatile struct rw_scratch *)sc)->gen;
	rw_barrier();
	return sc->data;
}

/* rw_draft_intact says whether nothing reopened d's buffer since d did. */
static __always_inline bool rw_draft_intact(struct rw_draft *d)
{
	rw_barrier();
	return ((volatile struct rw_scratch *)d->sc)->gen == d->gen;
}

/* rw_emit writes the first size bytes of d as one record over the slots it
 * needs. */
static __always_inline void rw_emit(struct rw_draft *d, __u16 type, __u32 size)
{
	__u32 nslots = (size + RW_MAX_PAYLOAD - 1) / RW_MAX_PAYLOAD, i;
	const __u8 *scratch = d->sc->data;
	struct rw_slot *s;
	struct rw_rec r;

	if (nslots < 1)
		nslots = 1;
	if (nslots > RW_MAX_SLOTS)
		nslots = RW_MAX_SLOTS;
	if (!rw_begin(&r, type, d->pid_tgid, nslots))
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
	/* Torn: publish the slots as continuations without a first slot,
	 * which readers drop and count lost, like an overwritten record. */
	if (!rw_draft_intact(d))
		r.slot->hdr.type = RW_EV_CONT;
	rw_end(&r);
}

/* Filters. Every event passes rw_want_* before it reserves a slot. */


/*
 * rw_interrupt_event says whether an event fires in interrupt context as
 * often as not (a softirq's retransmission, a completion's interrupt), so
 * that the current task is only the one the interrupt landed on: the
 * recorder's process being that task says nothing about who caused it, and
 * such an event is kept then. type is a constant where this is inlined.
 */
static __always_inline bool rw_interrupt_event(__u32 type)
{
	switch (type) {
	case RW_EV_IRQ_HANDLER_ENTRY:
	case RW_EV_IRQ_HANDLER_EXIT:
	case RW_EV_SOFTIRQ_ENTRY:
	case RW_EV_SOFTIRQ_EXIT:
	case RW_EV_BLOCK_RQ_COMPLETE:
	case RW_EV_TCP_RETRANSMIT_SKB:
	case RW_EV_TCP_SEND_RESET:
	case RW_EV_TCP_RECEIVE_RESET:
	case RW_EV_INET_SOCK_SET_STATE:
	case RW_EV_KFREE_SKB:
		return true;
	}
	return false;
}

/* rw_want_current: an event about the current task only (or, for an
 * interrupt event, about whatever it interrupted). */
static __always_inline bool rw_want_current(__u32 type, __u64 pid_tgid)
{
	__u32 flags = 0;
	void *set;

	if (type >= RW_EV_MAX || !rw_enabled[type])
		return false;
	if ((__u32)(pid_tgid >> 32) == rw_self_tgid && !rw_interrupt_event(type))
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
	if ((__u32)(pid_tgid >> 32) == rw_self_tgid && (__u32)RW_R(other, tgid) == rw_self_tgid)
		return false;
	if (!rw_filter_on)
		return true;
	set = rw_filter_get(&flags);
	return !set || rw_match_current(set, flags, pid_tgid) || rw_match_task(set, flags, other);
}

#endif /* REWIND_RING_H */
