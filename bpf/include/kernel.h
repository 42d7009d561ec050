/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* kernel.h: reading kernel objects whose layout changed between versions,
 * shared by the recording programs and the watch programs. Needs attach.h. */
#ifndef REWIND_KERNEL_H
#define REWIND_KERNEL_H

struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

/* rw_task_state is a task's state word (__state since 5.14). */
static __always_inline unsigned int rw_task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return RW_R(t, __state);
	return RW_R((struct task_struct___pre514 *)t, state);
}

struct request___pre515 {
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

/* rw_rq_dev is a request's device as the block tracepoints print it
 * (major << 20 | minor), 0 when it has no disk. */
static __always_inline __u32 rw_rq_dev(struct request *rq)
{
	struct gendisk *disk;

	if (bpf_core_field_exists(((struct request_queue *)0)->disk))
		disk = BPF_CORE_READ(rq, q, disk);
	else
		disk = BPF_CORE_READ((struct request___pre515 *)rq, rq_disk);
	return disk ? ((__u32)BPF_CORE_READ(disk, major) << 20) | (__u32)BPF_CORE_READ(disk, first_minor) : 0;
}

#endif /* REWIND_KERNEL_H */
