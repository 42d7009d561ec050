package main

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The daemon section: what the daemon costs, idle, holding one session
// with the default events and the default counters at 100 Hz, beside
// `rewind record` with the same settings; both as the CPU time of every
// thread of the process over a fixed span (schedstat, as the counters
// section), rounds interleaved.

type daemonResult struct {
	record, daemon []time.Duration
	span           time.Duration
}

func daemonCost(dir string) (*daemonResult, error) {
	res := &daemonResult{span: *counterSpan}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for round := 0; round < *rounds; round++ {
		for _, first := range rng.Perm(2) {
			if first == 0 {
				cpu, err := processCPU(exec.Command(*rewindBin, "record", "--events", "default", "--counters", "default@100",
					"--no-final-snapshot", "--output", dir), res.span)
				if err != nil {
					return nil, fmt.Errorf("record: %w", err)
				}
				res.record = append(res.record, cpu)
				fmt.Fprintf(os.Stderr, "bench: daemon round %d record %v CPU in %v\n", round+1, cpu, res.span)
				continue
			}
			cpu, err := idleDaemonCPU(dir, res.span)
			if err != nil {
				return nil, fmt.Errorf("daemon: %w", err)
			}
			res.daemon = append(res.daemon, cpu)
			fmt.Fprintf(os.Stderr, "bench: daemon round %d daemon %v CPU in %v\n", round+1, cpu, res.span)
		}
	}
	return res, nil
}

// idleDaemonCPU starts a daemon, makes it one recording session as above
// with the session commands, and returns the daemon's CPU time over span
// after a second to settle.
func idleDaemonCPU(dir string, span time.Duration) (time.Duration, error) {
	sock := filepath.Join(dir, "bench.sock")
	d := exec.Command(*rewindBin, "daemon", "--socket", sock, "--output-root", filepath.Join(dir, "daemon"), "--sessions-dir", "")
	d.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.Start(); err != nil {
		return 0, err
	}
	defer func() {
		syscall.Kill(-d.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-d.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no socket after 30s")
		}
	}
	for _, args := range [][]string{
		{"create", "bench"}, {"enable-event", "-s", "bench", "default"},
		{"enable-counter", "-s", "bench", "default@100"}, {"start", "-s", "bench"},
	} {
		cmd := exec.Command(*rewindBin, append([]string{args[0], "--socket", sock}, args[1:]...)...)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("rewind %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	time.Sleep(time.Second)
	a := tasksCPU(d.Process.Pid)
	time.Sleep(span)
	b := tasksCPU(d.Process.Pid)
	if a < 0 || b < 0 {
		return 0, fmt.Errorf("the daemon exited early")
	}
	return b - a, nil
}

func (r *daemonResult) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## The daemon, idle, with one session (default events, default counters at 100 Hz), %v per run × %d rounds\n\n", r.span, len(r.daemon))
	b.WriteString("| process | CPU per second (median) | % of one core |\n|---|---|---|\n")
	per := func(v []time.Duration) float64 { return float64(medianDur(v)) / r.span.Seconds() }
	rec, dae := per(r.record), per(r.daemon)
	fmt.Fprintf(&b, "| `rewind record --events default --counters default@100` | %v | %.2f %% |\n", time.Duration(rec).Round(time.Microsecond), rec/1e7)
	fmt.Fprintf(&b, "| `rewind daemon`, one session with the same settings | %v | %.2f %% |\n", time.Duration(dae).Round(time.Microsecond), dae/1e7)
	fmt.Fprintf(&b, "\nThe daemon costs **%.2f×** the foreground recorder. CPU is every thread's schedstat time on CPU, as in the counters section.\n", dae/rec)
	return b.String()
}
