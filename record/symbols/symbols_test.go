package symbols

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewindtrace/rewind/internal/elfid"
)

func TestKernelSymbols(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kallsyms")
	os.WriteFile(path, []byte(strings.Join([]string{
		"ffffffff81000000 T _stext",
		"ffffffff81000100 t do_thing",
		"ffffffff81000200 D some_data",
		"ffffffffc0000000 t mod_fn\t[virtio_net]",
		"0000000000000000 T hidden",
	}, "\n")), 0o644)
	got, err := kernelSymbols(path, map[uint64]bool{0xffffffff81000150: true, 0xffffffff81000180: true, 0xffffffff81000250: true, 0xffffffffc0000010: true})
	if err != nil {
		t.Fatal(err)
	}
	// do_thing once for both of its addresses; none for the data symbol.
	if len(got) != 2 || got[0].Name != "do_thing" || got[0].End != 0xffffffff81000200 || got[1].Name != "mod_fn" || got[1].Module != "virtio_net" {
		t.Fatalf("%+v", got)
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
