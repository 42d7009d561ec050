package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rewindtrace/rewind/internal/testkernel"
	"github.com/rewindtrace/rewind/record/crash"
)

// TestDaemonCrashHandler: with crash_handler on, the daemon installs the
// handler when it starts and puts the previous core_pattern back when it
// stops; a handler installed before it started stays when it stops.
func TestDaemonCrashHandler(t *testing.T) {
	testkernel.Require(t)
	before, err := crash.ReadPattern(crash.PatternFile)
	must(t, err)
	if crash.IsOurs(before) {
		t.Skipf("core_pattern is a rewind handler already (%q): not touching it", before)
	}
	t.Cleanup(func() {
		if p, _ := crash.ReadPattern(crash.PatternFile); p != before {
			t.Errorf("core_pattern %q after the test, was %q: putting it back", p, before)
			os.WriteFile(crash.PatternFile, []byte(before), 0o644)
		}
	})
	dir, err := os.MkdirTemp("", "rwd")
	must(t, err)
	defer os.RemoveAll(dir)
	cc := CrashConfig{Install: true, State: filepath.Join(dir, "s.json"), Dir: filepath.Join(dir, "c"), Rewind: "/usr/bin/true"}
	d := newCrashDaemon(t, dir, cc)
	p, err := crash.ReadPattern(crash.PatternFile)
	must(t, err)
	if p != crash.Pattern(cc.Rewind, cc.State) {
		t.Fatalf("core_pattern %q while the daemon runs", p)
	}
	st, err := crash.LoadState(cc.State)
	must(t, err)
	if st.Socket != d.cfg.Socket || st.Previous != before {
		t.Errorf("handler state %+v: want the daemon's socket and the previous pattern", st)
	}
	must(t, d.Close())
	if p, _ := crash.ReadPattern(crash.PatternFile); p != before {
		t.Fatalf("core_pattern %q after the daemon stopped, want %q", p, before)
	}

	// Installed before: the daemon leaves it.
	pre := filepath.Join(dir, "pre.json")
	_, err = crash.Install(crash.Options{Rewind: "/usr/bin/true", State: pre, Dir: cc.Dir})
	must(t, err)
	defer crash.Uninstall(pre, "", true)
	d = newCrashDaemon(t, dir, cc)
	must(t, d.Close())
	if p, _ := crash.ReadPattern(crash.PatternFile); p != crash.Pattern("/usr/bin/true", pre) {
		t.Errorf("core_pattern %q: the daemon removed a handler it did not install", p)
	}
}

// newCrashDaemon makes (without serving) a daemon that installs the crash
// handler.
func newCrashDaemon(t *testing.T, dir string, cc CrashConfig) *Daemon {
	t.Helper()
	d, err := New(Config{Socket: filepath.Join(dir, "d.sock"), OutputRoot: filepath.Join(dir, "out"), BufferSize: 4 << 20, Version: "test", Crash: cc})
	must(t, err)
	return d
}
