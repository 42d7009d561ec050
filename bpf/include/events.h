/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * events.h is rewind's event schema: the one place where an event's id, name
 * and fields are defined.
 *
 * The Go catalogue (bpf/catalog.go) reads this enum and, for every
 * RW_EV_<NAME>, the struct rw_ev_<name> from the compiled object's BTF. The
 * snapshot's schema table carries them; the table of event kinds
 * (snapshot/schema/kinds) gives each event its group, begin/end pair and the
 * names Go code reads, and a test holds it to this file: a new event, or a
 * field Go code reads, needs its line there too.
 *
 * Rules the catalogue relies on:
 *  - an event's payload is struct rw_ev_<name>, at most RW_MAX_PAYLOAD bytes;
 *  - field names never repeat the common fields every record carries
 *    (ts, cpu, seq, tid, pid, comm);
 *  - the rw_*_t typedefs below carry a field's meaning (its "kind") into the
 *    schema; fields whose name starts with "__" are padding and are skipped;
 *  - ids are stable: append, never renumber.
 */
#ifndef REWIND_EVENTS_H
#define REWIND_EVENTS_H

enum rw_event_type {
	RW_EV_CONT = 0, /* continuation slot of a multi-slot record */
	RW_EV_SCHED_SWITCH = 1,
	RW_EV_SCHED_WAKING = 2,
	RW_EV_SCHED_WAKEUP_NEW = 3,
	RW_EV_SCHED_PROCESS_FORK = 4,
	RW_EV_SCHED_PROCESS_EXEC = 5,
	RW_EV_SCHED_PROCESS_EXIT = 6,
	RW_EV_SYS_ENTER = 7,
	RW_EV_SYS_EXIT = 8,
	RW_EV_BLOCK_RQ_INSERT = 9,
	RW_EV_BLOCK_RQ_ISSUE = 10,
	RW_EV_BLOCK_RQ_COMPLETE = 11,
	RW_EV_IRQ_HANDLER_ENTRY = 12,
	RW_EV_IRQ_HANDLER_EXIT = 13,
	RW_EV_SOFTIRQ_ENTRY = 14,
	RW_EV_SOFTIRQ_EXIT = 15,
	RW_EV_PAGE_FAULT_USER = 16,
	RW_EV_PAGE_FAULT_KERNEL = 17,
	RW_EV_SIGNAL_GENERATE = 18,
	RW_EV_SIGNAL_DELIVER = 19,
	RW_EV_SCHED_PROCESS_FREE = 20,
	RW_EV_TASK_NEWTASK = 21,
	RW_EV_TASK_RENAME = 22,
	RW_EV_SCHED_MIGRATE_TASK = 23,
	RW_EV_TCP_RETRANSMIT_SKB = 24,
	RW_EV_TCP_SEND_RESET = 25,
	RW_EV_TCP_RECEIVE_RESET = 26,
	RW_EV_INET_SOCK_SET_STATE = 27,
	RW_EV_KFREE_SKB = 28,
	RW_EV_MARK_VICTIM = 29,
	RW_EV_MM_VMSCAN_DIRECT_RECLAIM_BEGIN = 30,
	RW_EV_MM_VMSCAN_DIRECT_RECLAIM_END = 31,
	RW_EV_CONTENTION_BEGIN = 32,
	RW_EV_CONTENTION_END = 33,
	RW_EV_WORKQUEUE_EXECUTE_START = 34,
	RW_EV_WORKQUEUE_EXECUTE_END = 35,
	RW_EV_CPU_IDLE = 36,
	RW_EV_CPU_FREQUENCY = 37,
	RW_EV_CPU_SAMPLE = 38,
	RW_EV_OFFCPU_SAMPLE = 39,
	RW_EV_MAX,
};

