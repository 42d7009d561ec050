package bpf

import (
	"os"
	"os/exec"
	"testing"

	"github.com/rewindtrace/rewind/internal/gencheck"
)

// TestGeneratedUpToDate fails when rebuilding the objects from rewind.bpf.c
// and include/ would change the committed ones. It needs clang, llvm-strip
// and libbpf's headers, which `make test` installs; there
// REWIND_CHECK_GENERATED=1 turns their absence into a failure.
func TestGeneratedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerates code")
	}
	for _, tool := range []string{"clang", "llvm-strip"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("REWIND_CHECK_GENERATED") == "1" {
				t.Fatalf("%s not found; `make test` installs it", tool)
			}
			t.Skipf("%s not found", tool)
		}
	}
	gencheck.Check(t, "bpf", []string{
		"rewind_x86_bpfel.go", "rewind_x86_bpfel.o",
		"rewind_arm64_bpfel.go", "rewind_arm64_bpfel.o",
		"rewindcompat_x86_bpfel.go", "rewindcompat_x86_bpfel.o",
		"rewindraw_x86_bpfel.go", "rewindraw_x86_bpfel.o",
		"rewindraw_arm64_bpfel.go", "rewindraw_arm64_bpfel.o",
		"rewindrawcompat_x86_bpfel.go", "rewindrawcompat_x86_bpfel.o",
		"watch_x86_bpfel.go", "watch_x86_bpfel.o",
		"watch_arm64_bpfel.go", "watch_arm64_bpfel.o",
		"watchraw_x86_bpfel.go", "watchraw_x86_bpfel.o",
		"watchraw_arm64_bpfel.go", "watchraw_arm64_bpfel.o",
	})
}
