package symbols

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/rewindtrace/rewind/internal/elfid"
	"github.com/rewindtrace/rewind/snapshot"
)

func TestKernelSymbols(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kallsyms")
	os.WriteFile(path, []byte(strings.Join([]string{
		"ffffffff81000000 T _stext",
		"ffffffff81000100 t do_thing",
		"ffffffff81000200 D some_data",
		"ffffffff81000300 D data_first",
		"ffffffff81000300 t fn_after_data",
		"ffffffffc0000000 t mod_fn\t[virtio_net]",
		"0000000000000000 T hidden",
	}, "\n")), 0o644)
	k := newKernel(path, filepath.Join(dir, "modules"))
	got, err := k.Symbols(map[uint64]bool{0xffffffff81000150: true, 0xffffffff81000180: true, 0xffffffff81000250: true,
		0xffffffff81000301: true, 0xffffffffc0000010: true, 0x10: true})
	if err != nil {
		t.Fatal(err)
	}
	// do_thing once for both of its addresses; none for the data symbol
	// nor below the first symbol; a function sharing an address with data
	// names it.
	want := []snapshot.KernelSymbol{
		{Start: 0xffffffff81000100, End: 0xffffffff81000200, Name: "do_thing"},
		{Start: 0xffffffff81000300, End: 0xffffffffc0000000, Name: "fn_after_data"},
		{Start: 0xffffffffc0000000, End: ^uint64(0), Name: "mod_fn", Module: "virtio_net"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// The test binary is ELF and a Go binary: it has a build id.
func TestBuildID(t *testing.T) {
	id := elfid.BuildID(os.Args[0])
	if !strings.HasPrefix(id, "go:") && !strings.HasPrefix(id, "gnu:") {
		t.Fatalf("build id of %s: %q", os.Args[0], id)
	}
	if elfid.BuildID("/etc/hostname") != "" {
		t.Fatal("a build id for a text file")
	}
	var c BuildIDs
	if c.Get(os.Args[0], "k") != id || c.Get("/nonexistent", "k") != id {
		t.Fatal("cache by key")
	}
	// Safe for concurrent use: under -race, goroutines filling and reading
	// one cache get each key's id.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				key := fmt.Sprint((g + i) % 10)
				if got := c.Get(os.Args[0], key); got != id {
					t.Errorf("key %s: %q", key, got)
				}
			}
		}()
	}
	wg.Wait()
}

// This process's own mappings: its executable is among them, with its id.
func TestProcessMaps(t *testing.T) {
	maps, err := processMaps("/proc", uint32(os.Getpid()), &BuildIDs{})
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	for _, m := range maps {
		if m.Path == exe {
			if m.BuildID == "" && os.Geteuid() == 0 {
				t.Errorf("no build id for %s", m.Path)
			}
			return
		}
	}
	t.Fatalf("%s not in %+v", exe, maps)
}
