package retention

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/snaptest"
)

// now is the tests' present; snapshots are dated before it.
var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// writeSnap writes a real, small snapshot at path, modified at mtime, and
// returns its size.
func writeSnap(t *testing.T, path string, mtime time.Time) uint64 {
	t.Helper()
	s, err := schema.New(snaptest.SyscallEvents())
	if err != nil {
		t.Fatal(err)
	}
	w, err := snapshot.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMeta(&snapshot.Meta{Host: "test", Clock: "boottime"}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteSchema(s); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return w.Size()
}

// names lists dir's entries.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestApplyCaps(t *testing.T) {
	size := writeSnap(t, filepath.Join(t.TempDir(), "size.rwd"), now)
	hours := func(h int) time.Time { return now.Add(-time.Duration(h) * time.Hour) }
	for _, tc := range []struct {
		name   string
		policy Policy
		mtimes map[string]time.Time // every file a snapshot
		keep   []string
	}{
		{"none", Policy{},
			map[string]time.Time{"a.rwd": hours(5), "b.rwd": hours(4)},
			[]string{"a.rwd", "b.rwd"}},
		{"count", Policy{MaxFiles: 2},
			map[string]time.Time{"a.rwd": hours(1), "b.rwd": hours(5), "c.rwd": hours(3), "d.rwd": hours(2), "e.rwd": hours(4)},
			[]string{"a.rwd", "d.rwd"}},
		{"bytes", Policy{MaxBytes: 3*size + size/2},
			map[string]time.Time{"a.rwd": hours(5), "b.rwd": hours(4), "c.rwd": hours(3), "d.rwd": hours(2), "e.rwd": hours(1)},
			[]string{"c.rwd", "d.rwd", "e.rwd"}},
		{"bytes exact", Policy{MaxBytes: 2 * size},
			map[string]time.Time{"a.rwd": hours(3), "b.rwd": hours(2), "c.rwd": hours(1)},
			[]string{"b.rwd", "c.rwd"}},
		{"bytes below one", Policy{MaxBytes: size - 1},
			map[string]time.Time{"a.rwd": hours(2), "b.rwd": hours(1)},
			nil},
		{"age", Policy{MaxAge: 150 * time.Minute},
			map[string]time.Time{"a.rwd": hours(4), "b.rwd": hours(3), "c.rwd": hours(2), "d.rwd": hours(1), "e.rwd": now.Add(time.Hour)},
			[]string{"c.rwd", "d.rwd", "e.rwd"}},
		// Ties on the modification time go by name.
		{"ties", Policy{MaxFiles: 1},
			map[string]time.Time{"b.rwd": hours(1), "a.rwd": hours(1), "c.rwd": hours(1)},
			[]string{"c.rwd"}},
		// Each cap removes what it must; the strictest wins.
		{"age strictest", Policy{MaxFiles: 4, MaxBytes: 3 * size, MaxAge: 90 * time.Minute},
			map[string]time.Time{"a.rwd": hours(6), "b.rwd": hours(5), "c.rwd": hours(4), "d.rwd": hours(3), "e.rwd": hours(1), "f.rwd": hours(0)},
			[]string{"e.rwd", "f.rwd"}},
		{"bytes strictest", Policy{MaxFiles: 4, MaxBytes: 3 * size, MaxAge: 10 * time.Hour},
			map[string]time.Time{"a.rwd": hours(6), "b.rwd": hours(5), "c.rwd": hours(4), "d.rwd": hours(3), "e.rwd": hours(1), "f.rwd": hours(0)},
			[]string{"d.rwd", "e.rwd", "f.rwd"}},
		{"count strictest", Policy{MaxFiles: 2, MaxBytes: 3 * size, MaxAge: 10 * time.Hour},
			map[string]time.Time{"a.rwd": hours(6), "b.rwd": hours(5), "c.rwd": hours(4), "d.rwd": hours(3), "e.rwd": hours(1), "f.rwd": hours(0)},
			[]string{"e.rwd", "f.rwd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, mtime := range tc.mtimes {
				writeSnap(t, filepath.Join(dir, name), mtime)
			}
			res, err := Apply(dir, tc.policy, now)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(t, dir); !slices.Equal(got, tc.keep) {
				t.Errorf("kept %v, want %v", got, tc.keep)
			}
			removed := len(tc.mtimes) - len(tc.keep)
			if len(res.Removed) != removed || res.RemovedBytes != uint64(removed)*size {
				t.Errorf("removed %d files, %d bytes; want %d, %d", len(res.Removed), res.RemovedBytes, removed, uint64(removed)*size)
			}
			if res.Files != len(tc.keep) || res.Bytes != uint64(len(tc.keep))*size || res.Others != 0 || !res.Met {
				t.Errorf("result %+v; want %d files of %d bytes left, caps met", res, len(tc.keep), size)
			}
			// Oldest first.
			for i := 1; i < len(res.Removed); i++ {
				a, b := tc.mtimes[filepath.Base(res.Removed[i-1])], tc.mtimes[filepath.Base(res.Removed[i])]
				if a.After(b) || a.Equal(b) && res.Removed[i-1] > res.Removed[i] {
					t.Errorf("removed %v, not oldest first", res.Removed)
				}
			}
		})
	}
}