/* Kinds: how a reader should present a field. */
typedef char rw_comm_t[16];	/* task comm, NUL-padded */
typedef __u32 rw_tid_t;		/* thread id (kernel pid) */
typedef __u32 rw_pid_t;		/* process id (kernel tgid) */
typedef __u8 rw_prio_t;		/* kernel priority 0..139 (task_struct.prio) */
typedef __u16 rw_task_state_t;	/* sched_switch prev_state, tracepoint report encoding */
typedef __s32 rw_syscall_nr_t;	/* syscall number of the recording machine's ABI */
typedef __s64 rw_errno_ret_t;	/* return value, -errno on failure */
typedef __u64 rw_hex_t;		/* shown in hex (addresses, raw arguments) */
typedef __s32 rw_cpu_t;		/* CPU number */
typedef __u32 rw_dev_t;		/* block device, kernel dev_t: major << 20 | minor */
typedef char rw_rwbs_t[8];	/* block request type and flags, as blktrace writes them */
typedef __u8 rw_blk_status_t;	/* blk_status_t: 0 ok, 10 I/O error, ... */
typedef __u32 rw_softirq_t;	/* softirq vector: 0 HI .. 9 RCU */
typedef __s32 rw_signal_t;	/* signal number */
typedef __u16 rw_inet_family_t;	/* AF_INET (2) or AF_INET6 (10) */
typedef __u16 rw_port_t;	/* port, host byte order */
typedef __u8 rw_inet_addr_t[16];	/* IPv4 in the first 4 bytes, or IPv6; network order */
typedef __u8 rw_tcp_state_t;	/* TCP_ESTABLISHED (1) .. TCP_NEW_SYN_RECV (12) */
typedef __u64 rw_ksym_t;	/* kernel address of a function */
typedef __u64 rw_stack_t;	/* return addresses: kernel frames, then user frames */
typedef __u32 rw_enum_skb_drop_reason_t; /* enum skb_drop_reason of the recording kernel */
typedef __u32 rw_enum_sk_rst_reason_t;	 /* enum sk_rst_reason of the recording kernel */

struct rw_ev_sched_switch {
	rw_comm_t prev_comm;
	rw_comm_t next_comm;
	rw_tid_t next_tid;
	rw_prio_t prev_prio;
	rw_prio_t next_prio;
	rw_task_state_t prev_state;
};

#define RW_WAKEUP_FIELDS         \
	rw_comm_t target_comm;   \
	rw_tid_t target_tid;     \
	rw_pid_t target_pid;     \
	rw_cpu_t target_cpu;     \
	rw_prio_t target_prio;

struct rw_ev_sched_waking {
	RW_WAKEUP_FIELDS
};

struct rw_ev_sched_wakeup_new {
	RW_WAKEUP_FIELDS
};

/* The parent is the recording task (the record's tid and pid). */
struct rw_ev_sched_process_fork {
	rw_comm_t parent_comm;
	rw_comm_t child_comm;
	rw_tid_t child_tid;
	rw_pid_t child_pid;
};

#define RW_FILENAME_MAX 236

/* Spans several slots: filename is read up to its NUL. */
struct rw_ev_sched_process_exec {
	rw_tid_t old_tid;
	char filename[RW_FILENAME_MAX];
};

struct rw_ev_sched_process_exit {
	__s32 exit_code;
	rw_prio_t prio;
	__u8 group_dead;
};

struct rw_ev_sys_enter {
	rw_syscall_nr_t id;
	__u32 __pad;
	rw_hex_t args[4];
};

struct rw_ev_sys_exit {
	rw_syscall_nr_t id;
	__u32 __pad;
	rw_errno_ret_t ret;
};

/* block: a request as it is inserted, issued to the device, completed. */
#define RW_BLOCK_RQ_FIELDS \
	rw_dev_t dev;      \
	__u32 bytes;       \
	__u64 sector;      \
	rw_rwbs_t rwbs;    \
	rw_hex_t rq;       /* the request, to pair issue with complete */

struct rw_ev_block_rq_insert {
	RW_BLOCK_RQ_FIELDS
};

struct rw_ev_block_rq_issue {
	RW_BLOCK_RQ_FIELDS
};

struct rw_ev_block_rq_complete {
	RW_BLOCK_RQ_FIELDS
	rw_blk_status_t error;
};

/* irq */
struct rw_ev_irq_handler_entry {
	__s32 irq;
	char name[32];
};

