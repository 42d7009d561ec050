package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// The counters section: what sampling the counters costs the recorder, on
// an idle machine, as the CPU time of the whole `rewind record` process
// (every thread: the sampler's and the Go runtime's) over a fixed span,
// less the same recorder sampling nothing. Floors: a process that does
// nothing but wake 100 times a second, in C and in Go, which is what any
// user-space sampler pays before it reads a file.

var (
	counterSpan   = flag.Duration("counter-span", 5*time.Second, "how long each counter-cost variant runs")
	tickFloorOnly = flag.Bool("tick-floor", false, "only wake 100 times a second (the counters section's Go floor)")
)

type costVariant struct {
	name, what string
	cmd        func() *exec.Cmd
	cpu        []time.Duration // per round, over counterSpan
}

type counterResult struct {
	variants []*costVariant
	span     time.Duration
}

func counterCost(dir string) (*counterResult, error) {
	self, _ := os.Executable()
	rec := func(counters string) func() *exec.Cmd {
		return func() *exec.Cmd {
			return exec.Command(*rewindBin, "record", "--events", kinds.SchedSwitch, "--buffer-size", "1MiB",
				"--counters", counters, "--no-final-snapshot", "--output", dir)
		}
	}
	vs := []*costVariant{
		{name: "rewind, no counters", what: "the recorder alone (baseline)", cmd: rec("none")},
		{name: "rewind, default counters at 100 Hz", what: "cpu, memory, pressure, load, disk, net", cmd: rec("default@100")},
		{name: "rewind, cpu at 100 Hz", what: "/proc/stat alone", cmd: rec("cpu@100")},
		{name: "rewind, all counters at 100 Hz", what: "every /proc source and perf", cmd: rec("all@100")},
		{name: "rewind, default counters at 1 kHz", what: "cpu, memory, pressure, load, disk, net", cmd: rec("default@1000")},
		{name: "floor: Go, wake at 100 Hz", what: "a locked thread in clock_nanosleep, reading nothing", cmd: func() *exec.Cmd { return exec.Command(self, "-tick-floor") }},
	}
	if c, err := cFloor(dir); err == nil {
		vs = append(vs, &costVariant{name: "floor: C, wake at 100 Hz", what: "clock_nanosleep in a loop, reading nothing", cmd: func() *exec.Cmd { return exec.Command(c) }})
	} else {
		fmt.Fprintf(os.Stderr, "bench: no C floor: %v\n", err)
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for round := 0; round < *rounds; round++ {
		for _, i := range rng.Perm(len(vs)) {
			v := vs[i]
			cpu, err := processCPU(v.cmd(), *counterSpan)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", v.name, err)
			}
			v.cpu = append(v.cpu, cpu)
			fmt.Fprintf(os.Stderr, "bench: counters round %d %-40s %v CPU in %v\n", round+1, v.name, cpu, *counterSpan)
		}
	}
	return &counterResult{variants: vs, span: *counterSpan}, nil
}

// processCPU starts cmd, lets it settle for a second, and returns the CPU
// time all its threads used over span (schedstat: exact, not tick-sampled
// like rusage).
func processCPU(cmd *exec.Cmd, span time.Duration) (time.Duration, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}()
	time.Sleep(time.Second)
	a := tasksCPU(cmd.Process.Pid)
	time.Sleep(span)
	b := tasksCPU(cmd.Process.Pid)
	if a < 0 || b < 0 {
		return 0, fmt.Errorf("exited early")
	}
	return b - a, nil
}

// tasksCPU sums a process's threads' time on CPU, or returns -1 when the
// process is gone.
func tasksCPU(pid int) time.Duration {
	dirs, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(dirs) == 0 {
		return -1
	}
	var total time.Duration
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a thread that ended
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

// tickFloor wakes 100 times a second as the sampler does, reading nothing.
func tickFloor() {
	runtime.LockOSThread()
	next := int64(sysx.BootNow())
	for {
		next += 10e6
		sysx.SleepUntilBoot(next)
	}
}

const cTick = `#include <time.h>
int main(void) {
	struct timespec t;
	clock_gettime(CLOCK_BOOTTIME, &t);
	for (;;) {
		t.tv_nsec += 10000000;
		if (t.tv_nsec >= 1000000000) { t.tv_nsec -= 1000000000; t.tv_sec++; }
		clock_nanosleep(CLOCK_BOOTTIME, TIMER_ABSTIME, &t, 0);
	}
}
`

// cFloor builds the C floor with the machine's C compiler.
func cFloor(dir string) (string, error) {
	src, bin := filepath.Join(dir, "tick.c"), filepath.Join(dir, "tick")
	if err := os.WriteFile(src, []byte(cTick), 0o644); err != nil {
		return "", err
	}
	if out, err := exec.Command("cc", "-O2", "-o", bin, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("cc: %v: %s", err, out)
	}
	return bin, nil
}

func (c *counterResult) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Counter sampling: what it costs, idle machine, %v per run × %d rounds\n\n", c.span, *rounds)
	b.WriteString("| variant | reads | CPU per second (median) | % of one core | above the recorder alone |\n|---|---|---|---|---|\n")
	base := 0.0
	for _, v := range c.variants {
		if v.name == "rewind, no counters" {
			base = perSecond(v, c.span)
		}
	}
	for _, v := range c.variants {
		ps := perSecond(v, c.span)
		above := "–"
		if strings.HasPrefix(v.name, "rewind,") && v.name != "rewind, no counters" {
			above = fmt.Sprintf("**%.2f %%**", (ps-base)/1e7)
		}
		fmt.Fprintf(&b, "| %s | %s | %v | %.2f %% | %s |\n", v.name, v.what, time.Duration(ps).Round(time.Microsecond), ps/1e7, above)
	}
	b.WriteString("\nCPU is the sum over the process's threads of /proc/<pid>/task/<tid>/schedstat's time on CPU, exact to the nanosecond (rusage's utime and stime are sampled at the tick and overcharge a task that wakes on it).\n")
	return b.String()
}

// perSecond is a variant's median CPU ns per second of wall time.
func perSecond(v *costVariant, span time.Duration) float64 {
	s := make([]float64, len(v.cpu))
	for i, c := range v.cpu {
		s[i] = float64(c) / span.Seconds()
	}
	return median(s)
}
