package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/rewindtrace/rewind/test/kernels/result"
)

// What `rewind record` prints on standard error (formats/session): the
// line that says recording has started, and the warning for each event
// it cannot record.
const (
	startedPrefix     = "rewind: recording "
	unavailablePrefix = "rewind: warning: not recording "
)

// recording is a running `rewind record --json`.
type recording struct {
	cmd     *exec.Cmd
	started chan struct{} // closed at the start line
	exited  chan struct{} // closed once the process is reaped
	err     error         // Wait's error, set before exited closes

	mu        sync.Mutex
	warnings  []string
	lastLines []string
	snapshots []string // paths from the JSON lines
}

// list runs `rewind list --events --json` and keeps each event's verdict.
func (g *guest) list(ctx context.Context) error {
	out, err := g.runRewind(ctx, "list", "--events", "--json")
	if err != nil {
		return err
	}
	var list struct {
		Events []result.Event `json:"events"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return fmt.Errorf("decode rewind list --events --json: %w", err)
	}
	if len(list.Events) == 0 {
		return errors.New("rewind list --events --json listed no events")
	}
	g.res.Events = list.Events
	return nil
}

// startRecording starts `rewind record` and waits for its start line,
// which it prints once its programs are loaded and attached.
func (g *guest) startRecording(ctx context.Context) error {
	if err := os.MkdirAll(g.cfg.dir, 0o755); err != nil {
		return fmt.Errorf("create snapshot directory: %w", err)
	}
	args := append([]string{"record", "-e", "default", "-b", "4MiB", "-o", g.cfg.dir, "--json"}, g.recordArgs...)
	r := &recording{cmd: exec.Command(g.cfg.rewind, args...), started: make(chan struct{}), exited: make(chan struct{})}
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start rewind %s: %w", strings.Join(args, " "), err)
	}
	g.rec = r
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); r.readSnapshots(stdout) }()
	go func() { defer readers.Done(); r.readMessages(stderr) }()
	go func() {
		readers.Wait()
		r.err = r.cmd.Wait()
		close(r.exited)
	}()
	select {
	case <-r.started:
		r.mu.Lock()
		g.res.RecordWarnings = append([]string(nil), r.warnings...)
		r.mu.Unlock()
		return nil
	case <-r.exited:
		return fmt.Errorf("rewind record exited before recording: %v%s", r.err, r.tail())
	case <-ctx.Done():
		r.kill()
		return fmt.Errorf("no start line from rewind record%s: %w", r.tail(), ctx.Err())
	}
}

// readMessages copies record's standard error to the console, watching
// for the start line and the events it will not record.
func (r *recording) readMessages(stderr io.Reader) {
	sc := bufio.NewScanner(stderr)
	seenStart := false
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(os.Stderr, "record:", line)
		r.mu.Lock()
		r.lastLines = append(r.lastLines, line)
		if len(r.lastLines) > 5 {
			r.lastLines = r.lastLines[1:]
		}
		if w, ok := strings.CutPrefix(line, unavailablePrefix); ok {
			r.warnings = append(r.warnings, w)
		}
		r.mu.Unlock()
		if strings.HasPrefix(line, startedPrefix) && !seenStart {
			seenStart = true
			close(r.started)
		}
	}
}

// readSnapshots keeps the path of each snapshot record reports.
func (r *recording) readSnapshots(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var snap struct {
			Path string `json:"path"`
		}
		if json.Unmarshal(sc.Bytes(), &snap) == nil && snap.Path != "" {
			r.mu.Lock()
			r.snapshots = append(r.snapshots, snap.Path)
			r.mu.Unlock()
		}
	}
}

// tail is the end of what record said on standard error.
func (r *recording) tail() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return tail(strings.Join(r.lastLines, "\n"), 5)
}

// kill ends record if it still runs; safe to call more than once.
func (r *recording) kill() {
	select {
	case <-r.exited:
	default:
		r.cmd.Process.Kill()
		<-r.exited
	}
}

// runChild runs the guest again as the child that makes the getppid
// calls, while record records.
func (g *guest) runChild(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, childCommand, strconv.Itoa(g.cfg.calls))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start child: %w", err)
	}
	g.pass.ChildPID = cmd.Process.Pid
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("child %d: %w", g.pass.ChildPID, err)
	}
	return nil
}

// stopRecording sends SIGINT, on which record writes a last snapshot and
// exits; the snapshot is the last path it reported.
func (g *guest) stopRecording(ctx context.Context) error {
	r := g.rec
	if err := r.cmd.Process.Signal(os.Interrupt); err != nil {
		return fmt.Errorf("interrupt rewind record: %w", err)
	}
	select {
	case <-r.exited:
	case <-ctx.Done():
		r.kill()
		return fmt.Errorf("rewind record did not exit after SIGINT%s: %w", r.tail(), ctx.Err())
	}
	if r.err != nil {
		return fmt.Errorf("rewind record: %v%s", r.err, r.tail())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.snapshots) == 0 {
		return fmt.Errorf("rewind record --json reported no snapshot%s", tail(strings.Join(r.lastLines, "\n"), 5))
	}
	g.pass.Snapshot = r.snapshots[len(r.snapshots)-1]
	return nil
}
