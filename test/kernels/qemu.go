package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// chooseAccel turns -accel into qemu's -accel argument. Multi-threaded TCG
// oopses or soft-locks guests that toggle syscall tracepoints while
// processes make syscalls (docs in README.md), so TCG is single-threaded.
// auto takes KVM only where /dev/kvm opens and is not kvm_pvm, a
// paravirtualised nested KVM on which stock kernels hang right after the
// decompressor.
func chooseAccel(flag string) (string, error) {
	switch flag {
	case "tcg":
		return "tcg,thread=single", nil
	case "kvm":
		return "kvm", nil
	case "auto":
		if kvmUsable() {
			return "kvm", nil
		}
		return "tcg,thread=single", nil
	}
	return "", fmt.Errorf("-accel %q: want auto, tcg or kvm", flag)
}

// kvmUsable says whether /dev/kvm opens and is not kvm_pvm's.
func kvmUsable() bool {
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return false
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// vm is one boot: its kernel, the shared initramfs, and a folder of its own
// for the serial ports' files.
type vm struct {
	vmlinuz, initramfs, dir string
	accel                   string
	timeout                 time.Duration
}

// Files in a boot's folder: what the kernel console (first serial port)
// and the guest's result port (second) received.
const (
	consoleFile = "console.log"
	resultsFile = "results.txt"
)

// errTimeout says a boot did not end within its bound.
var errTimeout = errors.New("timed out")

// boot runs qemu until the guest powers off. qemu runs under timeout(1), so
// that it dies at its bound even if this program is killed outright, in a
// process group of its own, which is killed when ctx is cancelled (on
// SIGINT or SIGTERM).
func (v *vm) boot(ctx context.Context) error {
	args := []string{"--kill-after=10s", strconv.Itoa(int(v.timeout.Seconds())) + "s",
		"qemu-system-x86_64", "-accel", v.accel, "-m", "2048", "-smp", "2",
		"-nographic", "-monitor", "none", "-nic", "none", "-no-reboot",
		"-kernel", v.vmlinuz, "-initrd", v.initramfs,
		"-append", "console=ttyS0 panic=-1",
		"-serial", "file:" + filepath.Join(v.dir, consoleFile),
		"-serial", "file:" + filepath.Join(v.dir, resultsFile)}
	cmd := exec.CommandContext(ctx, "timeout", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &exit) && (exit.ExitCode() == 124 || exit.ExitCode() == 128+9):
		// 124: timeout stopped qemu; 137: it had to kill it.
		return fmt.Errorf("%w after %v", errTimeout, v.timeout)
	case err != nil:
		return fmt.Errorf("qemu-system-x86_64: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
