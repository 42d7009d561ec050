package crash

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rewindtrace/rewind/internal/testkernel"
)

// The test binary doubles as the handler the kernel runs ("crash handle
// --state FILE SPECIFIERS...", as the installed pattern says) and as a
// previous pipe handler to chain to ("chainsink FILE": the core into
// FILE).
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "crash" && os.Args[2] == "handle" {
		args := os.Args[3:]
		state := DefaultState
		if len(args) > 1 && args[0] == "--state" {
			state, args = args[1], args[2:]
		}
		if _, err := Handle(state, args, os.Stdin); err != nil {
			Log("%v", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 2 && os.Args[1] == "chainsink" {
		f, err := os.Create(os.Args[2] + ".tmp")
		if err == nil {
			io.Copy(f, os.Stdin)
			f.Close()
			os.Rename(os.Args[2]+".tmp", os.Args[2])
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// recoverStale puts back the pattern a killed test run left installed,
// from the state file it names.
func recoverStale(t *testing.T) {
	p, err := ReadPattern(PatternFile)
	if err != nil {
		t.Fatal(err)
	}
	if !IsOurs(p) {
		return
	}
	f := strings.Fields(p)
	for i := range f {
		if f[i] == "--state" && i+1 < len(f) {
			if st, err := Uninstall(f[i+1], PatternFile, true); err == nil {
				t.Logf("put back %q that a killed run left replaced", st.Previous)
				return
			}
		}
	}
	t.Fatalf("core_pattern is %q, a rewind handler whose state is gone: put the machine's pattern back by hand", p)
}

// install installs the test binary as the handler with a state file and
// records in a directory of the test's, and puts the pattern back when
// the test ends or the process is interrupted.
func install(t *testing.T, o Options) (*State, string) {
	t.Helper()
	testkernel.Require(t)
	recoverStale(t)
	before, err := ReadPattern(PatternFile)
	if err != nil {
		t.Fatal(err)
	}
	// Short paths: the kernel keeps 127 bytes of pattern.
	dir, err := os.MkdirTemp("", "rwc")
	if err != nil {
		t.Fatal(err)
	}
	o.Rewind, o.State, o.Dir = handlerCopy(t, dir), filepath.Join(dir, "state.json"), filepath.Join(dir, "crashes")
	st, err := Install(o)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restore := func() {
		once.Do(func() {
			if _, err := Uninstall(o.State, PatternFile, true); err != nil {
				t.Errorf("restore core_pattern: %v", err)
			}
			if p, _ := ReadPattern(PatternFile); p != before {
				t.Errorf("core_pattern is %q after the test, was %q", p, before)
			}
			os.RemoveAll(dir)
		})
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			restore()
			fmt.Fprintf(os.Stderr, "%v: core_pattern put back\n", sig)
			os.Exit(1)
		case <-done:
		}
	}()
	t.Cleanup(func() {
		signal.Stop(sigs)
		close(done)
		restore()
	})
	return st, dir
}

// handlerCopy copies the test binary, the handler, to dir/h.
func handlerCopy(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	h := filepath.Join(dir, "h")
	if err := os.WriteFile(h, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

// build compiles a test program with symbols.
func build(t *testing.T, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	if b, err := exec.Command("gcc", "-g", "-O0", "-o", out, filepath.Join("testdata", name+".c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v: %s", name, err, b)
	}
	return out
}

// crash runs a program that crashes, with the core size limit given, and
// returns its pid.
func crash(t *testing.T, prog string, coreLimit string) int {
	t.Helper()
	cmd := exec.Command("sh", "-c", "ulimit -c "+coreLimit+"; exec "+prog)
	err := cmd.Run()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ok || !ws.Signaled() {
		t.Fatalf("%s did not die by a signal: %v", prog, err)
	}
	return cmd.ProcessState.Pid()
}

// waitRecord waits for the record of pid.
func waitRecord(t *testing.T, dir string, pid int) *Record {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs, err := List(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.PID == pid {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no crash record of pid %d after 30s (%d records)", pid, len(recs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// core decompresses a record's core into a file and checks it is an ELF
// core.
func core(t *testing.T, dir string, r *Record) string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, r.ID, r.Core.File))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	out := filepath.Join(t.TempDir(), "core")
	w, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(w, dec)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if uint64(n) != r.Core.Saved {
		t.Fatalf("core.zst holds %d bytes, the record says %d", n, r.Core.Saved)
	}
	e, err := elf.Open(out)
	if err != nil {
		t.Fatalf("the core is not ELF: %v", err)
	}
	defer e.Close()
	if e.Type != elf.ET_CORE {
		t.Fatalf("the core is ELF of type %v, want ET_CORE", e.Type)
	}
	return out
}

// TestCrashRecords installs the handler, crashes a program with SIGSEGV
// and one with abort(): each has a record whose core is an ELF core in
// which gdb finds the crashing function; then uninstall restores the
// pattern byte for byte.
func TestCrashRecords(t *testing.T) {
	if _, err := exec.LookPath("gdb"); err != nil {
		if os.Getenv("REWIND_REQUIRE_KERNEL") == "1" {
			t.Fatal("gdb not found; `make test` installs it (scripts/deps.sh test)")
		}
		t.Skip("no gdb")
	}
	st, tmp := install(t, Options{})
	if p, _ := ReadPattern(PatternFile); p != st.Pattern || !IsOurs(p) {
		t.Fatalf("core_pattern %q after install, want %q", p, st.Pattern)
	}
	dir := filepath.Join(tmp, "crashes")
	for _, c := range []struct {
		prog, fn string
		sig      syscall.Signal
	}{{"segv", "crash_here", syscall.SIGSEGV}, {"abort", "abort_here", syscall.SIGABRT}} {
		prog := build(t, c.prog)
		pid := crash(t, prog, "unlimited")
		r := waitRecord(t, dir, pid)
		if r.Signal != int(c.sig) || r.Exe != prog || r.Core.File == "" || r.Core.Truncated || len(r.Errors) > 0 {
			t.Fatalf("%s: record %+v", c.prog, r)
		}
		if len(r.Cmdline) != 1 || r.Cmdline[0] != prog {
			t.Errorf("%s: cmdline %q", c.prog, r.Cmdline)
		}
		for _, f := range []string{"status", "maps", "limits", "cgroup", "fd"} {
			if _, err := os.Stat(filepath.Join(dir, r.ID, "proc", f)); err != nil {
				t.Errorf("%s: proc/%s: %v", c.prog, f, err)
			}
		}
		fault, err := ReadFault(dir, r)
		if err != nil {
			t.Fatalf("%s: %v", c.prog, err)
		}
		// abort() raises the signal in libc: the program's own function
		// is the caller found on the stack.
		if fault.Func != c.fn && fault.Caller != c.fn {
			t.Errorf("%s: the core's pc %#x is in %q, called from %q; want %s", c.prog, fault.PC, fault.Func, fault.Caller, c.fn)
		}
		if c.sig == syscall.SIGSEGV && (!fault.HasAddr || fault.Addr != 0) {
			t.Errorf("%s: fault address %#x (has %v), want 0: the null pointer written through", c.prog, fault.Addr, fault.HasAddr)
		}
		var show strings.Builder
		if err := Show(&show, dir, r); err != nil {
			t.Fatal(err)
		}
		wants := []string{fmt.Sprintf("%s (%d)", map[syscall.Signal]string{syscall.SIGSEGV: "SIGSEGV", syscall.SIGABRT: "SIGABRT"}[c.sig], c.sig), c.fn, "gdb " + prog}
		if c.sig == syscall.SIGSEGV {
			wants = append(wants, "fault address 0x0")
		}
		for _, want := range wants {
			if !strings.Contains(show.String(), want) {
				t.Errorf("%s: crash show lacks %q:\n%s", c.prog, want, show.String())
			}
		}
		out, err := exec.Command("gdb", "-batch", "-ex", "bt", prog, core(t, dir, r)).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte(c.fn)) {
			t.Errorf("%s: gdb bt does not show %s (%v):\n%s", c.prog, c.fn, err, out)
		}
	}
}

// TestCrashWithoutCore: with RLIMIT_CORE at 0 the record has the process's
// state and says why it has no core.
func TestCrashWithoutCore(t *testing.T) {
	_, tmp := install(t, Options{})
	dir := filepath.Join(tmp, "crashes")
	pid := crash(t, build(t, "segv"), "0")
	r := waitRecord(t, dir, pid)
	if r.Core.File != "" || !strings.Contains(r.Core.Dropped, "RLIMIT_CORE") || len(r.Cmdline) == 0 {
		t.Errorf("record %+v: want no core, saying RLIMIT_CORE, and the command line", r)
	}
}

// TestCrashBoundedCore: a core larger than max_core is cut there, and the
// record says so; a chained pipe handler still gets all of it.
func TestCrashBoundedCore(t *testing.T) {
	testkernel.Require(t)
	short, err := os.MkdirTemp("", "rwc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	sink := filepath.Join(short, "core")
	self := handlerCopy(t, short)
	recoverStale(t)
	before, err := ReadPattern(PatternFile)
	if err != nil {
		t.Fatal(err)
	}
	// The previous pattern is a pipe handler of our own.
	if err := writePattern(PatternFile, "|"+self+" chainsink "+sink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := writePattern(PatternFile, before); err != nil {
			t.Errorf("restore core_pattern: %v", err)
		}
	})
	_, tmp := install(t, Options{MaxCore: 1 << 20, Chain: true})
	dir := filepath.Join(tmp, "crashes")
	pid := crash(t, build(t, "big"), "unlimited")
	r := waitRecord(t, dir, pid)
	if !r.Core.Truncated || r.Core.Saved != 1<<20 || r.Core.Bytes <= 64<<20 {
		t.Errorf("core %+v: want 1 MiB saved of a core over 64 MiB", r.Core)
	}
	if r.Chain == nil || r.Chain.Error != "" || r.Chain.Bytes != r.Core.Bytes {
		t.Fatalf("chain %+v: want the whole core of %d bytes", r.Chain, r.Core.Bytes)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		fi, err := os.Stat(sink)
		if err == nil {
			if uint64(fi.Size()) != r.Core.Bytes {
				t.Errorf("the chained handler got %d bytes of the %d-byte core", fi.Size(), r.Core.Bytes)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the chained handler wrote nothing in 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCrashStorm: 20 processes crash at once; each has a record, with a
// core or the reason it has none (the storm limit).
func TestCrashStorm(t *testing.T) {
	_, tmp := install(t, Options{})
	dir := filepath.Join(tmp, "crashes")
	prog := build(t, "segv")
	const n = 20
	pids := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("sh", "-c", "ulimit -c unlimited; exec "+prog)
			cmd.Run()
			pids <- cmd.ProcessState.Pid()
		}()
	}
	wg.Wait()
	close(pids)
	saved, dropped := 0, 0
	for pid := range pids {
		r := waitRecord(t, dir, pid)
		switch {
		case r.Core.File != "":
			saved++
		case strings.Contains(r.Core.Dropped, "crash storm"):
			dropped++
		default:
			t.Errorf("record of pid %d: neither a core nor a storm reason: %+v", pid, r.Core)
		}
	}
	if saved != StormCores || dropped != n-StormCores {
		t.Errorf("%d cores saved and %d dropped, want %d and %d", saved, dropped, StormCores, n-StormCores)
	}
}

// TestInstallErrors: a second install is refused, uninstall without
// install says so, and a pattern changed behind the handler's back is
// left alone without --force.
func TestInstallErrors(t *testing.T) {
	st, tmp := install(t, Options{})
	if _, err := Install(Options{Rewind: filepath.Join(tmp, "h"), State: filepath.Join(tmp, "other.json"), Dir: tmp}); err == nil || !strings.Contains(err.Error(), "installed already") {
		t.Errorf("second install: %v", err)
	}
	if _, err := Uninstall(filepath.Join(tmp, "none.json"), PatternFile, false); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Errorf("uninstall without install: %v", err)
	}
	if err := writePattern(PatternFile, "core.%p"); err != nil {
		t.Fatal(err)
	}
	if _, err := Uninstall(filepath.Join(tmp, "state.json"), PatternFile, false); err == nil || !strings.Contains(err.Error(), "someone changed it") {
		t.Errorf("uninstall over a changed pattern: %v", err)
	}
	if p, _ := ReadPattern(PatternFile); p != "core.%p" {
		t.Errorf("uninstall without --force changed the pattern to %q", p)
	}
	_ = st
	if _, err := Install(Options{Rewind: "/a path/rewind", State: filepath.Join(tmp, "x.json"), Dir: tmp}); err == nil {
		t.Error("a rewind path with a space was accepted")
	}
	if _, err := ParseArgs([]string{"1", "2"}); err == nil {
		t.Error("two arguments accepted")
	}
}

// TestExpand fills a chained pattern's specifiers as the kernel would.
func TestExpand(t *testing.T) {
	a, err := ParseArgs([]string{"10", "11", "6", "1700000000", "1000", "100", "1", "18446744073709551615", "!usr!bin!app"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Exe != "/usr/bin/app" || a.CoreLimit != 1<<64-1 || a.Signal != 6 {
		t.Fatalf("args %+v", a)
	}
	if got, want := expand("core.%e.%p.%i.%s.%t.%u.%g.%d.%E.%%", a), "core.app.10.11.6.1700000000.1000.100.1.!usr!bin!app.%"; got != want {
		t.Errorf("expand: %q, want %q", got, want)
	}
}

// Helpers for the tests of package crash_test, which may import the
// daemon (package crash may not: the daemon imports it).
var (
	InstallForTest = install
	BuildForTest   = build
	CrashForTest   = crash
	WaitForTest    = waitRecord
)