struct rw_ev_irq_handler_exit {
	__s32 irq;
	__s32 handled;
};

struct rw_ev_softirq_entry {
	rw_softirq_t vec;
};

struct rw_ev_softirq_exit {
	rw_softirq_t vec;
};

/* faults (x86) */
#define RW_FAULT_FIELDS     \
	rw_hex_t address;   \
	rw_hex_t ip;        \
	rw_hex_t error_code;

struct rw_ev_page_fault_user {
	RW_FAULT_FIELDS
};

struct rw_ev_page_fault_kernel {
	RW_FAULT_FIELDS
};

/* signals: the sender is the recording task; the target is named. */
struct rw_ev_signal_generate {
	rw_comm_t target_comm;
	rw_tid_t target_tid;
	rw_signal_t sig;
	__s32 code;
	__s32 group;
	__s32 result; /* 0 delivered, 1 ignored, 2 already pending, 3 overflow, 4 no target */
};

/* The receiver is the recording task. */
struct rw_ev_signal_deliver {
	rw_signal_t sig;
	__s32 code;
	rw_hex_t sa_handler;
	rw_hex_t sa_flags;
};

/* process */
#define RW_TARGET_FIELDS        \
	rw_comm_t target_comm;  \
	rw_tid_t target_tid;    \
	rw_pid_t target_pid;

struct rw_ev_sched_process_free {
	RW_TARGET_FIELDS
	rw_prio_t target_prio;
};

struct rw_ev_task_newtask {
	RW_TARGET_FIELDS
	rw_hex_t clone_flags;
	__s16 oom_score_adj;
};

struct rw_ev_task_rename {
	rw_comm_t oldcomm;
	rw_comm_t newcomm;
	rw_tid_t target_tid;
	rw_pid_t target_pid;
};

struct rw_ev_sched_migrate_task {
	RW_TARGET_FIELDS
	rw_cpu_t orig_cpu;
	rw_cpu_t dest_cpu;
	rw_prio_t target_prio;
};

/* network: two slots each, for IPv6 addresses. */
#define RW_SOCK_FIELDS            \
	rw_inet_family_t family;  \
	rw_port_t sport;          \
	rw_port_t dport;          \
	rw_tcp_state_t state;     \
	__u8 __pad;               \
	rw_inet_addr_t saddr;     \
	rw_inet_addr_t daddr;

struct rw_ev_tcp_retransmit_skb {
	RW_SOCK_FIELDS
	__s32 err;
};

struct rw_ev_tcp_send_reset {
	RW_SOCK_FIELDS
	rw_enum_sk_rst_reason_t reason;
};

struct rw_ev_tcp_receive_reset {
	RW_SOCK_FIELDS
};

struct rw_ev_inet_sock_set_state {
	RW_SOCK_FIELDS
	rw_tcp_state_t oldstate;
	rw_tcp_state_t newstate;
	__u16 protocol;
};

struct rw_ev_kfree_skb {
	rw_hex_t location;
	rw_enum_skb_drop_reason_t reason;
	__u16 protocol; /* ethertype, host order */
};

/* memory: an OOM kill's victim (two slots), direct reclaim. */
struct rw_ev_mark_victim {
	RW_TARGET_FIELDS
	__u32 uid;
	__s16 oom_score_adj;
	__u16 __pad;
	__u64 total_vm;	/* pages */
	__u64 anon_rss;
	__u64 file_rss;
	__u64 shmem_rss;
};

struct rw_ev_mm_vmscan_direct_reclaim_begin {
	__s32 order;
	rw_hex_t gfp_flags;
};

struct rw_ev_mm_vmscan_direct_reclaim_end {
	__u64 nr_reclaimed;
};

/* locks and work */
struct rw_ev_contention_begin {
	rw_hex_t lock;
	rw_hex_t flags; /* LCB_F_SPIN 1, READ 2, WRITE 4, RT 8, PERCPU 16, MUTEX 32 */
};

struct rw_ev_contention_end {
	rw_hex_t lock;
	__s32 ret;
};

