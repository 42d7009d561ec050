package kinds

import (
	"slices"
	"testing"

	"github.com/rewindtrace/rewind/snapshot/schema"
)

// Task states of <linux/sched.h> (6.1 and later), the exit states too.
const (
	taskInterruptible   = 0x0001
	taskUninterruptible = 0x0002
	taskStopped         = 0x0004 // __TASK_STOPPED
	taskTraced          = 0x0008 // __TASK_TRACED
	exitDead            = 0x0010
	exitZombie          = 0x0020
	taskParked          = 0x0040
	taskDead            = 0x0080
	taskWakekill        = 0x0100
	taskNoload          = 0x0400
	taskRTLockWait      = 0x1000
	taskFreezable       = 0x2000
	taskFrozen          = 0x8000

	taskReport     = 0x007f
	taskReportIdle = 0x0080
	taskReportMax  = 0x0100
)

// reportState is the kernel's __trace_sched_switch_state, with
// __task_state_index inlined: what sched_switch's prev_state holds.
func reportState(preempt bool, state, exitState uint64) uint64 {
	if preempt {
		return taskReportMax
	}
	s := (state | exitState) & taskReport
	if state&(taskUninterruptible|taskNoload) == taskUninterruptible|taskNoload { // TASK_IDLE
		s = taskReportIdle
	}
	if state&(taskRTLockWait|taskFrozen) != 0 {
		s = taskUninterruptible
	}
	fls := 0 // fls(s): the highest bit set, counting from 1
	for v := s; v != 0; v >>= 1 {
		fls++
	}
	if fls == 0 {
		return 0
	}
	return 1 << (fls - 1)
}

// TestTaskStateReportEncoding pins the one decoding of sched_switch's
// prev_state that view and the analyses share to the kernel's: the letter
// /proc and ps show for each task state (task_index_to_char, "RSDTtXZPI")
// once the tracepoint has encoded it, and ftrace's TP_printk for values.
func TestTaskStateReportEncoding(t *testing.T) {
	for _, c := range []struct {
		what            string
		preempt         bool
		state, exit     uint64
		want            string
		runnable        bool
		wantReportValue uint64
	}{
		{"TASK_RUNNING (yield)", false, 0, 0, "R", true, 0},
		{"preempted", true, taskInterruptible, 0, "R+", true, 0x100},
		{"TASK_INTERRUPTIBLE", false, taskInterruptible, 0, "S", false, 0x1},
		{"TASK_INTERRUPTIBLE|TASK_FREEZABLE", false, taskInterruptible | taskFreezable, 0, "S", false, 0x1},
		{"TASK_UNINTERRUPTIBLE", false, taskUninterruptible, 0, "D", false, 0x2},
		{"TASK_KILLABLE", false, taskWakekill | taskUninterruptible, 0, "D", false, 0x2},
		{"TASK_RTLOCK_WAIT", false, taskRTLockWait, 0, "D", false, 0x2},
		{"TASK_FROZEN", false, taskFrozen, 0, "D", false, 0x2},
		{"TASK_STOPPED", false, taskWakekill | taskStopped, 0, "T", false, 0x4},
		{"TASK_TRACED", false, taskTraced, 0, "t", false, 0x8},
		{"EXIT_DEAD", false, taskDead, exitDead, "X", false, 0x10},
		{"EXIT_ZOMBIE", false, taskDead, exitZombie, "Z", false, 0x20},
		{"TASK_PARKED", false, taskParked, 0, "P", false, 0x40},
		{"TASK_IDLE", false, taskUninterruptible | taskNoload, 0, "I", false, 0x80},
	} {
		v := reportState(c.preempt, c.state, c.exit)
		if v != c.wantReportValue {
			t.Errorf("%s: report value %#x, want %#x", c.what, v, c.wantReportValue)
		}
		if got := taskStateName(v); got != c.want {
			t.Errorf("%s: taskStateName(%#x) = %q, want %q", c.what, v, got, c.want)
		}
		if got := TaskState.ValueName(nil, v); got != c.want {
			t.Errorf("%s: TaskState.ValueName(%#x) = %q, want %q", c.what, v, got, c.want)
		}
		if got := TaskState.Label(nil, int64(v)); got != c.want {
			t.Errorf("%s: TaskState.Label(%#x) = %q, want %q", c.what, v, got, c.want)
		}
		if TaskRunnable(v) != c.runnable {
			t.Errorf("%s: TaskRunnable(%#x) = %v", c.what, v, !c.runnable)
		}
	}
	// Values the kernel never writes read as ftrace's TP_printk would
	// print them, but for bits it has no meaning for.
	for v, want := range map[uint64]string{3: "S|D", 0x101: "S+", 0x180: "I+", 0x1ff: "S|D|T|t|X|Z|P|I+", 0x200: "0x200", 0x301: "0x301"} {
		if got := taskStateName(v); got != want {
			t.Errorf("taskStateName(%#x) = %q, want %q", v, got, want)
		}
		if TaskRunnable(v) {
			t.Errorf("TaskRunnable(%#x) = true", v)
		}
	}
}

