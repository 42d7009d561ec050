// Package trigger parses trigger conditions and applies their rate
// policies. Conditions about events are evaluated in the kernel (package
// bpf, Watch); those about counters and lost events by whoever samples
// them (the daemon). A Policy decides which matches fire.
package trigger

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/bpf"
	"github.com/rewindtrace/rewind/internal/counterexpr"
	"github.com/rewindtrace/rewind/internal/syscalls"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/record"
)

// Condition kinds.
const (
	Syscall = "syscall" // a system call slower than a threshold
	Runq    = "runq"    // a task waited longer than a threshold to run
	Block   = "block"   // a block request slower than a threshold
	Signal  = "signal"  // a signal delivered
	Exit    = "exit"    // a process exited non-zero or by a signal
	OOM     = "oom"     // the OOM killer chose a victim
	Counter = "counter" // a counter crossed a threshold
	Lost    = "lost"    // events were lost
)

// Kinds lists the condition kinds, in the order help shows them.
var Kinds = []string{Syscall, Runq, Block, Signal, Exit, OOM, Counter, Lost}

// DefaultSignals are a signal condition's signals when it names none: the
// ones that mean a crash.
var DefaultSignals = []string{"SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT"}

// Condition is a parsed condition. Kernel holds what the kernel evaluates
// for the event kinds; Expr the counter expression; Lost the lost events
// threshold.
type Condition struct {
	Text   string // as given
	Kind   string
	Kernel *bpf.Condition
	Expr   string // Counter: the counter expression
	Lost   uint64 // Lost: fire when more than this many were lost since the last check
}

// Unit is the unit of a firing's value for the condition.
func (c *Condition) Unit() string {
	switch c.Kind {
	case Syscall, Runq, Block:
		return "ns"
	case Signal:
		return "signal"
	case Exit:
		return "wait status"
	case OOM:
		return "pid"
	case Lost:
		return "events"
	}
	return ""
}

// Parse reads a condition:
//
//	syscall > 50ms [syscall=NAME] [pid=P] [comm=C] [cgroup=PATH] [cpu=N]
//	runq > 5ms [pid=P] [comm=C] [cgroup=PATH] [cpu=N]
//	block > 100ms [dev=MAJOR:MINOR]
//	signal [SIGSEGV,SIGABRT,...] [pid=P] [comm=C] [cgroup=PATH]
//	exit [signaled] [pid=P] [comm=C] [cgroup=PATH]
//	oom
//	counter SOURCE:FIELD[{LABEL=VALUE,...}] OP VALUE (internal/counterexpr)
//	lost [> N]
//
// Errors name the part that is wrong.
func Parse(s string) (*Condition, error) {
	text := strings.TrimSpace(s)
	// Let "syscall>50ms" read as "syscall > 50ms".
	norm := strings.NewReplacer(">", " > ").Replace(text)
	f := strings.Fields(norm)
	if len(f) == 0 {
		return nil, fmt.Errorf("empty condition: want one of %s", strings.Join(Kinds, ", "))
	}
	c := &Condition{Text: text, Kind: f[0]}
	rest := f[1:]
	switch c.Kind {
	case Counter:
		if len(rest) == 0 {
			return nil, fmt.Errorf("condition %q: counter needs an expression, e.g. counter pressure:avg10{resource=cpu,kind=some} > 40", text)
		}
		c.Expr = strings.TrimSpace(strings.TrimPrefix(text, Counter))
		if _, err := counterexpr.Parse(c.Expr); err != nil {
			return nil, fmt.Errorf("condition %q: %w", text, err)
		}
		return c, nil
	case Lost:
		if len(rest) == 0 {
			return c, nil
		}
		if len(rest) != 2 || rest[0] != ">" {
			return nil, fmt.Errorf("condition %q: want lost or lost > N", text)
		}
		n, err := strconv.ParseUint(rest[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("condition %q: %q is not a count of events", text, rest[1])
		}
		c.Lost = n
		return c, nil
	}
	k := &bpf.Condition{}
	c.Kernel = k
	switch c.Kind {
	case Syscall, Runq, Block:
		k.Kind = map[string]int{Syscall: bpf.WatchSyscall, Runq: bpf.WatchRunq, Block: bpf.WatchBlock}[c.Kind]
		if len(rest) < 2 || rest[0] != ">" {
			return nil, fmt.Errorf("condition %q: want %s > DURATION (e.g. %s > 50ms)", text, c.Kind, c.Kind)
		}
		d, err := time.ParseDuration(rest[1])
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("condition %q: %q is not a duration above zero (50ms, 1.5s)", text, rest[1])
		}
		k.Threshold = uint64(d)
		rest = rest[2:]
	case Signal:
		k.Kind = bpf.WatchSignal
		sigs := DefaultSignals
		if len(rest) > 0 && !strings.Contains(rest[0], "=") {
			sigs = strings.Split(rest[0], ",")
			rest = rest[1:]
		}
		for _, name := range sigs {
			n := signalNumber(name)
			if n < 1 || n > 64 {
				return nil, fmt.Errorf("condition %q: %q is not a signal (SIGSEGV, SEGV or 11)", text, name)
			}
			k.Signals |= 1 << (n - 1)
		}
	case Exit:
		k.Kind = bpf.WatchExit
		if len(rest) > 0 && rest[0] == "signaled" {
			k.Signaled = true
			rest = rest[1:]
		}
	case OOM:
		k.Kind = bpf.WatchOOM
	default:
		return nil, fmt.Errorf("condition %q: %q is not a condition: want one of %s", text, c.Kind, strings.Join(Kinds, ", "))
	}
	for _, kv := range rest {
		key, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("condition %q: %q: want key=value", text, kv)
		}
		if err := setFilter(c.Kind, k, key, v); err != nil {
			return nil, fmt.Errorf("condition %q: %s: %w", text, kv, err)
		}
	}
	return c, nil
}

