package kinds

// Event names: enum rw_event_type's RW_EV_<NAME> in bpf/include/events.h,
// lowercased, which are the names of the kernel tracepoints they record.
const (
	SchedSwitch                = "sched_switch"
	SchedWaking                = "sched_waking"
	SchedWakeupNew             = "sched_wakeup_new"
	SchedProcessFork           = "sched_process_fork"
	SchedProcessExec           = "sched_process_exec"
	SchedProcessExit           = "sched_process_exit"
	SysEnter                   = "sys_enter"
	SysExit                    = "sys_exit"
	BlockRqInsert              = "block_rq_insert"
	BlockRqIssue               = "block_rq_issue"
	BlockRqComplete            = "block_rq_complete"
	IRQHandlerEntry            = "irq_handler_entry"
	IRQHandlerExit             = "irq_handler_exit"
	SoftirqEntry               = "softirq_entry"
	SoftirqExit                = "softirq_exit"
	PageFaultUser              = "page_fault_user"
	PageFaultKernel            = "page_fault_kernel"
	SignalGenerate             = "signal_generate"
	SignalDeliver              = "signal_deliver"
	SchedProcessFree           = "sched_process_free"
	TaskNewtask                = "task_newtask"
	TaskRename                 = "task_rename"
	SchedMigrateTask           = "sched_migrate_task"
	TCPRetransmitSkb           = "tcp_retransmit_skb"
	TCPSendReset               = "tcp_send_reset"
	TCPReceiveReset            = "tcp_receive_reset"
	InetSockSetState           = "inet_sock_set_state"
	KfreeSkb                   = "kfree_skb"
	MarkVictim                 = "mark_victim"
	MMVmscanDirectReclaimBegin = "mm_vmscan_direct_reclaim_begin"
	MMVmscanDirectReclaimEnd   = "mm_vmscan_direct_reclaim_end"
	ContentionBegin            = "contention_begin"
	ContentionEnd              = "contention_end"
	WorkqueueExecuteStart      = "workqueue_execute_start"
	WorkqueueExecuteEnd        = "workqueue_execute_end"
	CPUIdle                    = "cpu_idle"
	CPUFrequency               = "cpu_frequency"
	CPUSample                  = "cpu_sample"
	OffCPUSample               = "offcpu_sample"
)

// Field names rewind's Go code reads, as the struct rw_ev_<event> payloads
// of bpf/include/events.h spell them. Every record also carries ts_ns,
// cpu, seq, tid, pid and comm, which are no event's fields.
const (
	FieldPrevComm   = "prev_comm"   // sched_switch: the task switching out
	FieldNextComm   = "next_comm"   // sched_switch: the task switching in
	FieldNextTID    = "next_tid"    // sched_switch
	FieldPrevState  = "prev_state"  // sched_switch, a TaskState
	FieldTargetComm = "target_comm" // the task an event is about, not the recording one
	FieldTargetTID  = "target_tid"
	FieldTargetPID  = "target_pid"
	FieldChildComm  = "child_comm" // sched_process_fork
	FieldChildTID   = "child_tid"
	FieldFilename   = "filename" // sched_process_exec
	FieldID         = "id"       // sys_enter, sys_exit: the syscall number
	FieldRet        = "ret"      // sys_exit
	FieldDev        = "dev"      // block requests
	FieldBytes      = "bytes"
	FieldRWBS       = "rwbs"
	FieldRQ         = "rq"    // the request's address, which pairs its issue and completion
	FieldError      = "error" // block_rq_complete, a blk_status_t
	FieldIRQ        = "irq"
	FieldName       = "name" // irq_handler_entry: the handler's name
	FieldVec        = "vec"  // softirq vector
	FieldLock       = "lock"
	FieldWork       = "work"
	FieldKframes    = "kframes" // stack samples: kernel frames taken
	FieldUframes    = "uframes" // user frames taken
	FieldFrames     = "frames"  // the kernel frames, then the user frames
)

// Groups are what --events takes to turn related events on together.
const (
	GroupSched     = "sched"
	GroupProcess   = "process"
	GroupSyscalls  = "syscalls"
	GroupBlock     = "block"
	GroupIRQ       = "irq"
	GroupFaults    = "faults"
	GroupSignals   = "signals"
	GroupNet       = "net"
	GroupMemory    = "memory"
	GroupLock      = "lock"
	GroupWorkqueue = "workqueue"
	GroupPower     = "power"
	GroupStacks    = "stacks"

	// GroupDefault names the DefaultGroups, GroupAll every event; no
	// event belongs to either by itself.
	GroupDefault = "default"
	GroupAll     = "all"
)

