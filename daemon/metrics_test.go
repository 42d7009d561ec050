package daemon

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/rewindtrace/rewind/daemon/api"
)

// TestMetrics scrapes /metrics over TCP without a token: promtool finds
// nothing to fix, and the figures follow what the session did.
func TestMetrics(t *testing.T) {
	d, c := startDaemon(t, Config{Listen: "127.0.0.1:0"})
	create(t, c, api.CreateRequest{Name: "m"})
	act(t, c, "m", "enable-event", api.EventsRequest{Events: []string{"syscalls"}})
	act(t, c, "m", "start", nil)
	create(t, c, api.CreateRequest{Name: "idle"})
	child := startStepper(t)
	act(t, c, "m", "track", api.TrackRequest{PIDs: []uint32{uint32(child.Pid())}})
	child.step(t, 1000)
	snap(t, c, "m", api.SnapshotRequest{})

	resp, err := http.Get("http://" + d.HTTPAddr() + "/metrics")
	must(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("REWIND_REQUIRE_KERNEL") == "1" {
			t.Fatal("promtool not found; `make test` installs it")
		}
		t.Log("no promtool: the exposition is not linted")
	} else {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
	value := func(series string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("no %s in:\n%s", series, body)
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		must(t, err)
		return v
	}
	// The child's 1000 calls, and whatever else it did while tracked.
	if v := value(`rewind_events_recorded_total{event="sys_enter",session="m"}`); v < 1000 {
		t.Errorf("sys_enter recorded: %v, want at least the child's 1000", v)
	}
	if v := value(`rewind_sessions{state="recording"}`); v != 1 {
		t.Errorf("recording sessions: %v, want 1", v)
	}
	if v := value(`rewind_sessions{state="created"}`); v != 1 {
		t.Errorf("created sessions: %v, want 1", v)
	}
	if v := value(`rewind_snapshots_total{result="ok",session="m"}`); v != 1 {
		t.Errorf("snapshots: %v, want 1", v)
	}
	if v := value(`rewind_snapshot_duration_seconds_count{session="m"}`); v != 1 {
		t.Errorf("snapshot durations observed: %v, want 1", v)
	}
	slots, cpus := 0.0, 0
	for _, m := range regexp.MustCompile(`(?m)^rewind_ring_slots_written_total\{cpu="\d+",session="m"\} (\S+)$`).FindAllSubmatch(body, -1) {
		v, err := strconv.ParseFloat(string(m[1]), 64)
		must(t, err)
		slots += v
		cpus++
	}
	if slots < 2000 {
		t.Errorf("slots written: %v, want at least the child's 2000 entries and exits", slots)
	}
	if v := value(`rewind_ring_bytes{session="m"}`); v != float64(4<<20)*float64(cpus) {
		t.Errorf("ring bytes: %v, want 4 MiB for each of %d CPUs", v, cpus)
	}
}