// Files rewind did not write survive any cap, and count towards none.
func TestApplyLeavesOthersAlone(t *testing.T) {
	dir := t.TempDir()
	elsewhere := t.TempDir()
	old := now.Add(-24 * time.Hour)
	writeSnap(t, filepath.Join(dir, "mine.rwd"), old)
	real := filepath.Join(elsewhere, "target.rwd")
	writeSnap(t, real, old)
	content, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	others := map[string]func(path string) error{
		"wrong-magic.rwd": func(p string) error { return os.WriteFile(p, []byte("PK\x03\x04 not a snapshot at all"), 0o644) },
		"short.rwd":       func(p string) error { return os.WriteFile(p, content[:4], 0o644) },
		"empty.rwd":       func(p string) error { return os.WriteFile(p, nil, 0o644) },
		"link.rwd":        func(p string) error { return os.Symlink(real, p) },
		"dangling.rwd":    func(p string) error { return os.Symlink(filepath.Join(elsewhere, "gone.rwd"), p) },
		"snapshot.bak":    func(p string) error { return os.WriteFile(p, content, 0o644) },
		"notes.txt":       func(p string) error { return os.WriteFile(p, []byte("hello"), 0o644) },
		"dir.rwd":         func(p string) error { return os.Mkdir(p, 0o755) },
		// A FIFO is what would hang a careless open.
		"fifo.rwd": func(p string) error { return syscall.Mkfifo(p, 0o644) },
		// A snapshot being written, as snapshot.Create and atomicfile name it.
		".mine2.rwd.123456.tmp": func(p string) error { return os.WriteFile(p, content, 0o644) },
	}
	for name, make := range others {
		p := filepath.Join(dir, name)
		if err := make(p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		os.Chtimes(p, old, old)
	}
	res, err := Apply(dir, Policy{MaxFiles: 1, MaxBytes: 1, MaxAge: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || filepath.Base(res.Removed[0]) != "mine.rwd" {
		t.Errorf("removed %v, want mine.rwd alone", res.Removed)
	}
	if res.Files != 0 || res.Bytes != 0 || res.Others != len(others) || !res.Met {
		t.Errorf("result %+v; want no snapshot left, %d others, caps met", res, len(others))
	}
	got := names(t, dir)
	for name := range others {
		if !slices.Contains(got, name) {
			t.Errorf("%s deleted", name)
		}
	}
	if b, err := os.ReadFile(real); err != nil || len(b) != len(content) {
		t.Errorf("link target: %d bytes, %v", len(b), err)
	}
}

// Over 50 snapshots taken one a minute, Apply after each keeps the caps
// and the newest files, as each cap in turn is the strictest.
func TestApplyFiftySnapshots(t *testing.T) {
	dir := t.TempDir()
	writeSnap(t, filepath.Join(dir, "foreign.rwd.keep"), now)
	var removed int
	for i := range 50 {
		at := now.Add(time.Duration(i) * time.Minute)
		// Named so that the name order is not the age order.
		size := writeSnap(t, filepath.Join(dir, fmt.Sprintf("snap-%02d.rwd", (i*7)%50)), at)
		p, want := Policy{MaxFiles: 10}, min(i+1, 10)
		if i >= 15 {
			p.MaxAge, want = 4*time.Minute+30*time.Second, 5
		}
		if i >= 30 {
			p.MaxBytes, want = 3*size+1, 3
		}
		res, err := Apply(dir, p, at)
		if err != nil {
			t.Fatal(err)
		}
		removed += len(res.Removed)
		if res.Files != want || res.Bytes != uint64(want)*size || res.Others != 1 || !res.Met {
			t.Fatalf("after snapshot %d: %+v, want %d files", i, res, want)
		}
		for k := range want {
			name := fmt.Sprintf("snap-%02d.rwd", ((i-k)*7)%50)
			if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
				t.Fatalf("after snapshot %d: the newest but %d (%s) is gone: %v", i, k, name, err)
			}
		}
		if got := len(names(t, dir)); got != want+1 {
			t.Fatalf("after snapshot %d: %d entries, want %d snapshots and the foreign file", i, got, want)
		}
	}
	if removed != 50-3 {
		t.Errorf("removed %d snapshots in all, want %d", removed, 50-3)
	}
}

// A snapshot that cannot be deleted is skipped, reported, and leaves the
// caps unmet; its newer neighbours go in its stead.
func TestApplyCannotDelete(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a read-only mount")
	}
	dir := t.TempDir()
	size := writeSnap(t, filepath.Join(dir, "a.rwd"), now.Add(-3*time.Hour))
	writeSnap(t, filepath.Join(dir, "b.rwd"), now.Add(-2*time.Hour))
	writeSnap(t, filepath.Join(dir, "c.rwd"), now.Add(-time.Hour))
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	res, err := Apply(dir, Policy{MaxFiles: 1, MaxAge: 90 * time.Minute}, now)
	if err == nil || !errors.Is(err, syscall.EROFS) {
		t.Errorf("Apply: %v, want the read-only file system's error", err)
	}
	t.Logf("Apply: %v", err)
	if len(res.Removed) != 0 || res.Files != 3 || res.Bytes != 3*size || res.Met {
		t.Errorf("result %+v; want nothing removed, 3 files left, caps unmet", res)
	}
	if got := names(t, dir); len(got) != 3 {
		t.Errorf("left %v", got)
	}
}
