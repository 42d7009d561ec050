package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// module is the go.mod line that marks the repository's root.
const module = "module github.com/rewindtrace/rewind"

// repoRoot finds the repository from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte(module+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the rewind repository (no go.mod of " + module[len("module "):] + " above the working directory)")
		}
		dir = parent
	}
}

// goTool is the go command: $GO, else the one on $PATH, else the usual
// place (sudo's secure_path leaves it out).
func goTool() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	if g, err := exec.LookPath("go"); err == nil {
		return g
	}
	return "/usr/local/go/bin/go"
}

// buildStatic builds the package pkg of the repository at root as a static
// binary at out.
func buildStatic(ctx context.Context, root, pkg, out string) error {
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-buildvcs=false", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(string(b)))
	}
	return checkStatic(out)
}

// checkStatic fails unless path is an ELF executable without an
// interpreter, which is what runs in an initramfs that has no libc.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; the VM has no libc", path)
		}
	}
	return nil
}

// ensureTools checks for qemu, a static busybox and the Debian tools the
// fetch uses, installing qemu and busybox with scripts/deps.sh when they
// are missing.
func ensureTools(ctx context.Context, root string) error {
	missing := func() error {
		if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
			return err
		}
		return checkStatic(busyboxPath)
	}
	if err := missing(); err != nil {
		logf("%v: running scripts/deps.sh kernels", err)
		cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "deps.sh"), "kernels")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("scripts/deps.sh kernels: %w (install qemu-system-x86 and busybox-static, as root)", err)
		}
		if err := missing(); err != nil {
			return fmt.Errorf("after scripts/deps.sh kernels: %w", err)
		}
	}
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb", "timeout"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w (the boot matrix fetches Debian's kernels with apt and bounds qemu with timeout)", err)
		}
	}
	return nil
}
