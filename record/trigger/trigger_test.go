package trigger

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/bpf"
)

func TestParse(t *testing.T) {
	c, err := Parse("syscall>50ms syscall=nanosleep pid=42 comm=sleeper cpu=1")
	if err != nil {
		t.Fatal(err)
	}
	k := c.Kernel
	if c.Kind != Syscall || k.Kind != bpf.WatchSyscall || k.Threshold != uint64(50*time.Millisecond) || k.Syscall == nil ||
		*k.Syscall != unix.SYS_NANOSLEEP || k.PID != 42 || k.Comm != "sleeper" || k.CPU == nil || *k.CPU != 1 {
		t.Errorf("parsed %+v", k)
	}
	c, err = Parse("signal SIGSEGV,abrt,7 comm=crash")
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(1<<10 | 1<<5 | 1<<6); c.Kernel.Signals != want {
		t.Errorf("signals %b, want %b", c.Kernel.Signals, want)
	}
	if c, err = Parse("signal"); err != nil || c.Kernel.Signals&(1<<10) == 0 {
		t.Errorf("signal with no list: %v, %+v", err, c)
	}
	if c, err = Parse("block > 1s dev=8:16"); err != nil || c.Kernel.Dev != 8<<20|16 {
		t.Errorf("block: %v", err)
	}
	if c, err = Parse("exit signaled"); err != nil || !c.Kernel.Signaled {
		t.Errorf("exit signaled: %v", err)
	}
	if c, err = Parse("lost > 10"); err != nil || c.Lost != 10 || c.Kernel != nil {
		t.Errorf("lost: %v", err)
	}
	if c, err = Parse("counter memory:MemAvailable < 1GiB"); err != nil || c.Expr != "memory:MemAvailable < 1GiB" {
		t.Errorf("counter: %v %+v", err, c)
	}
	for in, want := range map[string]string{
		"":                                  "empty condition",
		"fast":                              `"fast" is not a condition`,
		"syscall":                           "want syscall > DURATION",
		"syscall > soon":                    `"soon" is not a duration`,
		"syscall > 1ms syscall=no":          `no system call "no"`,
		"runq > 1ms dev=8:0":                "runq takes pid=, comm=, cgroup=, cpu=",
		"signal SIGNOPE":                    `"SIGNOPE" is not a signal`,
		"oom pid=1":                         "oom takes no filters",
		"runq > 1ms comm=abcdefghijklmnopq": "longer than the kernel's 15 bytes",
		"syscall > 1ms pid":                 `"pid": want key=value`,
		"lost > many":                       "not a count",
		"counter memory:MemAvailable ~ 5":   "counter",
	} {
		_, err := Parse(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", in, err, want)
		}
	}
}

func TestPolicy(t *testing.T) {
	t0 := time.Unix(1000, 0)
	fires := func(p *Policy, n int, step time.Duration) (fired []int) {
		for i := 1; i <= n; i++ {
			if ok, _ := p.Match(t0.Add(time.Duration(i) * step)); ok {
				fired = append(fired, i)
			}
		}
		return fired
	}
	var every Policy
	if err := every.ParseRate("every:3"); err != nil {
		t.Fatal(err)
	}
	if got := fires(&every, 7, time.Second); len(got) != 2 || got[0] != 3 || got[1] != 6 || every.Suppressed[SuppressedPolicy] != 5 {
		t.Errorf("every:3 fired %v, suppressed %v", got, every.Suppressed)
	}
	var once Policy
	once.ParseRate("once-after:2")
	if got := fires(&once, 5, time.Second); len(got) != 1 || got[0] != 2 {
		t.Errorf("once-after:2 fired %v", got)
	}
	cool := Policy{Cooldown: 10 * time.Second}
	if got := fires(&cool, 25, time.Second); len(got) != 3 || got[1] != 11 || cool.Suppressed[SuppressedCooldown] != 22 {
		t.Errorf("cooldown 10s fired %v, suppressed %v", got, cool.Suppressed)
	}
	capped := Policy{MaxPerHour: 2}
	if got := fires(&capped, 5, 20*time.Minute); len(got) != 4 || got[2] != 4 || capped.Suppressed[SuppressedMaxPerHour] != 1 {
		t.Errorf("max 2 per hour, a match every 20 minutes, fired %v, suppressed %v", got, capped.Suppressed)
	}
	for _, bad := range []string{"every", "every:0", "sometimes:2", "once-after:x"} {
		var p Policy
		if err := p.ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}