// filters says which filters each event kind takes.
var filters = map[string][]string{
	Syscall: {"syscall", "pid", "comm", "cgroup", "cpu"},
	Runq:    {"pid", "comm", "cgroup", "cpu"},
	Block:   {"dev"},
	Signal:  {"pid", "comm", "cgroup"},
	Exit:    {"pid", "comm", "cgroup"},
	OOM:     {},
}

func setFilter(kind string, k *bpf.Condition, key, v string) error {
	allowed := false
	for _, f := range filters[kind] {
		allowed = allowed || f == key
	}
	if !allowed {
		if len(filters[kind]) == 0 {
			return fmt.Errorf("%s takes no filters", kind)
		}
		return fmt.Errorf("%s takes %s", kind, strings.Join(filters[kind], "=, ")+"=")
	}
	switch key {
	case "syscall":
		nr, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			nr = syscalls.Number(runtime.GOARCH, v)
			if nr < 0 {
				return fmt.Errorf("no system call %q on %s", v, runtime.GOARCH)
			}
		}
		n := int32(nr)
		k.Syscall = &n
	case "pid":
		p, err := strconv.ParseUint(v, 10, 32)
		if err != nil || p == 0 {
			return fmt.Errorf("%q is not a pid", v)
		}
		k.PID = uint32(p)
	case "comm":
		if len(v) > 15 {
			return fmt.Errorf("%q is longer than the kernel's 15 bytes of task name", v)
		}
		k.Comm = v
	case "cgroup":
		id, err := record.CgroupID(v)
		if err != nil {
			return err
		}
		k.CgroupID = id
	case "cpu":
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not a CPU number", v)
		}
		c := int32(n)
		k.CPU = &c
	case "dev":
		maj, min, ok := strings.Cut(v, ":")
		a, err1 := strconv.ParseUint(maj, 10, 12)
		b, err2 := strconv.ParseUint(min, 10, 20)
		if !ok || err1 != nil || err2 != nil {
			return fmt.Errorf("%q: want MAJOR:MINOR (8:0)", v)
		}
		k.Dev = uint32(a<<20 | b)
	}
	return nil
}

// signalNumber reads SIGSEGV, SEGV or 11.
func signalNumber(s string) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	s = strings.ToUpper(s)
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	return int(unix.SignalNum(s))
}

// What names a firing's subject for the metadata: the system call, the
// signal, the device and operation.
func What(c *Condition, f bpf.Firing) string {
	switch c.Kind {
	case Syscall:
		if n := syscalls.Name(runtime.GOARCH, int64(f.Arg)); n != "" {
			return n
		}
		return "syscall " + strconv.FormatUint(f.Arg, 10)
	case Signal:
		return sysx.SignalName(int(f.Value))
	case Exit:
		if sig := f.Value & 0x7f; sig != 0 {
			return "killed by " + sysx.SignalName(int(sig))
		}
		return fmt.Sprintf("exit status %d", (f.Value>>8)&0xff)
	case Block:
		dev := uint32(f.Arg >> 8)
		return fmt.Sprintf("%d:%d %s", dev>>20, dev&(1<<20-1), BlockOp(uint32(f.Arg&0xff)))
	case OOM:
		return "oom victim"
	}
	return ""
}

// BlockOp names a block operation (bpf.BlockOp*).
func BlockOp(op uint32) string {
	switch op {
	case bpf.BlockOpRead:
		return "read"
	case bpf.BlockOpWrite:
		return "write"
	case bpf.BlockOpFlush:
		return "flush"
	case bpf.BlockOpDiscard:
		return "discard"
	}
	return "other"
}
