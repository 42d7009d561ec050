package kinds

import (
	"math/bits"
	"strconv"
)

// Task states in sched_switch's report encoding, which the kernel's
// __trace_sched_switch_state (include/trace/events/sched.h) gives the
// tracepoint and bpf/progs/sched.h mirrors: 0 for a task that switched out
// runnable, 1 << (i-1) for the i-th state of task_index_to_char's
// "RSDTtXZPI" (the TASK_REPORT bits, then TASK_REPORT_IDLE), and
// TASK_REPORT_MAX for a preempted task.
const (
	taskRunning   = 0     // R: switched out runnable (it yielded)
	taskPreempted = 0x100 // R+: preempted (TASK_REPORT_MAX)
)

// taskStateLetters name the report bits, lowest first, as sched_switch's
// TP_printk does: S, D, T, t, X, Z, P, I.
const taskStateLetters = "SDTtXZPI"

// taskStateName names a report-encoded state as ftrace prints
// sched_switch's prev_state: the letters of its low eight bits joined by
// "|", or "R" when none is set, then "+" when taskPreempted is set. The
// kernel sets one bit at most; a value with a bit above taskPreempted is
// no report state and reads as its number in hex.
func taskStateName(s uint64) string {
	switch {
	case s>>9 != 0:
		return "0x" + strconv.FormatUint(s, 16)
	case s == taskRunning:
		return "R"
	case s == taskPreempted:
		return "R+"
	case s&(s-1) == 0: // one bit, as the kernel writes them
		i := bits.TrailingZeros64(s)
		return taskStateLetters[i : i+1]
	}
	var b []byte
	for i := 0; i < len(taskStateLetters); i++ {
		if s&(1<<i) != 0 {
			if len(b) > 0 {
				b = append(b, '|')
			}
			b = append(b, taskStateLetters[i])
		}
	}
	if len(b) == 0 {
		b = append(b, 'R')
	}
	if s&taskPreempted != 0 {
		b = append(b, '+')
	}
	return string(b)
}

// TaskRunnable reports whether a report-encoded state is R or R+: the task
// switched out still runnable, preempted or yielding, not to wait.
func TaskRunnable(s uint64) bool { return s&^taskPreempted == 0 }
