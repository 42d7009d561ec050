package bpf

import (
	"testing"

	"github.com/rewindtrace/rewind/snapshot/schema"
)

func TestCatalog(t *testing.T) {
	events, err := Catalog()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Schema(); err != nil {
		t.Fatal(err)
	}
	byName := map[string]Event{}
	for _, e := range events {
		byName[e.Name] = e
		t.Logf("%d %s (%s, tp %s, %d bytes): %+v", e.ID, e.Name, e.Group, e.Tracepoint, e.Size, e.Fields)
	}
	sw, ok := byName["sched_switch"]
	if !ok {
		t.Fatal("no sched_switch")
	}
	want := []schema.Field{
		{Name: "prev_comm", Type: schema.Str, Count: 16, Offset: 0, Kind: schema.KindComm},
		{Name: "next_comm", Type: schema.Str, Count: 16, Offset: 16, Kind: schema.KindComm},
		{Name: "next_tid", Type: schema.U32, Count: 1, Offset: 32, Kind: schema.KindTID},
		{Name: "prev_prio", Type: schema.U8, Count: 1, Offset: 36, Kind: schema.KindPrio},
		{Name: "next_prio", Type: schema.U8, Count: 1, Offset: 37, Kind: schema.KindPrio},
		{Name: "prev_state", Type: schema.U16, Count: 1, Offset: 38, Kind: schema.KindTaskState},
	}
	if len(sw.Fields) != len(want) {
		t.Fatalf("sched_switch fields = %+v", sw.Fields)
	}
	for i := range want {
		if sw.Fields[i] != want[i] {
			t.Errorf("field %d = %+v, want %+v", i, sw.Fields[i], want[i])
		}
	}
	se := byName["sys_enter"]
	if i := se.Field("args"); i < 0 || se.Fields[i].Count != 4 || se.Fields[i].Type != schema.U64 || se.Fields[i].Kind != schema.KindHex {
		t.Errorf("sys_enter args = %+v", se.Fields)
	}
	if se.Field("__pad") >= 0 {
		t.Error("padding became a field")
	}
	if sx := byName["sys_exit"]; sx.Fields[sx.Field("ret")].Type != schema.S64 {
		t.Errorf("sys_exit ret = %+v", sx.Fields)
	}
	if ex := byName["sched_process_exec"]; ex.Fields[ex.Field("filename")].Type != schema.Str || ex.Size <= 40 {
		t.Errorf("exec = %+v", ex)
	}
	// Events attach to the tracepoint of their name, but for the stack
	// samples: a perf event on each CPU, and sched_switch.
	attach := map[string]string{"cpu_sample": "", "offcpu_sample": "sched_switch"}
	for _, e := range events {
		want, ok := attach[e.Name]
		if !ok {
			want = e.Name
		}
		if e.Tracepoint != want {
			t.Errorf("event %s attaches to %q, want %q", e.Name, e.Tracepoint, want)
		}
	}
	if cs := byName["cpu_sample"]; !cs.PerfEvent() || cs.Fields[cs.Field("frames")].Kind != "stack" || cs.Fields[cs.Field("frames")].Count != 158 {
		t.Errorf("cpu_sample = %+v", cs)
	}
}