struct rw_ev_workqueue_execute_start {
	rw_hex_t work;
	rw_ksym_t function;
};

struct rw_ev_workqueue_execute_end {
	rw_hex_t work;
	rw_ksym_t function;
};

/* power */
struct rw_ev_cpu_idle {
	__s32 state; /* C-state entered, -1 on exit */
	rw_cpu_t cpu_id;
};

struct rw_ev_cpu_frequency {
	__u32 state; /* kHz */
	rw_cpu_t cpu_id;
};

/* rw_schema keeps every payload type in the object's BTF even where a
 * program only casts to it. */
/*
 * stacks: the current task's kernel stack and user stack, innermost frame
 * first, the kernel's then the user's in one array. Only the frames taken
 * are emitted: a record spans as many slots as they need.
 */
#define RW_KSTACK_MAX 64
#define RW_USTACK_MAX 94
#define RW_STACK_MAX (RW_KSTACK_MAX + RW_USTACK_MAX)

#define RW_STACK_FIELDS                         \
	__u16 kframes; /* kernel frames taken */ \
	__u16 uframes; /* user frames taken */   \
	__u32 __pad;                             \
	rw_stack_t frames[RW_STACK_MAX];

/* A sample of what a CPU was running: a perf cpu-clock event's interrupt. */
struct rw_ev_cpu_sample {
	RW_STACK_FIELDS
};

/* The stack a task blocked in, as it switched out (not runnable). */
struct rw_ev_offcpu_sample {
	RW_STACK_FIELDS
};

struct rw_schema {
	struct rw_ev_sched_switch sched_switch;
	struct rw_ev_sched_waking sched_waking;
	struct rw_ev_sched_wakeup_new sched_wakeup_new;
	struct rw_ev_sched_process_fork sched_process_fork;
	struct rw_ev_sched_process_exec sched_process_exec;
	struct rw_ev_sched_process_exit sched_process_exit;
	struct rw_ev_sys_enter sys_enter;
	struct rw_ev_sys_exit sys_exit;
	struct rw_ev_block_rq_insert block_rq_insert;
	struct rw_ev_block_rq_issue block_rq_issue;
	struct rw_ev_block_rq_complete block_rq_complete;
	struct rw_ev_irq_handler_entry irq_handler_entry;
	struct rw_ev_irq_handler_exit irq_handler_exit;
	struct rw_ev_softirq_entry softirq_entry;
	struct rw_ev_softirq_exit softirq_exit;
	struct rw_ev_page_fault_user page_fault_user;
	struct rw_ev_page_fault_kernel page_fault_kernel;
	struct rw_ev_signal_generate signal_generate;
	struct rw_ev_signal_deliver signal_deliver;
	struct rw_ev_sched_process_free sched_process_free;
	struct rw_ev_task_newtask task_newtask;
	struct rw_ev_task_rename task_rename;
	struct rw_ev_sched_migrate_task sched_migrate_task;
	struct rw_ev_tcp_retransmit_skb tcp_retransmit_skb;
	struct rw_ev_tcp_send_reset tcp_send_reset;
	struct rw_ev_tcp_receive_reset tcp_receive_reset;
	struct rw_ev_inet_sock_set_state inet_sock_set_state;
	struct rw_ev_kfree_skb kfree_skb;
	struct rw_ev_mark_victim mark_victim;
	struct rw_ev_mm_vmscan_direct_reclaim_begin mm_vmscan_direct_reclaim_begin;
	struct rw_ev_mm_vmscan_direct_reclaim_end mm_vmscan_direct_reclaim_end;
	struct rw_ev_contention_begin contention_begin;
	struct rw_ev_contention_end contention_end;
	struct rw_ev_workqueue_execute_start workqueue_execute_start;
	struct rw_ev_workqueue_execute_end workqueue_execute_end;
	struct rw_ev_cpu_idle cpu_idle;
	struct rw_ev_cpu_frequency cpu_frequency;
	struct rw_ev_cpu_sample cpu_sample;
	struct rw_ev_offcpu_sample offcpu_sample;
	enum rw_event_type type;
};

#endif /* REWIND_EVENTS_H */
