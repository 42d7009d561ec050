package elfid

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestGNUBuildID(t *testing.T) {
	for _, tool := range []string{"gcc", "readelf"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip("no " + tool)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "p.c")
	if err := os.WriteFile(src, []byte("int main(void) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	with, without := filepath.Join(dir, "with"), filepath.Join(dir, "without")
	for bin, flag := range map[string]string{with: "-Wl,--build-id=sha1", without: "-Wl,--build-id=none"} {
		if out, err := exec.Command("gcc", flag, "-o", bin, src).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v\n%s", err, out)
		}
	}
	out, err := exec.Command("readelf", "-n", with).Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Build ID: ([0-9a-f]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("readelf -n printed no build id:\n%s", out)
	}
	if got, want := BuildID(with), "gnu:"+string(m[1]); got != want {
		t.Errorf("BuildID = %q, readelf says %q", got, want)
	}
	if got := BuildID(without); got != "" {
		t.Errorf("no build id: got %q", got)
	}
}

func TestGoBuildID(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "buildid", self).Output()
	if err != nil {
		t.Skipf("go tool buildid: %v", err)
	}
	got := BuildID(self)
	if want := "go:" + strings.TrimSpace(string(out)); got != want && !strings.HasPrefix(got, "gnu:") {
		t.Errorf("BuildID = %q, go tool buildid says %q", got, want)
	}
}

func TestNotELF(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("\x7fELF"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/hostname", short, filepath.Join(dir, "missing"), dir} {
		if got := BuildID(p); got != "" {
			t.Errorf("%s: %q, want none", p, got)
		}
	}
}
