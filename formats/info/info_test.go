package info

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rewindtrace/rewind/snapshot"
)

// firingBlock renders info with firing f and returns the lines from
// "fired:" to the span line, which follows them.
func firingBlock(t *testing.T, f *snapshot.Firing, m *snapshot.Meta) string {
	t.Helper()
	inf := &Info{Trigger: snapshot.Trigger{Kind: snapshot.TriggerCondition, Firing: f}, FirstNS: 2_000_000_000, LastNS: 3_000_000_000, TakenNS: 2_500_000_000}
	var b bytes.Buffer
	if err := Text(&b, inf, m); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	i, j := strings.Index(out, "fired:"), strings.Index(out, "span:")
	if i < 0 || j < i {
		t.Fatalf("no fired: block before span: in\n%s", out)
	}
	return out[i:j]
}

func TestTextFiring(t *testing.T) {
	const realtime = 1_800_000_000_000_000_000
	m := &snapshot.Meta{ClockRefs: []snapshot.ClockRef{{BoottimeNS: 0, RealtimeNS: realtime}}}
	wall := time.Unix(0, realtime+1_750_000_000).Format("2006-01-02 15:04:05.000000000")
	got := firingBlock(t, &snapshot.Firing{Trigger: "slow-io", Condition: "bio > 100ms", TS: 1_750_000_000, CPU: 3, PID: 9,
		Value: 1_234_567_890, Unit: "ns", What: "nvme0n1 write"}, m)
	want := "fired:      slow-io: bio > 100ms\n" +
		"  at:       -0.250000000s from the first event (" + wall + ")\n" +
		"  task:     cpu 3, pid 9\n" +
		"  value:    nvme0n1 write 1.235s\n"
	if got != want {
		t.Errorf("a latency before the first event:\ngot\n%s\nwant\n%s", got, want)
	}

	// An alert matched no event: the time it came, no CPU, task or value.
	got = firingBlock(t, &snapshot.Firing{Trigger: "alertmanager", Condition: "HighLatency", TS: 2_100_000_000, CPU: -1,
		Labels: map[string]string{"severity": "page", "alertname": "HighLatency", "job": "api"}}, &snapshot.Meta{})
	want = "fired:      alertmanager: HighLatency\n" +
		"  at:       +0.100000000s from the first event (2100000000 ns)\n" +
		"  labels:   alertname=HighLatency, job=api, severity=page\n"
	if got != want {
		t.Errorf("an alert:\ngot\n%s\nwant\n%s", got, want)
	}
}

func TestFormatValue(t *testing.T) {
	for _, c := range []struct {
		v    float64
		unit string
		want string
	}{
		{102_345_678, "ns", "102.3ms"},
		{1_500, "ns", "1.5µs"},
		{999, "ns", "999ns"},
		{0, "ns", "0s"},
		{99_995_000_000, "ns", "1m40s"},
		{1 << 20, "bytes", "1.0 MiB"},
		{11, "", "11"},
		{0.75, "ratio", "0.75 ratio"},
		{-1, "ns", "-1 ns"},
	} {
		if got := formatValue(c.v, c.unit); got != c.want {
			t.Errorf("formatValue(%v, %q) = %q, want %q", c.v, c.unit, got, c.want)
		}
	}
}