// DefaultGroups are the groups `--events default` turns on: everything but
// the high-rate irq, faults, lock, workqueue, power and stacks groups.
var DefaultGroups = []string{GroupSched, GroupSyscalls, GroupProcess, GroupBlock, GroupSignals, GroupNet, GroupMemory}

// Event is one event kind.
type Event struct {
	Name  string
	Group string
	// Fields are the fields rewind's Go code reads by name: for an
	// analysis, for view's thread names, to pair the event (Pairs). The BTF
	// holds every field with its type and kind; these must be among them.
	Fields []string
}

// Events are every event kind, in enum rw_event_type's order. The slice
// must not be modified.
var Events = []Event{
	{SchedSwitch, GroupSched, []string{FieldPrevComm, FieldNextComm, FieldNextTID, FieldPrevState}},
	{SchedWaking, GroupSched, []string{FieldTargetComm, FieldTargetTID, FieldTargetPID}},
	{SchedWakeupNew, GroupSched, []string{FieldTargetComm, FieldTargetTID, FieldTargetPID}},
	{SchedProcessFork, GroupProcess, []string{FieldChildComm, FieldChildTID}},
	{SchedProcessExec, GroupProcess, []string{FieldFilename}},
	{SchedProcessExit, GroupProcess, nil},
	{SysEnter, GroupSyscalls, []string{FieldID}},
	{SysExit, GroupSyscalls, []string{FieldID, FieldRet}},
	{BlockRqInsert, GroupBlock, nil},
	{BlockRqIssue, GroupBlock, []string{FieldDev, FieldBytes, FieldRWBS, FieldRQ}},
	{BlockRqComplete, GroupBlock, []string{FieldDev, FieldBytes, FieldRWBS, FieldRQ, FieldError}},
	{IRQHandlerEntry, GroupIRQ, []string{FieldIRQ, FieldName}},
	{IRQHandlerExit, GroupIRQ, []string{FieldIRQ}},
	{SoftirqEntry, GroupIRQ, []string{FieldVec}},
	{SoftirqExit, GroupIRQ, []string{FieldVec}},
	{PageFaultUser, GroupFaults, nil},
	{PageFaultKernel, GroupFaults, nil},
	{SignalGenerate, GroupSignals, []string{FieldTargetComm, FieldTargetTID}},
	{SignalDeliver, GroupSignals, nil},
	{SchedProcessFree, GroupProcess, []string{FieldTargetComm, FieldTargetTID}},
	{TaskNewtask, GroupProcess, []string{FieldTargetComm, FieldTargetTID}},
	{TaskRename, GroupProcess, nil},
	{SchedMigrateTask, GroupSched, []string{FieldTargetComm, FieldTargetTID}},
	{TCPRetransmitSkb, GroupNet, nil},
	{TCPSendReset, GroupNet, nil},
	{TCPReceiveReset, GroupNet, nil},
	{InetSockSetState, GroupNet, nil},
	{KfreeSkb, GroupNet, nil},
	{MarkVictim, GroupMemory, []string{FieldTargetComm, FieldTargetTID}},
	{MMVmscanDirectReclaimBegin, GroupMemory, nil},
	{MMVmscanDirectReclaimEnd, GroupMemory, nil},
	{ContentionBegin, GroupLock, []string{FieldLock}},
	{ContentionEnd, GroupLock, []string{FieldLock}},
	{WorkqueueExecuteStart, GroupWorkqueue, []string{FieldWork}},
	{WorkqueueExecuteEnd, GroupWorkqueue, []string{FieldWork}},
	{CPUIdle, GroupPower, nil},
	{CPUFrequency, GroupPower, nil},
	{CPUSample, GroupStacks, []string{FieldKframes, FieldUframes, FieldFrames}},
	{OffCPUSample, GroupStacks, []string{FieldKframes, FieldUframes, FieldFrames}},
}

// LookupEvent returns the named event kind, or nil.
func LookupEvent(name string) *Event {
	for i := range Events {
		if Events[i].Name == name {
			return &Events[i]
		}
	}
	return nil
}
