package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rewindtrace/rewind/daemon/api"
)

// TestRetention takes 50 snapshots into a session capped at 5 snapshots:
// after each, the 5 newest remain, and files rewind did not write (a .rwd
// with another magic, a text file) stay.
func TestRetention(t *testing.T) {
	_, c := startDaemon(t, Config{})
	s := create(t, c, api.CreateRequest{Name: "kept", Retention: &api.Retention{MaxFiles: 5}})
	if s.Retention == nil || s.Retention.MaxFiles != 5 {
		t.Fatalf("session retention %+v", s.Retention)
	}
	act(t, c, "kept", "enable-event", api.EventsRequest{Events: []string{"sched_switch"}})
	act(t, c, "kept", "start", nil)
	foreign := []string{filepath.Join(s.Output, "notes.rwd"), filepath.Join(s.Output, "keep.txt")}
	for _, f := range foreign {
		must(t, os.WriteFile(f, []byte("not a snapshot, not rewind's"), 0o640))
	}
	var taken []string
	removed := 0
	for i := range 50 {
		rep := snap(t, c, "kept", api.SnapshotRequest{Name: fmt.Sprintf("snap-%02d.rwd", i)})
		taken = append(taken, rep.Path)
		removed += len(rep.Removed)
		files, err := filepath.Glob(filepath.Join(s.Output, "snap-*.rwd"))
		must(t, err)
		want := taken[max(0, len(taken)-5):]
		if !slices.Equal(files, want) {
			t.Fatalf("after snapshot %d: %v, want the 5 newest %v", i, files, want)
		}
	}
	if removed != 45 {
		t.Errorf("replies say %d snapshots removed, want 45", removed)
	}
	for _, f := range foreign {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("retention touched %s, which rewind did not write: %v", f, err)
		}
	}
}
