package symbolize

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rewindtrace/rewind/internal/elfid"
	"github.com/rewindtrace/rewind/record/symbols"
	"github.com/rewindtrace/rewind/snapshot"
)

const cSource = `
__attribute__((noinline)) int rw_alpha(int x) { return x * 3 + 1; }
__attribute__((noinline)) int rw_beta(int x) { return rw_alpha(x) + rw_alpha(x + 1); }
int main(int argc, char **argv) { return rw_beta(argc) & 1; }
`

// build compiles cSource with a GNU build id.
func build(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc")
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "p.c"), filepath.Join(dir, "p")
	if err := os.WriteFile(src, []byte(cSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-O1", "-Wl,--build-id=sha1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

// symbol returns the value and size of the function name in path.
func symbol(t *testing.T, path, name string) (uint64, uint64) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s.Value, s.Size
		}
	}
	t.Fatalf("%s: no symbol %s", path, name)
	return 0, 0
}

// mapAt maps path's executable segment at base as the kernel would, and
// returns the mapping and a function turning a virtual address of the
// file into the process's address.
func mapAt(t *testing.T, path string, base uint64) (snapshot.Mapping, func(uint64) uint64) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 {
			continue
		}
		off := p.Off &^ 0xfff
		m := snapshot.Mapping{Start: base, End: base + (p.Off - off) + p.Memsz, Offset: off, Path: path, BuildID: elfid.BuildID(path)}
		return m, func(vaddr uint64) uint64 { return base + vaddr - p.Vaddr + p.Off - off }
	}
	t.Fatalf("%s: no executable segment", path)
	return snapshot.Mapping{}, nil
}

func TestUserFramesFromELFSymbols(t *testing.T) {
	bin := build(t)
	m, addr := mapAt(t, bin, 0x5555_0000_0000)
	if !strings.HasPrefix(m.BuildID, "gnu:") {
		t.Fatalf("build id %q, want gnu:...", m.BuildID)
	}
	alpha, alphaSize := symbol(t, bin, "rw_alpha")
	beta, _ := symbol(t, bin, "rw_beta")
	s := New(&snapshot.Symbols{Procs: []snapshot.ProcMaps{{PID: 7, Maps: []snapshot.Mapping{m}}}})

	for _, c := range []struct {
		name string
		pid  uint32
		addr uint64
		leaf bool
		want string
	}{
		{"leaf at a function's start", 7, addr(beta), true, "rw_beta"},
		{"leaf inside", 7, addr(alpha + 1), true, "rw_alpha"},
		// A return address just past a function's last byte is a call at
		// its end: looked up one byte back.
		{"return address past the end", 7, addr(alpha + alphaSize), false, "rw_alpha"},
		{"other process", 8, addr(beta), true, ""},
	} {
		f := s.User(c.pid, c.addr, c.leaf)
		if f.Func != c.want {
			t.Errorf("%s: %#x named %q, want %q", c.name, c.addr, f.Func, c.want)
		}
		if f.Addr != c.addr || f.Kernel {
			t.Errorf("%s: frame %+v", c.name, f)
		}
	}
	if f := s.User(7, m.End+4096, true); f.Func != "" || f.Module != "" || f.String() != fmt.Sprintf("%#x", m.End+4096) {
		t.Errorf("unmapped address: %+v (%q)", f, f.String())
	}
}

func TestUserFramesNeedTheSameFile(t *testing.T) {
	bin := build(t)
	m, addr := mapAt(t, bin, 0x1000_0000)
	beta, _ := symbol(t, bin, "rw_beta")
	m.BuildID = "gnu:00112233" // the process mapped another file of that name
	s := New(&snapshot.Symbols{Procs: []snapshot.ProcMaps{{PID: 1, Maps: []snapshot.Mapping{m}}}})
	f := s.User(1, addr(beta), true)
	if f.Func != "" || f.Module != bin {
		t.Fatalf("frame of a different file: %+v, want no name, module %s", f, bin)
	}
	if want := bin + "+0x"; !strings.HasPrefix(f.String(), want) {
		t.Errorf("String() = %q, want %s...", f.String(), want)
	}

	// A copy of the filesystem under Root.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, filepath.Dir(bin)), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, bin), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	m.BuildID = elfid.BuildID(filepath.Join(root, bin))
	s = New(&snapshot.Symbols{Procs: []snapshot.ProcMaps{{PID: 1, Maps: []snapshot.Mapping{m}}}})
	s.Root = root
	if f := s.User(1, addr(beta), true); f.Func != "rw_beta" {
		t.Errorf("under Root: %+v, want rw_beta", f)
	}
}

//go:noinline
func knownFunction(x int) int { return x*7 + 3 }

// TestStrippedGoBinary names a frame of this process, as its mappings
// are captured for a snapshot, from a stripped copy of its executable:
// a Go binary with no symbol table is named from its pc table.
func TestStrippedGoBinary(t *testing.T) {
	if _, err := exec.LookPath("strip"); err != nil {
		t.Skip("no strip")
	}
	const name = "github.com/rewindtrace/rewind/internal/symbolize.knownFunction"
	pc := reflect.ValueOf(knownFunction).Pointer()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	refs := symbols.NewRefs()
	pid := uint32(os.Getpid())
	refs.Add(pid, 0, []uint64{uint64(pc)})
	syms, err := symbols.Capture(refs, "/proc/kallsyms", "/proc", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := syms.Mapping(pid, uint64(pc)); m == nil || m.Path != self || m.BuildID == "" {
		t.Fatalf("mapping of %#x: %+v, want %s with a build id", pc, m, self)
	}

	root := t.TempDir()
	copyPath := filepath.Join(root, self)
	if err := os.MkdirAll(filepath.Dir(copyPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("strip", "-o", copyPath, self).CombinedOutput(); err != nil {
		t.Fatalf("strip: %v\n%s", err, out)
	}
	ef, err := elf.Open(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	_, serr := ef.Symbols()
	ef.Close()
	if serr == nil {
		t.Fatal("strip left a symbol table")
	}
	s := New(syms)
	s.Root = root
	if f := s.User(pid, uint64(pc)+2, true); f.Func != name {
		t.Errorf("stripped Go binary: %+v, want %s", f, name)
	}
	if f := s.User(pid, uint64(pc)+2, false); f.Func != name {
		t.Errorf("return address: %+v, want %s", f, name)
	}
}

func TestKernelFrames(t *testing.T) {
	s := New(&snapshot.Symbols{Kernel: []snapshot.KernelSymbol{
		{Start: 0xffffffff81000000, End: 0xffffffff81000100, Name: "do_one"},
		{Start: 0xffffffff81000100, End: 0xffffffff81000180, Name: "do_two"},
		{Start: 0xffffffffc0000000, End: 0xffffffffc0000040, Name: "mod_fn", Module: "loop"},
	}})
	for _, c := range []struct {
		addr       uint64
		fn, module string
		str        string
	}{
		{0xffffffff81000000, "do_one", "", "do_one"},
		{0xffffffff810000ff, "do_one", "", "do_one"},
		{0xffffffff81000100, "do_two", "", "do_two"},
		{0xffffffffc0000010, "mod_fn", "loop", "mod_fn"},
		{0xffffffff81000180, "", "", "0xffffffff81000180"},
		{0xffffffff80000000, "", "", "0xffffffff80000000"},
	} {
		f := s.Kernel(c.addr)
		if f.Func != c.fn || f.Module != c.module || !f.Kernel || f.String() != c.str {
			t.Errorf("%#x: %+v (%q), want %q in %q", c.addr, f, f.String(), c.fn, c.module)
		}
	}
}
