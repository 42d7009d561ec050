package sysx

import (
	"os"
	"runtime"
	"strconv"
	"strings"
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
	before := autogroupNice(t)
	if os.Geteuid() != 0 {
		t.Skip("lowering a nice value needs CAP_SYS_NICE")
	}
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
