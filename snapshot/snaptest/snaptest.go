// Package snaptest holds helpers for tests that read snapshots.
package snaptest

import (
	"testing"

	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
)

// Open opens the snapshot at path, failing the test if it cannot, and
// closes it when the test ends.
func Open(t testing.TB, path string) *snapshot.Reader {
	t.Helper()
	r, err := snapshot.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Write writes a committed snapshot at path: meta, schema, processes, one
// chunk per input, each encoded with s, and the counter series; then opens
// it as Open does.
func Write(t testing.TB, path string, meta *snapshot.Meta, s *schema.Schema, procs []snapshot.Proc, chunks []snapshot.ChunkInput, series ...*snapshot.Series) *snapshot.Reader {
	t.Helper()
	w, err := snapshot.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteMeta(meta)
	w.WriteSchema(s)
	w.WriteProcs(procs)
	enc := snapshot.NewEncoder(s)
	for _, in := range chunks {
		p, sum, err := enc.EncodeChunk(in)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteChunk(p, sum)
	}
	for _, ser := range series {
		if err := w.WriteSeries(ser); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return Open(t, path)
}

// SyscallEvents are sys_enter (id 7) and sys_exit (id 8) laid out as the
// recorder lays them out: the syscall number at 0, the arguments or the
// return value at 8.
func SyscallEvents() []schema.Event {
	return []schema.Event{
		{ID: 7, Name: "sys_enter", Size: 40, Fields: []schema.Field{
			{Name: "id", Type: schema.S32, Count: 1, Kind: schema.KindSyscall},
			{Name: "args", Type: schema.U64, Count: 4, Offset: 8, Kind: schema.KindHex},
		}},
		{ID: 8, Name: "sys_exit", Size: 16, Fields: []schema.Field{
			{Name: "id", Type: schema.S32, Count: 1, Kind: schema.KindSyscall},
			{Name: "ret", Type: schema.S64, Count: 1, Offset: 8, Kind: schema.KindErrnoRet},
		}},
	}
}