func TestTaskStateNameAllocatesNothingForKernelValues(t *testing.T) {
	for _, v := range []uint64{0, 1, 2, 0x80, 0x100} {
		if n := testing.AllocsPerRun(100, func() { _ = taskStateName(v) }); n != 0 {
			t.Errorf("taskStateName(%#x): %v allocations", v, n)
		}
	}
}

type enums map[string]map[int64]string

func (e enums) EnumName(enum string, v int64) string { return e[enum][v] }

func TestValueNames(t *testing.T) {
	env := &Env{Machine: "x86_64", Enums: enums{"skb_drop_reason": {2: "SKB_DROP_REASON_NOT_SPECIFIED"}}}
	neg := func(v int64) uint64 { return uint64(v) }
	for _, c := range []struct {
		kind string
		v    uint64
		want string
	}{
		{schema.KindSyscall, 257, "openat"},
		{schema.KindSyscall, neg(-1), ""},
		{schema.KindErrnoRet, neg(-2), "ENOENT"},
		{schema.KindErrnoRet, 3, ""},
		{schema.KindDev, 8<<20 | 16, "8:16"},
		{schema.KindBlkStatus, 10, "IOERR"},
		{schema.KindBlkStatus, 99, ""},
		{schema.KindSoftirq, 1, "TIMER"},
		{schema.KindSoftirq, 9, "RCU"},
		{schema.KindSignal, 9, "SIGKILL"},
		{schema.KindFamily, afInet6, "AF_INET6"},
		{schema.KindTCPState, 1, "TCP_ESTABLISHED"},
		{schema.KindTaskState, 0x100, "R+"},
		{"enum_skb_drop_reason", 2, "SKB_DROP_REASON_NOT_SPECIFIED"},
		{"enum_sk_rst_reason", 2, ""},
		{schema.KindHex, 5, ""},
		{"", 5, ""},
	} {
		if got := KindOf(schema.Field{Kind: c.kind}).ValueName(env, c.v); got != c.want {
			t.Errorf("%q %#x = %q, want %q", c.kind, c.v, got, c.want)
		}
	}
	if got := Syscall.ValueName(nil, 257); got != "" {
		t.Errorf("syscall without a machine = %q", got)
	}
	if got := Syscall.NameKey("id"); got != "syscall" {
		t.Errorf("syscall key %q", got)
	}
	if got := Softirq.NameKey("vec"); got != "vec_str" {
		t.Errorf("softirq key %q", got)
	}
	for _, c := range []struct {
		k    *Kind
		v    int64
		want string
	}{
		{Softirq, 3, "NET_RX"}, {Softirq, 12, "12"}, {Syscall, 0, "read"}, {Syscall, 5000, "5000"},
		{Dev, 254 << 20, "254:0"}, {Hex, 255, "0xff"}, {None, -1, "-1"},
	} {
		if got := c.k.Label(env, c.v); got != c.want {
			t.Errorf("%s label of %d = %q, want %q", c.k.Name, c.v, got, c.want)
		}
	}
	if got := string(Ksym.AppendValue(nil, 0xffffffff81000000, false)); got != "0xffffffff81000000" {
		t.Errorf("ksym prints %s", got)
	}
	if got := string(None.AppendValue(nil, neg(-5), true)); got != "-5" {
		t.Errorf("signed prints %s", got)
	}
	v4 := []byte{127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if got := FormatInetAddr(v4, afInet); got != "127.0.0.1" {
		t.Errorf("inet %s", got)
	}
	v6 := make([]byte, 16)
	v6[15] = 1
	if got := FormatInetAddr(v6, afInet6); got != "::1" {
		t.Errorf("inet6 %s", got)
	}
	if got := FormatInetAddr(v6, 1); got != "" {
		t.Errorf("AF_UNIX address %q", got)
	}
}

// TestTable checks the table against itself; bpf's TestKindsTable checks
// it against the compiled object.
func TestTable(t *testing.T) {
	groups := []string{GroupSched, GroupProcess, GroupSyscalls, GroupBlock, GroupIRQ, GroupFaults, GroupSignals,
		GroupNet, GroupMemory, GroupLock, GroupWorkqueue, GroupPower, GroupStacks}
	seen := map[string]bool{}
	used := map[string]bool{}
	for _, e := range Events {
		if e.Name == "" || seen[e.Name] {
			t.Errorf("event %q: missing or repeated name", e.Name)
		}
		seen[e.Name] = true
		if !slices.Contains(groups, e.Group) {
			t.Errorf("event %s: group %q is none of %v", e.Name, e.Group, groups)
		}
		used[e.Group] = true
		if LookupEvent(e.Name) == nil || LookupEvent(e.Name).Group != e.Group {
			t.Errorf("LookupEvent(%s)", e.Name)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(e.Fields)))) != len(e.Fields) {
			t.Errorf("event %s: repeated fields %v", e.Name, e.Fields)
		}
	}
	for _, g := range groups {
		if !used[g] {
			t.Errorf("group %s has no event", g)
		}
		if seen[g] {
			t.Errorf("group %s is also an event's name", g)
		}
	}
	for _, g := range DefaultGroups {
		if !slices.Contains(groups, g) {
			t.Errorf("default group %q is no group", g)
		}
	}
	if LookupEvent("nope") != nil {
		t.Error("LookupEvent found an unknown event")
	}
	paired := map[string]bool{}
	for _, p := range Pairs {
		b, e := LookupEvent(p.Begin), LookupEvent(p.End)
		if b == nil || e == nil || p.Begin == p.End {
			t.Errorf("pair %s/%s: not two events of the table", p.Begin, p.End)
			continue
		}
		if paired[p.Begin] || paired[p.End] {
			t.Errorf("pair %s/%s: an event in two pairs", p.Begin, p.End)
		}
		paired[p.Begin], paired[p.End] = true, true
		if b.Group != e.Group {
			t.Errorf("pair %s/%s: groups %s and %s, so one can be on without the other", p.Begin, p.End, b.Group, e.Group)
		}
		if p.Scope < PerTask || p.Scope > Anywhere {
			t.Errorf("pair %s/%s: scope %d", p.Begin, p.End, p.Scope)
		}
		for _, f := range p.Match {
			if !slices.Contains(b.Fields, f) || !slices.Contains(e.Fields, f) {
				t.Errorf("pair %s/%s: match field %s is not in both events' Fields", p.Begin, p.End, f)
			}
		}
		if PairOf(p.Begin) != PairOf(p.End) || PairOf(p.End).Begin != p.Begin {
			t.Errorf("PairOf(%s)", p.End)
		}
	}
	if PairOf(SchedSwitch) != nil {
		t.Error("sched_switch pairs")
	}
	names := map[string]bool{}
	for _, k := range Kinds {
		if k.Name == "" || names[k.Name] {
			t.Errorf("kind %q: missing or repeated name", k.Name)
		}
		names[k.Name] = true
		if k != Enum && LookupKind(k.Name) != k {
			t.Errorf("LookupKind(%s)", k.Name)
		}
	}
	if LookupKind(schema.KindEnumPrefix) != nil || LookupKind("nope") != nil || KindOf(schema.Field{Kind: "nope"}) != None {
		t.Error("unknown kinds found")
	}
	if k := LookupKind("enum_skb_drop_reason"); k == nil || k.Name != "enum_skb_drop_reason" || !k.Names() {
		t.Errorf("enum kind = %+v", k)
	}
}
