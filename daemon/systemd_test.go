package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks dist/rewind.service with systemd-analyze verify,
// its ExecStart pointed at an executable that exists here (this test's
// own binary). `make test` installs systemd-analyze; in CI
// (REWIND_REQUIRE_KERNEL=1) its absence fails the test.
func TestSystemdUnit(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("REWIND_REQUIRE_KERNEL") == "1" {
			t.Fatal("systemd-analyze not found; `make test` installs it (scripts/deps.sh test)")
		}
		t.Skip("no systemd-analyze")
	}
	unit, err := os.ReadFile("../dist/rewind.service")
	if err != nil {
		t.Fatal(err)
	}
	self, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(unit), "ExecStart=/usr/local/bin/rewind", "ExecStart="+self, 1)
	if text == string(unit) {
		t.Fatal("dist/rewind.service has no ExecStart=/usr/local/bin/rewind")
	}
	path := filepath.Join(t.TempDir(), "rewind.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
