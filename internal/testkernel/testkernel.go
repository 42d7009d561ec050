// Package testkernel gates tests that need the live kernel: they skip
// without root or BTF, and fail instead when REWIND_REQUIRE_KERNEL=1, as in
// CI, where a skip would hide a regression.
package testkernel

import (
	"os"
	"testing"
)

// Require skips or fails t unless it runs as root on a kernel with BTF.
func Require(t testing.TB) {
	t.Helper()
	var why string
	switch {
	case os.Geteuid() != 0:
		why = "needs root"
	case !exists("/sys/kernel/btf/vmlinux"):
		why = "needs kernel BTF (/sys/kernel/btf/vmlinux)"
	default:
		return
	}
	if os.Getenv("REWIND_REQUIRE_KERNEL") == "1" {
		t.Fatalf("REWIND_REQUIRE_KERNEL=1 but this test %s", why)
	}
	t.Skip(why)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
