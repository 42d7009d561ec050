// Command guest runs inside a boot-matrix VM (test/kernels): it asks rewind
// which events the running kernel supports, records a child that makes an
// exact number of getppid calls, reads the snapshot back with info, view
// and analyze, and writes one result.Result to the host on a serial port of
// its own, so that kernel messages never mangle it.
//
//	guest [-rewind PATH] [-out PORT] [-calls N] [-dir DIR]
//	guest getppid N   (the child: N getppid calls on one thread)
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/rewindtrace/rewind/test/kernels/result"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		if err := makeGetppidCalls(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "guest getppid:", err)
			os.Exit(1)
		}
		return
	}
	var cfg config
	flag.StringVar(&cfg.rewind, "rewind", "/bin/rewind", "the rewind binary")
	flag.StringVar(&cfg.out, "out", "/dev/ttyS1", "where to write progress and the result (the VM's second serial port)")
	flag.IntVar(&cfg.calls, "calls", 20000, "getppid calls the recorded child makes")
	flag.StringVar(&cfg.dir, "dir", "/tmp/snap", "snapshot directory")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "guest:", err)
		os.Exit(1)
	}
}

// childCommand is the subcommand the guest re-executes itself with to be
// the recorded child.
const childCommand = "getppid"

// makeGetppidCalls makes exactly args[0] getppid system calls from one
// locked OS thread, so that the recording can be checked against it.
func makeGetppidCalls(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("want one argument, the number of calls")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 {
		return fmt.Errorf("number of calls %q: want a count", args[0])
	}
	runtime.LockOSThread()
	for range n {
		syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
	}
	return nil
}

// config is what the flags say.
type config struct {
	rewind string
	out    string
	calls  int
	dir    string
}

// run runs every step and writes the result, whatever the steps did: only
// failing to write the result is an error.
func run(cfg config) error {
	port, err := os.OpenFile(cfg.out, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOCTTY, 0o644)
	if err != nil {
		return fmt.Errorf("open result port: %w", err)
	}
	g := &guest{cfg: cfg, port: port, res: &result.Result{GetppidExpected: cfg.calls}}
	g.res.Kernel = kernelRelease()
	g.runSteps()
	if err := g.writeResult(); err != nil {
		port.Close()
		return fmt.Errorf("write result to %s: %w", cfg.out, err)
	}
	// Closing a tty waits until what was written has left it.
	if err := port.Close(); err != nil {
		return fmt.Errorf("close %s: %w", cfg.out, err)
	}
	return nil
}

// kernelRelease is uname -r.
func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(b))
}

// writeResult writes the result between its markers.
func (g *guest) writeResult() error {
	b, err := json.Marshal(g.res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	_, err = fmt.Fprintf(g.port, "%s\n%s\n%s\n", result.Begin, b, result.End)
	return err
}
