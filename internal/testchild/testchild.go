// Package testchild runs the test binary itself as a workload: a test's
// TestMain looks at REWIND_TEST_CHILD and, when set, does that instead of
// running tests. The child prints a line (typically its thread id) once it
// is ready, and the test talks to it through stdin and stdout.
package testchild

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Child is a running child. It is killed when the test ends.
type Child struct {
	Cmd   *exec.Cmd
	Stdin io.WriteCloser
	out   *bufio.Reader
}

// Start runs the test binary as a child in mode, with the extra environment
// variables and arguments given.
func Start(t testing.TB, mode string, env []string, args ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(append(os.Environ(), "REWIND_TEST_CHILD="+mode), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	return &Child{Cmd: cmd, Stdin: in, out: bufio.NewReader(out)}
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.Cmd.Process.Pid }

// Line reads the child's next line of output, without its newline. It
// fails nothing, so that a goroutine other than the test's may call it.
func (c *Child) Line() (string, error) {
	line, err := c.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("child %d: %w", c.Pid(), err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// Int reads a line holding one integer.
func (c *Child) Int(t testing.TB) int64 {
	t.Helper()
	line, err := c.Line()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil {
		t.Fatalf("child %d said %q", c.Pid(), line)
	}
	return n
}

// Go writes the byte a paused child waits for.
func (c *Child) Go(t testing.TB) {
	t.Helper()
	if _, err := c.Stdin.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
}

// Wait waits up to a timeout for the child to exit successfully and
// returns the rest of what it printed.
func (c *Child) Wait(t testing.TB, timeout time.Duration) []byte {
	t.Helper()
	done := make(chan error, 1)
	var rest []byte
	go func() {
		rest, _ = io.ReadAll(c.out)
		done <- c.Cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("child %d: %v", c.Pid(), err)
		}
	case <-time.After(timeout):
		t.Fatalf("child %d still running after %v", c.Pid(), timeout)
	}
	return rest
}

// PinEnv is the variable that names the CPU a child pins itself to.
const PinEnv = "REWIND_TEST_CPU"

// Pin locks the calling goroutine to its thread and, when PinEnv is set,
// pins that thread to the CPU it names.
func Pin() error {
	runtime.LockOSThread()
	cpu := os.Getenv(PinEnv)
	if cpu == "" {
		return nil
	}
	n, err := strconv.Atoi(cpu)
	if err != nil {
		return fmt.Errorf("%s=%q: %v", PinEnv, cpu, err)
	}
	var set unix.CPUSet
	set.Set(n)
	return unix.SchedSetaffinity(0, &set)
}
