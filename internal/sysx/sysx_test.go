package sysx

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func autogroupNice(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/autogroup")
	if err != nil {
		t.Skipf("no autogroups here: %v", err)
	}
	fs := strings.Fields(string(b)) // "/autogroup-2 nice 0"
	if len(fs) != 3 {
		t.Fatalf("/proc/self/autogroup: %q", b)
	}
	n, err := strconv.Atoi(fs[2])
	if err != nil {
		t.Fatalf("/proc/self/autogroup: %q", b)
	}
	return n
}

func TestRaiseAutogroupPriority(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("lowering a nice value needs CAP_SYS_NICE")
	}
	if os.Getenv("REWIND_SYSX_OWN_SESSION") == "" {
		// A process of the first session (as under some CI runners) is
		// in no autogroup and reads an empty /proc/self/autogroup; a
		// session of its own always has one. Run the test there.
		cmd := exec.Command(os.Args[0], "-test.run=^TestRaiseAutogroupPriority$", "-test.v")
		cmd.Env = append(os.Environ(), "REWIND_SYSX_OWN_SESSION=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestRaiseAutogroupPriority") {
			t.Fatalf("in a session of its own: %v\n%s", err, out)
		}
		return
	}
	before := autogroupNice(t)
	want := min(before, -7)
	restore := RaiseAutogroupPriority(-7)
	got := autogroupNice(t)
	restore()
	if got != want {
		t.Fatalf("autogroup nice %d after raising to -7 from %d, want %d", got, before, want)
	}
	if got := autogroupNice(t); got != before {
		t.Fatalf("autogroup nice %d after restore, want %d", got, before)
	}
}

// Outside an autogroup the file is empty: nothing to raise, nothing written.
func TestRaiseAutogroupPriorityNone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "autogroup")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	raiseAutogroupPriority(path, -7)()
	if b, err := os.ReadFile(path); err != nil || len(b) != 0 {
		t.Fatalf("empty autogroup file now %q (%v)", b, err)
	}
}

func TestRaiseThreadPriority(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("lowering a nice value needs CAP_SYS_NICE")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	nice := func() int {
		b, err := os.ReadFile("/proc/thread-self/stat")
		if err != nil {
			t.Fatal(err)
		}
		// Fields after the command's closing parenthesis start at
		// field 3, state; nice is field 19.
		fs := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		n, err := strconv.Atoi(fs[19-3])
		if err != nil {
			t.Fatalf("/proc/thread-self/stat: %q", b)
		}
		return n
	}
	before := nice()
	restore := RaiseThreadPriority(-5)
	got := nice()
	restore()
	if got != -5 {
		t.Fatalf("thread nice %d after raising to -5 (was %d)", got, before)
	}
	if got := nice(); got != before {
		t.Fatalf("thread nice %d after restore, want %d", got, before)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{"0": {0}, "0-3": {0, 1, 2, 3}, "0-1,4,6-7": {0, 1, 4, 6, 7}, "": nil} {
		got, err := parseCPUList(in)
		if err != nil || len(got) != len(want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
			continue
		}
		for _, c := range want {
			if !got[c] {
				t.Errorf("%q: %v lacks %d", in, got, c)
			}
		}
	}
	for _, bad := range []string{"a", "3-1", "0-x"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
