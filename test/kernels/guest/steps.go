package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/rewindtrace/rewind/test/kernels/result"
)

// Each step's bound. Under emulation rewind loads its programs in 20–40 s
// (list and record both do), and slower when the host is busy; these only
// keep a stuck step from hiding which step it was.
const (
	listTimeout    = 6 * time.Minute
	startTimeout   = 6 * time.Minute
	childTimeout   = 3 * time.Minute
	tcpTimeout     = 2 * time.Minute
	stopTimeout    = 3 * time.Minute
	readTimeout    = 4 * time.Minute
	skippedMessage = "skipped: an earlier step failed"
)

// guest runs the steps and gathers their result. It is not safe for
// concurrent use.
type guest struct {
	cfg  config
	port *os.File
	res  *result.Result
	rec  *recording
	// pass is the recording the steps fill; recordArgs are added to
	// record's arguments for it.
	pass       *result.Pass
	recordArgs []string
}

// runSteps runs list, then record around the child, then reads the
// snapshot back; a step that needs a failed one is recorded as skipped.
// Then it records the child again as on a kernel without BTF.
func (g *guest) runSteps() {
	g.pass = &g.res.Pass
	g.firstPass()
	g.noBTFPass()
}

func (g *guest) firstPass() {
	g.step(result.StepList, listTimeout, g.list)
	if !g.step(result.StepStart, startTimeout, g.startRecording) {
		g.skip(result.StepChild, result.StepTCP, result.StepStop, result.StepInfo, result.StepView, result.StepAnalyze)
		return
	}
	defer g.rec.kill()
	childOK := g.step(result.StepChild, childTimeout, g.runChild)
	g.step(result.StepTCP, tcpTimeout, g.tcp)
	if !g.step(result.StepStop, stopTimeout, g.stopRecording) {
		g.skip(result.StepInfo, result.StepView, result.StepAnalyze)
		return
	}
	g.step(result.StepInfo, readTimeout, g.info)
	if !childOK {
		g.skip(result.StepView, result.StepAnalyze)
		return
	}
	g.step(result.StepView, readTimeout, g.view)
	g.step(result.StepAnalyze, readTimeout, g.analyze)
	g.step(result.StepWatch, startTimeout, g.watch)
}

// step announces the step on the result port and the console, runs it
// within limit, and records its time and error. It reports whether the
// step succeeded.
func (g *guest) step(name string, limit time.Duration, fn func(context.Context) error) bool {
	fmt.Fprintf(g.port, "%s%s\n", result.StepPrefix, name)
	fmt.Fprintf(os.Stderr, "guest: step %s\n", name)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %v: %w", limit, err)
	}
	s := result.Step{Name: name, Seconds: time.Since(start).Round(10 * time.Millisecond).Seconds()}
	if err != nil {
		s.Error = err.Error()
		fmt.Fprintf(os.Stderr, "guest: step %s failed: %v\n", name, err)
	}
	g.res.Steps = append(g.res.Steps, s)
	return err == nil
}

// skip records steps that did not run.
func (g *guest) skip(names ...string) {
	for _, name := range names {
		g.res.Steps = append(g.res.Steps, result.Step{Name: name, Error: skippedMessage})
	}
}

// runRewind runs rewind with args and returns its standard output; a
// failure names the command and carries the end of its standard error.
func (g *guest) runRewind(ctx context.Context, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, g.cfg.rewind, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("rewind %s: %w%s", strings.Join(args, " "), err, tail(stderr.String(), 5))
	}
	return stdout.Bytes(), nil
}

// tail is the last n lines of s, as ": line; line", or "" when s is blank.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	joined := strings.Join(lines, "; ")
	if joined == "" {
		return ""
	}
	return ": " + joined
}

// noBTFPass records the child as on a kernel built without BTF: the
// kernel's BTF is copied to a file and /sys/kernel/btf hidden under an
// empty tmpfs, record must refuse to start without --btf, then record
// with --btf FILE (raw tracepoint programs relocated against the file)
// must find every getppid call.
func (g *guest) noBTFPass() {
	g.res.NoBTF = &result.NoBTF{}
	g.pass = &g.res.NoBTF.Pass
	g.recordArgs = []string{"--btf", result.BTFFile}
	if !g.step(result.StepHideBTF, readTimeout, g.hideBTF) {
		g.skip(result.StepNeedsBTF, result.StepBTFStart, result.StepBTFChild, result.StepBTFStop, result.StepBTFView)
		return
	}
	g.step(result.StepNeedsBTF, startTimeout, g.refusedWithoutBTF)
	if !g.step(result.StepBTFStart, startTimeout, g.startRecording) {
		g.skip(result.StepBTFChild, result.StepBTFStop, result.StepBTFView)
		return
	}
	defer g.rec.kill()
	childOK := g.step(result.StepBTFChild, childTimeout, g.runChild)
	if !g.step(result.StepBTFStop, stopTimeout, g.stopRecording) || !childOK {
		g.skip(result.StepBTFView)
		return
	}
	g.step(result.StepBTFView, readTimeout, g.view)
	g.step(result.StepBTFWatch, startTimeout, g.watch)
}

// hideBTF copies the kernel's BTF to a file and mounts an empty tmpfs
// over /sys/kernel/btf.
func (g *guest) hideBTF(context.Context) error {
	b, err := os.ReadFile("/sys/kernel/btf/vmlinux")
	if err != nil {
		return fmt.Errorf("read the kernel's BTF: %w", err)
	}
	if err := os.WriteFile(result.BTFFile, b, 0o644); err != nil {
		return err
	}
	if err := syscall.Mount("none", "/sys/kernel/btf", "tmpfs", 0, ""); err != nil {
		return fmt.Errorf("mount tmpfs over /sys/kernel/btf: %w", err)
	}
	return nil
}

// refusedWithoutBTF checks that record, with no BTF to be found, refuses
// to start and says to pass --btf.
func (g *guest) refusedWithoutBTF(ctx context.Context) error {
	_, err := g.runRewind(ctx, "record", "-e", "default", "-b", "4MiB", "-o", g.cfg.dir, "-d", "1s")
	if err == nil {
		return errors.New("rewind record started with the kernel's BTF hidden and no --btf")
	}
	g.res.NoBTF.Refusal = err.Error()
	if !strings.Contains(err.Error(), "--btf FILE") {
		return fmt.Errorf("record's refusal does not say to pass --btf FILE: %v", err)
	}
	return nil
}
