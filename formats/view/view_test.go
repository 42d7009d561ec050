package view

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/snaptest"
)

func testFile(t *testing.T) *snapshot.Reader {
	s, err := schema.New(append([]schema.Event{
		{ID: 1, Name: "sched_switch", Size: 40, Fields: []schema.Field{
			{Name: "prev_comm", Type: schema.Str, Count: 16, Kind: schema.KindComm},
			{Name: "next_comm", Type: schema.Str, Count: 16, Offset: 16, Kind: schema.KindComm},
			{Name: "next_tid", Type: schema.U32, Count: 1, Offset: 32, Kind: schema.KindTID},
			{Name: "prev_state", Type: schema.U16, Count: 1, Offset: 38, Kind: schema.KindTaskState},
		}},
		{ID: 5, Name: "sched_process_exec", Size: 240, Fields: []schema.Field{
			{Name: "filename", Type: schema.Str, Count: 236, Offset: 4},
		}},
	}, snaptest.SyscallEvents()...))
	if err != nil {
		t.Fatal(err)
	}
	le := func(b []byte, off int, v uint64, n int) {
		for i := 0; i < n; i++ {
			b[off+i] = byte(v >> (8 * i))
		}
	}
	sw := make([]byte, 40)
	copy(sw, "bash")
	copy(sw[16:], "worker")
	le(sw, 32, 7, 4)
	le(sw, 38, 0x100, 2)
	enter := make([]byte, 40)
	le(enter, 0, 257, 4)
	le(enter, 8, 0xffffffffffffff9c, 8)
	le(enter, 16, 0x7ffd12345678, 8)
	exit := make([]byte, 16)
	le(exit, 0, 257, 4)
	le(exit, 8, uint64(1<<64-2), 8) // -2, ENOENT
	exec := append(make([]byte, 4), "/usr/local/bin/a-very-long-program-name"...)
	events := [][]snapshot.Event{
		{
			{TS: 100, Seq: 0, TID: 3, PID: 3, Type: 1, Data: sw},
			{TS: 300, Seq: 1, TID: 7, PID: 7, Type: 7, Data: enter},
			{TS: 500, Seq: 2, TID: 7, PID: 7, Type: 5, Data: exec},
		},
		{
			{TS: 200, Seq: 0, TID: 0, PID: 0, Type: 8, Data: exit},
			{TS: 400, Seq: 1, TID: 7, PID: 7, Type: 8, Data: exit},
			{TS: 600, Seq: 2, TID: 7, PID: 7, Type: 7, Data: enter},
		},
	}
	var chunks []snapshot.ChunkInput
	for cpu, ev := range events {
		chunks = append(chunks, snapshot.ChunkInput{CPU: cpu, Events: ev, FirstSeq: 0, NextSeq: 3})
	}
	meta := &snapshot.Meta{CPUs: 2, Kernel: snapshot.Kernel{Machine: "x86_64"}}
	procs := []snapshot.Proc{{PID: 3, Comm: "bash", Threads: []snapshot.Thread{{TID: 3, Comm: "bash"}}}}
	return snaptest.Write(t, filepath.Join(t.TempDir(), "v.rwd"), meta, s, procs, chunks)
}

func TestText(t *testing.T) {
	r := testFile(t)
	var b bytes.Buffer
	if err := Write(&b, r, Options{CPU: -1, Range: snapshot.All}); err != nil {
		t.Fatal(err)
	}
	want := `100 (+?.?????????) cpu0 3/3 bash sched_switch: prev_comm="bash" next_comm="worker" next_tid=7 prev_state=256(R+)
200 (+0.000000100) cpu1 0/0 swapper/1 sys_exit: id=257(openat) ret=-2(ENOENT)
300 (+0.000000100) cpu0 7/7 worker sys_enter: id=257(openat) args=[0xffffffffffffff9c,0x7ffd12345678,0x0,0x0]
400 (+0.000000100) cpu1 7/7 worker sys_exit: id=257(openat) ret=-2(ENOENT)
500 (+0.000000100) cpu0 7/7 a-very-long-pro sched_process_exec: filename="/usr/local/bin/a-very-long-program-name"
600 (+0.000000100) cpu1 7/7 a-very-long-pro sys_enter: id=257(openat) args=[0xffffffffffffff9c,0x7ffd12345678,0x0,0x0]
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestJSONAndFilters(t *testing.T) {
	r := testFile(t)
	var b bytes.Buffer
	if err := Write(&b, r, Options{JSON: true, CPU: 1, TID: 7, Events: []string{"sys_exit", "sys_enter"}, Range: snapshot.Range{From: 0, To: 500}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines: %s", len(lines), b.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"ts_ns": 400.0, "cpu": 1.0, "seq": 1.0, "event": "sys_exit", "tid": 7.0, "pid": 7.0, "comm": "worker", "id": 257.0, "syscall": "openat", "ret": -2.0, "errno": "ENOENT"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v (%s)", k, m[k], v, lines[0])
		}
	}
	b.Reset()
	if err := Write(&b, r, Options{JSON: true, CPU: -1, Events: []string{"sys_enter"}, Range: snapshot.All, Limit: 1}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"args":["0xffffffffffffff9c","0x7ffd12345678","0x0","0x0"]`) || strings.Count(b.String(), "\n") != 1 {
		t.Errorf("hex args or limit: %s", b.String())
	}
	if err := Write(&b, r, Options{CPU: -1, Events: []string{"nope"}, Range: snapshot.All}); err == nil {
		t.Error("unknown event accepted")
	}
}
