/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * events.h is rewind's event schema: the one place where an event's id, name
 * and fields are defined.
 *
 * The Go catalogue (bpf/catalog.go) reads this enum and, for every
 * RW_EV_<NAME>, the struct rw_ev_<name> from the compiled object's BTF. The
 * snapshot's schema table, the analyzer and the exporters all derive names and
 * fields from that catalogue, so adding a field here is all it takes.
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

/* rw_schema keeps every payload type in the object's BTF even where a
 * program only casts to it. */
struct rw_schema {
	struct rw_ev_sched_switch sched_switch;
	struct rw_ev_sched_waking sched_waking;
	struct rw_ev_sched_wakeup_new sched_wakeup_new;
	struct rw_ev_sched_process_fork sched_process_fork;
	struct rw_ev_sched_process_exec sched_process_exec;
	struct rw_ev_sched_process_exit sched_process_exit;
	struct rw_ev_sys_enter sys_enter;
	struct rw_ev_sys_exit sys_exit;
	enum rw_event_type type;
};

#endif /* REWIND_EVENTS_H */
