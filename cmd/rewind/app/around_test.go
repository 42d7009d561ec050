package app

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/snaptest"
)

const ms = 1_000_000

// aroundFile writes a snapshot whose events span 500ms to 2s on two CPUs,
// taken at 1.5s, with the given firing (nil: taken by hand), and returns
// its path.
func aroundFile(t *testing.T, firing *snapshot.Firing) string {
	t.Helper()
	s, err := schema.New(snaptest.SyscallEvents())
	if err != nil {
		t.Fatal(err)
	}
	perCPU := [][]uint64{
		{500 * ms, 800*ms - 1, 800 * ms, 1000 * ms, 1200 * ms},
		{900 * ms, 1200*ms + 1, 1500 * ms, 1700 * ms, 1700*ms + 1, 2000 * ms},
	}
	var chunks []snapshot.ChunkInput
	for cpu, tss := range perCPU {
		in := snapshot.ChunkInput{CPU: cpu, NextSeq: uint64(len(tss))}
		for i, ts := range tss {
			in.Events = append(in.Events, snapshot.Event{TS: ts, Seq: uint64(i), TID: 42, PID: 42, Type: 7, Data: make([]byte, 40)})
		}
		chunks = append(chunks, in)
	}
	meta := &snapshot.Meta{CPUs: 2, Clock: "boottime", Kernel: snapshot.Kernel{Machine: "x86_64"},
		StartedNS: 400 * ms, TakenNS: 1500 * ms, Trigger: snapshot.Trigger{Kind: snapshot.TriggerManual}}
	if firing != nil {
		meta.Trigger = snapshot.Trigger{Kind: snapshot.TriggerCondition, Firing: firing}
	}
	path := filepath.Join(t.TempDir(), "around.rwd")
	snaptest.Write(t, path, meta, s, nil, chunks)
	return path
}

// runOut runs rewind with args and returns what it printed on stdout and
// on stderr, and its error.
func runOut(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	app := New()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err = app.RunContext(context.Background(), append([]string{"rewind"}, args...))
	return out.String(), errOut.String(), err
}

// viewTimes runs rewind view with args and returns the timestamps of the
// events it printed.
func viewTimes(t *testing.T, args ...string) ([]uint64, string) {
	t.Helper()
	out, stderr, err := runOut(t, append([]string{"view"}, args...)...)
	if err != nil {
		t.Fatalf("view %v: %v", args, err)
	}
	var tss []uint64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		ts, err := strconv.ParseUint(strings.Fields(line)[0], 10, 64)
		if err != nil {
			t.Fatalf("view %v: line %q: %v", args, line, err)
		}
		tss = append(tss, ts)
	}
	return tss, stderr
}

