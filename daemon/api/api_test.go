package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzDecode feeds the request decoder anything: it never panics, and what
// it accepts encodes again and decodes to the same request.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"name": "s", "buffer_size": 4194304, "history": "30s", "memory": 1048576}`,
		`{"name": "s", "history": 12.5}`,
		`{"events": ["syscalls", "sched_switch"]}`,
		`{"pids": [1, 2], "comms": ["bash"], "cgroups": ["/sys/fs/cgroup/x"], "all": true}`,
		`{"counters": ["cpu@10"]}`,
		`{"name": "a.rwd", "stream": true}`,
		`{}`, ``, `[`, `{"name": "x"} 1`, `{"history": "forever"}`, `{"unknown": 1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip[CreateRequest](t, b)
		roundTrip[EventsRequest](t, b)
		roundTrip[TrackRequest](t, b)
		roundTrip[CountersRequest](t, b)
		roundTrip[SnapshotRequest](t, b)
	})
}

func roundTrip[T any](t *testing.T, b []byte) {
	var v T
	if err := Decode(bytes.NewReader(b), &v); err != nil {
		if err.Error() == "" {
			t.Fatal("an error with no message")
		}
		return
	}
	enc, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("accepted %q but cannot encode it: %v", b, err)
	}
	var again T
	if err := Decode(bytes.NewReader(enc), &again); err != nil {
		t.Fatalf("accepted %q, encoded as %s, which it then refuses: %v", b, enc, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ body, says string }{
		{``, "empty request body"},
		{`{"name": 1}`, "name"},
		{`{"nme": "x"}`, "unknown field"},
		{`{"name": "x"}{}`, "more than one"},
		{`{"history": "forever"}`, "duration"},
		{`{"name": "` + strings.Repeat("x", MaxRequest) + `"}`, "over"},
	} {
		var r CreateRequest
		err := Decode(strings.NewReader(tc.body), &r)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%.40q: %v, want an error saying %q", tc.body, err, tc.says)
		}
	}
	var r CreateRequest
	if err := Decode(strings.NewReader(`{"name": "x", "history": 90}`), &r); err != nil || r.History.D() != 90*time.Second {
		t.Errorf("history as seconds: %v, %v", err, r.History.D())
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "web-1", "db_2.x", strings.Repeat("a", 64)} {
		if err := CheckName("session name", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "-x", "a b", strings.Repeat("a", 65), "é"} {
		if CheckName("session name", bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
