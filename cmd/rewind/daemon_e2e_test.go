package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewindtrace/rewind/internal/testkernel"
)

// stepChild makes numbered getppid calls when told: a line "N" makes N
// calls, their first argument counting from 0, then prints the count.
func stepChild() {
	runtime.LockOSThread()
	sc := bufio.NewScanner(os.Stdin)
	n := 0
	for sc.Scan() {
		k, _ := strconv.Atoi(sc.Text())
		for i := 0; i < k; i++ {
			syscall.RawSyscall(syscall.SYS_GETPPID, uintptr(n), 0, 0)
			n++
		}
		fmt.Println(n)
	}
}

// TestDaemonSessionCommands drives the LTTng-style cycle from the command
// line against a `rewind daemon`: create, enable-event, track, start,
// snapshot record, stop, start again, snapshot record -o FILE, status,
// destroy; then, with a session recording, SIGTERM, which must leave no
// socket, no lock and none of the BPF programs the daemon held.
func TestDaemonSessionCommands(t *testing.T) {
	testkernel.Require(t)
	dir := t.TempDir()
	socket := filepath.Join(dir, "rewind.sock")
	daemon := exec.Command(rewindBin, "daemon", "--socket", socket, "--output-root", filepath.Join(dir, "out"), "--buffer-size", "4MiB")
	var daemonErr strings.Builder
	daemon.Stderr = &daemonErr
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = daemon.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			daemon.Process.Kill()
			<-exited
		}
	})
	// The socket appears once the daemon listens.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket after 30s: %s", daemonErr.String())
		}
	}
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o700)
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(rewindBin, args...)
		cmd.Env = append(os.Environ(), "HOME="+home, "REWIND_SOCKET="+socket)
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("rewind %s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
			}
			t.Fatal(err)
		}
		return string(out)
	}

	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), "REWIND_TEST_CHILD=step")
	in, _ := child.StdinPipe()
	out, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); child.Wait() })
	lines := bufio.NewReader(out)
	step := func(n int) {
		t.Helper()
		fmt.Fprintln(in, n)
		if _, err := lines.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	pid := strconv.Itoa(child.Process.Pid)

	cli("create", "web")
	cli("enable-event", "syscalls")
	cli("track", "--pid", pid)
	step(50) // not started: not recorded
	cli("start")
	step(300)
	first := filepath.Join(dir, "out", "web", "first.rwd")
	cli("snapshot", "record", "--name", "first.rwd")
	if n := countGetppid(t, first, pid); n != 300 {
		t.Errorf("first snapshot: %d getppid entries of the child, want the 300 made while recording", n)
	}
	cli("stop")
	step(50) // stopped: not recorded
	cli("start")
	step(200)
	second := filepath.Join(dir, "mine.rwd")
	cli("snapshot", "record", "-o", second)
	if n := countGetppid(t, second, pid); n != 500 {
		t.Errorf("second snapshot: %d getppid entries of the child, want 500", n)
	}
	var status struct {
		Name   string   `json:"name"`
		State  string   `json:"state"`
		Events []string `json:"events"`
	}
	if err := json.Unmarshal([]byte(cli("status", "--json")), &status); err != nil || status.Name != "web" || status.State != "recording" {
		t.Errorf("status --json: %+v, %v", status, err)
	}
	var listed struct {
		Sessions []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(cli("list", "--sessions", "--json")), &listed); err != nil || len(listed.Sessions) != 1 || listed.Sessions[0].Name != "web" {
		t.Errorf("list --sessions --json: %+v, %v", listed, err)
	}
	// SIGUSR1 snapshots every session that has recorded.
	before, _ := filepath.Glob(filepath.Join(dir, "out", "web", "*.rwd"))
	daemon.Process.Signal(syscall.SIGUSR1)
	var signalled string
	for deadline := time.Now().Add(30 * time.Second); signalled == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		after, _ := filepath.Glob(filepath.Join(dir, "out", "web", "*.rwd"))
		for _, p := range after {
			if !slices.Contains(before, p) {
				signalled = p
			}
		}
	}
	if signalled == "" {
		t.Fatal("no snapshot 30s after SIGUSR1")
	}
	if in := info(t, signalled); in.Trigger.Kind != "signal" || in.Trigger.Signal != "SIGUSR1" {
		t.Errorf("snapshot after SIGUSR1: trigger %+v", in.Trigger)
	}
	cli("destroy")
	cli("create", "held")
	cli("enable-event", "sched_switch")
	cli("start")
	held := heldPrograms(t, daemon.Process.Pid)
	if len(held) == 0 {
		t.Fatal("the daemon holds no BPF programs while a session records")
	}

	daemon.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("daemon after SIGTERM: %v: %s", waitErr, daemonErr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("daemon still running 60s after SIGTERM")
	}
	for _, p := range []string{socket, socket + ".lock"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after SIGTERM (%v)", p, err)
		}
	}
	// The kernel frees a program after its last reference goes, not
	// always before the process's exit is seen.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left := loadedOf(t, held)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("BPF programs %v the daemon held still loaded 30s after it exited", left)
			break
		}
	}
}

// countGetppid counts the getppid entries of pid in a snapshot, by `rewind
// view --json`.
func countGetppid(t *testing.T, path, pid string) int {
	t.Helper()
	r := run(t, "view", "--json", "--pid", pid, "--event", "sys_enter", path)
	if r.code != 0 {
		t.Fatalf("view %s: %s", path, r.stderr)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev struct {
			Syscall string `json:"syscall"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Syscall == "getppid" {
			n++
		}
	}
	return n
}

// heldPrograms returns the ids of the BPF programs a process holds open,
// from its file descriptors' fdinfo.
func heldPrograms(t *testing.T, pid int) map[int]bool {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int]bool{}
	for _, fd := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if link != "anon_inode:bpf-prog" {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				id, _ := strconv.Atoi(strings.TrimSpace(v))
				ids[id] = true
			}
		}
	}
	return ids
}

// loadedOf returns which of ids are loaded BPF programs, from bpftool.
func loadedOf(t *testing.T, ids map[int]bool) []int {
	t.Helper()
	out, err := exec.Command("bpftool", "prog", "show", "--json").Output()
	if err != nil {
		t.Fatalf("bpftool prog show: %v", err)
	}
	var progs []struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal(out, &progs); err != nil {
		t.Fatal(err)
	}
	var left []int
	for _, p := range progs {
		if ids[p.ID] {
			left = append(left, p.ID)
		}
	}
	return left
}
