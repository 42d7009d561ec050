package record

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/internal/testkernel"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/snaptest"
)

// tmpfsSize is the size of the file system the disk-full test fills.
const tmpfsSize = 256 << 10

// mountTmpfs mounts a tmpfs of opts on a new directory and unmounts it when
// the test ends, lazily if it is busy.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "full")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Logf("unmount %s: %v; detaching it", dir, err)
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		}
	})
	return dir
}

// A snapshot larger than the room left fails with the file system's error,
// naming where it was going, and leaves nothing behind; once there is room
// the next one is written whole.
func TestDiskFull(t *testing.T) {
	testkernel.Require(t)
	const n = 300000
	ch := startChild(t, n, -1)
	rec, err := Start(Config{Events: []string{"syscalls"}, BufferSize: 64 << 20, PIDs: []uint32{uint32(ch.cmd.Process.Pid)}, Counters: []string{"none"}, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ch.run(t)
	dir := mountTmpfs(t, "size=256k")
	ctx := context.Background()

	_, err = rec.Snapshot(ctx, SnapshotRequest{Dir: dir, Trigger: manual})
	t.Logf("snapshot into a full file system: %v", err)
	switch {
	case err == nil:
		t.Fatalf("snapshot fitted in %d bytes; record more", tmpfsSize)
	case !errors.Is(err, syscall.ENOSPC):
		t.Errorf("error %q, want ENOSPC", err)
	case !strings.Contains(err.Error(), "no space left on device"):
		t.Errorf("error %q does not say the device is full", err)
	case !strings.Contains(err.Error(), filepath.Join(dir, "rewind-")) || strings.Contains(err.Error(), ".tmp"):
		t.Errorf("error %q does not name the snapshot in %s", err, dir)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		for _, e := range ents {
			t.Errorf("left behind: %s", e.Name())
		}
		if err != nil {
			t.Error(err)
		}
	}
	st, err := rec.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshots.Failed != 1 || !strings.Contains(st.Snapshots.LastError, "no space left on device") {
		t.Errorf("snapshot stats %+v, want the failure counted with its error", st.Snapshots)
	}

	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT, "size=64m"); err != nil {
		t.Fatalf("enlarge tmpfs: %v", err)
	}
	res, err := rec.Snapshot(ctx, SnapshotRequest{Dir: dir, Trigger: manual})
	if err != nil {
		t.Fatalf("snapshot once there is room: %v", err)
	}
	t.Logf("snapshot once there is room: %s, %d bytes, %d events", filepath.Base(res.Path), res.Bytes, res.Events)
	if res.Bytes <= tmpfsSize {
		t.Errorf("snapshot of %d bytes would have fitted in the full file system", res.Bytes)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != filepath.Base(res.Path) {
		t.Errorf("directory holds %v, want the snapshot alone", ents)
	}
	r := snaptest.Open(t, res.Path)
	if !r.Indexed() || len(r.Damage()) != 0 {
		t.Errorf("snapshot indexed %v, damage %v", r.Indexed(), r.Damage())
	}
	sum, err := snapshot.Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != res.Events || len(r.Damage()) != 0 {
		t.Errorf("file holds %d events (damage %v), the recorder wrote %d", sum.Events, r.Damage(), res.Events)
	}
	calls, _, _ := getppidCalls(t, r, ch.cmd.Process.Pid)
	if _, ok := calls[n-1]; !ok {
		t.Errorf("the child's last call is missing (%d of %d recorded)", len(calls), n)
	}
}
