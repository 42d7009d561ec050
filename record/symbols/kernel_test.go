package symbols

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/rewindtrace/rewind/internal/testkernel"
)

const (
	testKallsyms = "ffffffff81000000 T _stext\nffffffff81000100 t do_thing\nffffffff81001000 T _etext\nffffffff82000000 D _sdata\n"
	testModules  = "virtio_net 73728 0 - Live 0xffffffffc0000000\n"
)

// kernelFiles writes a kallsyms and a modules file into a directory of
// their own and returns their paths.
func kernelFiles(t testing.TB, kallsyms, modules string) (string, string) {
	dir := t.TempDir()
	k, m := filepath.Join(dir, "kallsyms"), filepath.Join(dir, "modules")
	write(t, k, kallsyms)
	write(t, m, modules)
	return k, m
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// name looks one address up.
func name(t *testing.T, k *kernel, addr uint64) string {
	t.Helper()
	got, err := k.Symbols(map[uint64]bool{addr: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		return ""
	}
	return got[0].Name
}

// kallsyms is read once, and again when a module comes, goes or moves, or
// the BPF programs change; not when a module's use count does.
func TestKernelRereads(t *testing.T) {
	ks, mods := kernelFiles(t, testKallsyms, testModules)
	k := newKernel(ks, mods)
	bpf := uint64(1)
	k.bpfProgs = func() (uint64, bool) { return bpf, true }
	const fn uint64 = 0xffffffffc0000010

	steps := []struct {
		what    string
		change  func()
		want    string
		rereads bool
	}{
		{"first lookup", func() {}, "", true},
		{"second lookup", func() {}, "", false},
		// kallsyms changes with nothing else: the cached table answers,
		// which shows the file is not read.
		{"kallsyms alone changes", func() { write(t, ks, testKallsyms+"ffffffffc0000000 t mod_fn\t[virtio_net]\n") }, "", false},
		{"a use count changes", func() { write(t, mods, strings.Replace(testModules, " 0 - ", " 3 - ", 1)) }, "", false},
		{"a module loads", func() { write(t, mods, testModules+"nf_tables 368640 0 - Live 0xffffffffc0100000\n") }, "mod_fn", true},
		{"nothing changes", func() {}, "mod_fn", false},
		{"a module moves", func() {
			write(t, ks, testKallsyms+"ffffffffc0200000 t mod_fn\t[virtio_net]\n")
			write(t, mods, "virtio_net 73728 0 - Live 0xffffffffc0200000\nnf_tables 368640 0 - Live 0xffffffffc0100000\n")
		}, "", true},
		{"a BPF program loads", func() {
			write(t, ks, testKallsyms+"ffffffffc0000000 t bpf_prog_0123456789abcdef_f\t[bpf]\n")
			bpf = 2
		}, "bpf_prog_0123456789abcdef_f", true},
		{"BPF programs cannot be listed", func() { k.bpfProgs = func() (uint64, bool) { return 0, false } }, "bpf_prog_0123456789abcdef_f", true},
		{"still cannot", func() {}, "bpf_prog_0123456789abcdef_f", false},
		{"no modules file", func() { os.Remove(mods) }, "bpf_prog_0123456789abcdef_f", true},
		{"still none", func() {}, "bpf_prog_0123456789abcdef_f", false},
	}
	reads := 0
	for _, s := range steps {
		s.change()
		if got := name(t, k, fn); got != s.want {
			t.Errorf("%s: %#x is %q, want %q", s.what, fn, got, s.want)
		}
		if s.rereads {
			reads++
		}
		if k.reads != reads {
			t.Fatalf("%s: kallsyms read %d times, want %d", s.what, k.reads, reads)
		}
	}
}

// With addresses hidden, the empty table is not kept: the next lookup
// reads again, in case they no longer are.
func TestKernelHidden(t *testing.T) {
	hidden := ""
	for line := range strings.Lines(testKallsyms) {
		hidden += "0000000000000000" + line[16:]
	}
	ks, mods := kernelFiles(t, hidden, testModules)
	k := newKernel(ks, mods)
	k.bpfProgs = func() (uint64, bool) { return 0, true }
	for i := 1; i <= 2; i++ {
		if got := name(t, k, 0xffffffff81000150); got != "" || k.reads != i {
			t.Fatalf("lookup %d: %q, %d reads", i, got, k.reads)
		}
	}
	write(t, ks, testKallsyms)
	if got := name(t, k, 0xffffffff81000150); got != "do_thing" || k.reads != 3 {
		t.Fatalf("addresses shown: %q, %d reads", got, k.reads)
	}
}

// Capture shares a kernel per kallsyms path, with the modules file next to
// it: a second capture does not read kallsyms.
func TestCaptureKeepsKernel(t *testing.T) {
	ks, mods := kernelFiles(t, testKallsyms, testModules)
	refs := NewRefs()
	refs.Add(1, 1, []uint64{0xffffffff81000150})
	for i := 0; i < 3; i++ {
		s, err := Capture(refs, ks, "/nonexistent", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Kernel) != 1 || s.Kernel[0].Name != "do_thing" {
			t.Fatalf("capture %d: %+v", i, s.Kernel)
		}
	}
	k := sharedKernel(ks)
	if k.reads != 1 {
		t.Fatalf("kallsyms read %d times in 3 captures", k.reads)
	}
	write(t, mods, "")
	if _, err := Capture(refs, ks, "/nonexistent", nil); err != nil || k.reads != 2 {
		t.Fatalf("after the modules changed: %d reads, %v", k.reads, err)
	}
	if _, err := Capture(refs, filepath.Join(t.TempDir(), "none"), "/nonexistent", nil); err == nil {
		t.Fatal("no error for a missing kallsyms")
	}
}

// Lookups from many goroutines while the modules change: under -race,
// nothing races, every answer is right, and kallsyms is read no more than
// once per change (plus the first).
func TestKernelConcurrent(t *testing.T) {
	ks, mods := kernelFiles(t, testKallsyms, testModules)
	k := newKernel(ks, mods)
	k.bpfProgs = func() (uint64, bool) { return 0, true }
	write(t, ks, testKallsyms+"ffffffffc0000000 t mod_fn\t[virtio_net]\n")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				got, err := k.Symbols(map[uint64]bool{0xffffffff81000150: true, 0xffffffffc0000010: true})
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 || got[0].Name != "do_thing" || len(got) > 2 || len(got) == 2 && got[1].Name != "mod_fn" {
					t.Errorf("%+v", got)
				}
			}
		}()
	}
	const changes = 20
	for i := 0; i < changes; i++ {
		// Written aside and renamed, as a lookup must see each list whole.
		write(t, mods+".new", fmt.Sprintf("%smod%d 4096 0 - Live 0xffffffffc1000000\n", testModules, i))
		if err := os.Rename(mods+".new", mods); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if k.reads < 1 || k.reads > changes+1 {
		t.Errorf("kallsyms read %d times for %d changes", k.reads, changes)
	}
}