// analyzeSpan runs rewind analyze --format json with args and returns the
// events it read and their span.
func analyzeSpan(t *testing.T, args ...string) (events, first, last uint64) {
	t.Helper()
	out, _, err := runOut(t, append([]string{"analyze", "--format", "json"}, args...)...)
	if err != nil {
		t.Fatalf("analyze %v: %v", args, err)
	}
	var res struct {
		Snapshot struct {
			Events  uint64 `json:"events"`
			FirstNS uint64 `json:"first_ns"`
			LastNS  uint64 `json:"last_ns"`
		} `json:"snapshot"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("analyze %v: %v\n%s", args, err, out)
	}
	return res.Snapshot.Events, res.Snapshot.FirstNS, res.Snapshot.LastNS
}

func TestAroundSelects(t *testing.T) {
	fired := aroundFile(t, &snapshot.Firing{Trigger: "slow", Condition: "syscall > 50ms", TS: 1000 * ms, CPU: 0, TID: 42, PID: 42, Value: 102.3 * ms, Unit: "ns", What: "read"})
	manual := aroundFile(t, nil)
	for _, c := range []struct {
		file, spec string
		want       []uint64 // in time order; the bounds are kept
		note       bool     // a note that there was no firing
	}{
		{fired, "trigger:200ms", []uint64{800 * ms, 900 * ms, 1000 * ms, 1200 * ms}, false},
		{fired, "taken:200ms", []uint64{1500 * ms, 1700 * ms}, false},
		{fired, "trigger:0s", []uint64{1000 * ms}, false},
		{fired, "trigger:1ns", []uint64{1000 * ms}, false},
		{manual, "trigger:200ms", []uint64{1500 * ms, 1700 * ms}, true},
		{manual, "taken:200ms", []uint64{1500 * ms, 1700 * ms}, false},
	} {
		got, stderr := viewTimes(t, "--around", c.spec, c.file)
		if !slices.Equal(got, c.want) {
			t.Errorf("view --around %s (firing: %v): got %v, want %v", c.spec, c.file == fired, got, c.want)
		}
		if note := strings.Contains(stderr, "no trigger firing"); note != c.note {
			t.Errorf("view --around %s (firing: %v): stderr %q, want a note: %v", c.spec, c.file == fired, stderr, c.note)
		}
		events, first, last := analyzeSpan(t, "--around", c.spec, c.file)
		if events != uint64(len(c.want)) || first != c.want[0] || last != c.want[len(c.want)-1] {
			t.Errorf("analyze --around %s (firing: %v): %d events from %d to %d, want %v", c.spec, c.file == fired, events, first, last, c.want)
		}
	}
}

func TestAroundBadInput(t *testing.T) {
	path := aroundFile(t, &snapshot.Firing{TS: 1000 * ms})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"view", "--around", "trigger:200ms", "--from", "1s"}, "--around and --from: give one or the other"},
		{[]string{"view", "--around", "trigger:200ms", "--to", "-1s"}, "--around and --to: give one or the other"},
		{[]string{"analyze", "--around", "taken:1s", "--to", "1s"}, "--around and --to: give one or the other"},
		{[]string{"analyze", "--around", "taken:1s", "--last", "1s"}, "--around and --last: give one or the other"},
		{[]string{"view", "--around", "trigger:soon"}, `--around "trigger:soon": duration "soon": want a duration such as 200ms`},
		{[]string{"view", "--around", "200ms"}, `--around "200ms": want trigger:D or taken:D`},
		{[]string{"analyze", "--around", "firing:1s"}, `--around "firing:1s": want trigger:D or taken:D`},
		{[]string{"analyze", "--around", "trigger:-1s"}, `--around "trigger:-1s": duration "-1s": want 0 or more`},
		{[]string{"view", "--around", ""}, `--around "": want trigger:D or taken:D`},
		{[]string{"view", "--around", "taken:100ms"}, ""}, // 1.5s lies inside
	} {
		_, _, err := runOut(t, append(c.args, path)...)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: got %v, want an error with %q", c.args, err, c.want)
		}
	}
	far := aroundFile(t, &snapshot.Firing{TS: 100 * ms})
	_, _, err := runOut(t, "view", "--around", "trigger:100ms", far)
	if want := `--around "trigger:100ms": the trigger's firing is 400ms before the first event: none lies within 100ms of it`; err == nil || err.Error() != want {
		t.Errorf("a firing out of the snapshot's span: got %v, want %q", err, want)
	}
}

func TestAroundInfo(t *testing.T) {
	path := aroundFile(t, &snapshot.Firing{Trigger: "slow", Condition: "syscall > 50ms", TS: 1000 * ms, CPU: 1, TID: 42, PID: 40, Comm: "postgres",
		Value: 102345678, Unit: "ns", What: "read", Count: 3, DelayNS: 500 * ms, Labels: map[string]string{"team": "db", "env": "prod"}})
	out, _, err := runOut(t, "info", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"fired:      slow: syscall > 50ms (match 3 since the trigger was set)\n",
		"  at:       +0.500000000s from the first event (1000000000 ns)\n",
		"  task:     cpu 1, tid 42, pid 40, postgres\n",
		"  value:    read 102.3ms\n",
		"  delay:    snapshot taken 500ms after the firing\n",
		"  labels:   env=prod, team=db\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("info: no %q in\n%s", want, out)
		}
	}
	out, _, err = runOut(t, "info", "--json", path)
	if err != nil {
		t.Fatal(err)
	}
	var inf struct {
		Trigger snapshot.Trigger `json:"trigger"`
	}
	if err := json.Unmarshal([]byte(out), &inf); err != nil {
		t.Fatal(err)
	}
	if f := inf.Trigger.Firing; f == nil || f.TS != 1000*ms || f.Labels["team"] != "db" || f.DelayNS != 500*ms {
		t.Errorf("info --json: trigger %+v, firing %+v", inf.Trigger, f)
	}
}
