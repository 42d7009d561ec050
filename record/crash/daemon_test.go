package crash_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewindtrace/rewind/daemon"
	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/daemon/client"
	"github.com/rewindtrace/rewind/internal/testkernel"
	"github.com/rewindtrace/rewind/record/crash"
	"github.com/rewindtrace/rewind/snapshot"
)

// TestCrashSnapshots: with a daemon recording, the record holds each
// recording session's snapshot, with the crash as its trigger and the
// crashing process's signal_generate; with no daemon, a crash still
// yields its core and metadata, and the record says there was none.
func TestCrashSnapshots(t *testing.T) {
	testkernel.Require(t)
	tmp, err := os.MkdirTemp("", "rwd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) }) // after the daemon stops
	sock := filepath.Join(tmp, "d.sock")
	_, stop := recordingDaemon(t, daemon.Config{Socket: sock, OutputRoot: filepath.Join(tmp, "out")}, "crashy", "signals", "process", "syscalls", "sched")
	_, dir := crash.InstallForTest(t, crash.Options{Socket: sock})
	dir = filepath.Join(dir, "crashes")
	prog := crash.BuildForTest(t, "segv")
	pid := crash.CrashForTest(t, prog, "unlimited")
	r := crash.WaitForTest(t, dir, pid)
	if len(r.Snapshots) != 1 || r.Snapshots[0] != "crashy.rwd" || len(r.Errors) > 0 || r.Core.File == "" {
		t.Fatalf("record %+v: want the session's snapshot and the core", r)
	}
	sr, err := snapshot.Open(filepath.Join(dir, r.ID, r.Snapshots[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	m := sr.Meta()
	if m.Trigger.Kind != snapshot.TriggerCrash || m.Trigger.Firing == nil || m.Trigger.Firing.PID != uint32(pid) || m.Trigger.Signal != "SIGSEGV" {
		t.Errorf("snapshot trigger %+v", m.Trigger)
	}
	gen := sr.Schema().ByName("signal_generate")
	found := false
	var ch snapshot.Chunk
	for _, sec := range sr.Chunks() {
		if err := sr.ReadChunk(sec, &ch); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < ch.Len(); i++ {
			if ch.Type[i] == gen.ID && ch.PID[i] == uint32(pid) {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("the snapshot holds no signal_generate of pid %d", pid)
	}
	// The daemon counted the crash and its snapshot.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://rewind/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`rewind_crashes_total{core="saved"} 1`, `rewind_crash_snapshots_total{result="ok"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	story, err := crash.ReadStory(filepath.Join(dir, r.ID, r.Snapshots[0]), r)
	if err != nil {
		t.Fatal(err)
	}
	text := story.String()
	if story.CPU < 0 || len(story.Last) == 0 || !strings.Contains(story.Last[len(story.Last)-1], "signal_generate") {
		t.Errorf("story: cpu %d, want the thread's events ending with its signal_generate:\n%s", story.CPU, text)
	}

	// The daemon gone: core and metadata still.
	stop()
	pid = crash.CrashForTest(t, prog, "unlimited")
	r = crash.WaitForTest(t, dir, pid)
	if r.Core.File == "" || len(r.Snapshots) != 0 || !strings.Contains(r.Daemon, "no daemon") {
		t.Errorf("record without a daemon %+v", r)
	}
}

// TestCrashAction: a daemon's "signal SIGSEGV" trigger with the crash
// action writes a record without a core, with the session's snapshot,
// for a process the kernel runs no handler for (not dumpable); for one it
// does, the handler's record is the only one.
func TestCrashAction(t *testing.T) {
	testkernel.Require(t)
	sockDir, err := os.MkdirTemp("", "rwd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) }) // after the daemon stops
	sock := filepath.Join(sockDir, "d.sock")
	// The handler tells this daemon of the crashes it handles.
	_, tmp := crash.InstallForTest(t, crash.Options{Socket: sock})
	dir := filepath.Join(tmp, "crashes")
	c, _ := recordingDaemon(t, daemon.Config{Socket: sock, OutputRoot: filepath.Join(tmp, "out"), Crash: daemon.CrashConfig{Dir: dir}}, "watch", "signals", "process")
	ctx := context.Background()
	for _, comm := range []string{"nodump", "segv"} {
		if _, err := c.AddTrigger(ctx, "watch", api.TriggerRequest{Name: comm, Condition: "signal SIGSEGV comm=" + comm, Actions: []string{api.ActionCrash}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.AddTrigger(ctx, "watch", api.TriggerRequest{Condition: "syscall > 1s", Actions: []string{api.ActionCrash}}); err == nil {
		t.Error("the crash action accepted for a syscall condition")
	}

	pid := crash.CrashForTest(t, crash.BuildForTest(t, "nodump"), "unlimited")
	r := crash.WaitForTest(t, dir, pid)
	if r.Core.File != "" || !strings.Contains(r.Core.Dropped, "ran no core handler") || len(r.Snapshots) != 1 || r.Snapshots[0] != "watch.rwd" || r.SignalName != "SIGSEGV" {
		t.Errorf("record of the process not dumpable %+v", r)
	}

	// Dumpable: the handler's record, and no other once the action has
	// waited its time.
	pid = crash.CrashForTest(t, crash.BuildForTest(t, "segv"), "unlimited")
	r = crash.WaitForTest(t, dir, pid)
	if r.Core.File == "" {
		t.Errorf("the handler's record has no core: %+v", r)
	}
	// The action waits for the handler's report, then leaves the crash
	// to it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		trigs, err := c.Triggers(ctx, "watch")
		if err != nil {
			t.Fatal(err)
		}
		nd, sg := trigs.Triggers[0], trigs.Triggers[1]
		if sg.CrashesHandled+sg.CrashRecords > 0 {
			if nd.CrashRecords != 1 || sg.CrashesHandled != 1 || sg.CrashRecords != 0 {
				t.Errorf("crash actions: nodump wrote %d records, segv left %d crashes to the handler and wrote %d records; want 1, 1, 0",
					nd.CrashRecords, sg.CrashesHandled, sg.CrashRecords)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the segv trigger's crash action did not finish in 30s: %+v", sg)
		}
		time.Sleep(20 * time.Millisecond)
	}
	recs, err := crash.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, rr := range recs {
		if rr.PID == pid {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d records of the dumpable crash, want the handler's only", n)
	}
}

// recordingDaemon serves a daemon with one session recording events, until
// the test ends or stop is called.
func recordingDaemon(t *testing.T, cfg daemon.Config, session string, events ...string) (c *client.Client, stop func()) {
	t.Helper()
	cfg.BufferSize, cfg.Version = 4<<20, "test"
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-served; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	c = client.New(cfg.Socket)
	if _, err := c.Create(ctx, api.CreateRequest{Name: session}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		action string
		body   any
	}{{"enable-event", api.EventsRequest{Events: events}}, {"start", nil}} {
		if _, err := c.Action(ctx, session, a.action, a.body); err != nil {
			t.Fatal(err)
		}
	}
	return c, stop
}