// On this kernel: a function's address is named, the second lookup reads
// nothing, and a BPF program loaded in between is found, as "[bpf]".
func TestKernelLive(t *testing.T) {
	testkernel.Require(t)
	k := newKernel("/proc/kallsyms", "/proc/modules")
	b, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	var addr uint64
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) == 3 && f[2] == "schedule" {
			fmt.Sscanf(f[0], "%x", &addr)
		}
	}
	if addr == 0 {
		t.Skip("no schedule in /proc/kallsyms, or addresses hidden")
	}
	bpf0, ok := loadedBPFPrograms()
	if !ok {
		t.Fatal("cannot list BPF programs as root")
	}
	for i := 0; i < 2; i++ {
		if got := name(t, k, addr+1); got != "schedule" {
			t.Fatalf("%#x is %q", addr+1, got)
		}
	}
	// Other processes load and unload BPF programs too (other tests):
	// kallsyms is read once if none did meanwhile.
	if bpf1, _ := loadedBPFPrograms(); bpf1 == bpf0 && k.reads != 1 {
		t.Fatalf("kallsyms read %d times", k.reads)
	}
	reads := k.reads

	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "rewind_symtest", Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	ksyms, ok := info.JitedKsymAddrs()
	if !ok || len(ksyms) == 0 || ksyms[0] == 0 {
		t.Skip("the program has no kernel symbol (JIT off, or bpf_jit_kallsyms 0)")
	}
	got, err := k.Symbols(map[uint64]bool{uint64(ksyms[0]): true})
	if err != nil {
		t.Fatal(err)
	}
	if k.reads == reads || len(got) != 1 || got[0].Module != "bpf" || !strings.HasSuffix(got[0].Name, "_rewind_symtest") {
		t.Fatalf("after loading a BPF program: %d reads, %+v", k.reads, got)
	}
}

// BenchmarkKernelSymbols looks up 1000 addresses of this kernel: "cached"
// is every snapshot after the first, "read" what each paid before (read,
// parse and sort kallsyms).
func BenchmarkKernelSymbols(b *testing.B) {
	k := newKernel("/proc/kallsyms", "/proc/modules")
	t, err := k.current()
	if err != nil || len(t.start) == 0 {
		b.Skip("kallsyms unreadable or hidden")
	}
	addrs := map[uint64]bool{}
	for i := 0; i < len(t.start) && len(addrs) < 1000; i += len(t.start)/1000 + 1 {
		addrs[t.start[i]+1] = true
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := k.Symbols(addrs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := newKernel("/proc/kallsyms", "/proc/modules").Symbols(addrs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
