package snapshot

import (
	"bytes"
	"fmt"
	"hash"
	"hash/fnv"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/rewindtrace/rewind/snapshot/schema"
)

// pinned are snapshots the real recorder wrote, one of every format version
// (testdata/pin.sh says how), with what today's reader must find in them.
// The counts were taken once from the files: a change to the format made
// the same way in the writer and the reader still fails here.
var pinned = []struct {
	file string
	want pinnedFile
}{
	{"v1.0.rwd", pinnedFile{
		Format: "1.0", Indexed: true, CPUs: 2, Trigger: Trigger{Kind: TriggerDuration, Detail: "1s"},
		SlotsPerCPU: 1024, Procs: 5,
		Chunks: 2, Events: 1636, Lost: 0,
		PerCPU: []CPUSummary{
			{CPU: 0, Events: 1024, FirstTS: 311656400193, LastTS: 311980360599},
			{CPU: 1, Events: 612, FirstTS: 311036661593, LastTS: 312013347683},
		},
		EventCounts: map[string]uint64{
			"sys_enter": 742, "sys_exit": 741, "sched_waking": 62, "sched_switch": 53,
			"sched_process_free": 6, "sched_migrate_task": 6, "sched_process_exec": 5, "task_rename": 5,
			"task_newtask": 4, "sched_wakeup_new": 4, "sched_process_exit": 4, "sched_process_fork": 4,
		},
		EventDigest: 0x108c2d39deea38ac,
	}},
	{"v1.1.rwd", pinnedFile{
		Format: "1.1", Indexed: true, CPUs: 2, Trigger: Trigger{Kind: TriggerDuration, Detail: "1s"},
		SlotsPerCPU: 2048, StackRate: 99, Procs: 5,
		Chunks: 2, Events: 2297, Lost: 0,
		PerCPU: []CPUSummary{
			{CPU: 0, Events: 2048, FirstTS: 306676762346, LastTS: 307181718403},
			{CPU: 1, Events: 249, FirstTS: 306780058199, LastTS: 306900095881},
		},
		EventCounts: map[string]uint64{
			"sched_switch": 668, "sys_enter": 617, "sys_exit": 616, "sched_waking": 317, "cpu_sample": 43,
			"sched_process_free": 8, "sched_wakeup_new": 4, "sched_migrate_task": 4, "sched_process_exit": 4,
			"sched_process_exec": 4, "task_rename": 4, "sched_process_fork": 4, "task_newtask": 4,
		},
		EventDigest: 0x7a863c821b4ce481,
		Series: []SeriesSummary{
			{Source: "cpu", Fields: 36, Samples: 108, FirstTS: 306177565288, LastTS: 307307995780, RateHz: 100, Missed: 6},
			{Source: "memory", Fields: 54, Samples: 108, FirstTS: 306177825448, LastTS: 307308065735, RateHz: 100, Missed: 6},
		},
		SeriesDigest:  0x0edab34eafef8800,
		KernelSymbols: 7,
	}},
}

// pinnedFile is what the reader finds in a pinned snapshot.
type pinnedFile struct {
	Format      string
	Indexed     bool
	CPUs        int
	Trigger     Trigger
	SlotsPerCPU uint64
	StackRate   int
	Procs       int

	Chunks      int
	Events      uint64
	Lost        uint64
	PerCPU      []CPUSummary
	EventCounts map[string]uint64
	// EventDigest is FNV-1a over every event in time order: its common
	// fields, then every field of its type as the columns hold it.
	EventDigest uint64

	Series       []SeriesSummary
	SeriesDigest uint64 // FNV-1a over every series' times and values

	KernelSymbols int
	SymbolProcs   int
	Damage        int
}

func TestPinnedFormats(t *testing.T) {
	for _, p := range pinned {
		t.Run(p.file, func(t *testing.T) {
			got := readPinned(t, filepath.Join("testdata", p.file))
			if !reflect.DeepEqual(got, p.want) {
				t.Errorf("read\n%#v\nwant\n%#v", got, p.want)
			}
		})
	}
}

func readPinned(t *testing.T, path string) pinnedFile {
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := r.Meta()
	out := pinnedFile{
		Format: formatVersion(r), Indexed: r.Indexed(), CPUs: m.CPUs, Trigger: m.Trigger,
		SlotsPerCPU: m.Recording.SlotsPerCPU, StackRate: m.Recording.StackRate, Procs: len(r.Procs()),
	}
	sum, err := Summarize(r)
	if err != nil {
		t.Fatal(err)
	}
	out.Chunks, out.Events, out.Lost = sum.Chunks, sum.Events, sum.Lost
	out.PerCPU, out.EventCounts, out.Series = sum.PerCPU, sum.EventCounts, sum.Series

	// Decode every event: the counts the chunk headers claim must be the
	// events the columns hold.
	h := fnv.New64a()
	decoded := map[string]uint64{}
	var prev uint64
	err = r.Each(0, ^uint64(0), func(c *Chunk, i int) error {
		if c.TS[i] < prev {
			t.Fatalf("event at %d before %d", c.TS[i], prev)
		}
		prev = c.TS[i]
		et := r.Schema().ByID(c.Type[i])
		if et == nil {
			t.Fatalf("event type %d not in the schema", c.Type[i])
		}
		decoded[et.Name]++
		hashEvent(h, c, i, et)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(decoded, sum.EventCounts) {
		t.Errorf("decoded events %v, chunk headers say %v", decoded, sum.EventCounts)
	}
	out.EventDigest = h.Sum64()

	h = fnv.New64a()
	secs := r.SeriesSections()
	for _, sec := range secs {
		s, err := r.ReadSeries(sec)
		if err != nil {
			t.Fatal(err)
		}
		for _, ts := range s.TS {
			hashUint(h, ts)
		}
		for _, col := range s.Values {
			for _, v := range col {
				hashUint(h, v)
			}
		}
	}
	if len(secs) > 0 {
		out.SeriesDigest = h.Sum64()
	}

	syms, err := r.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	out.KernelSymbols, out.SymbolProcs = len(syms.Kernel), len(syms.Procs)
	for _, d := range r.Damage() {
		t.Errorf("damage: %v", d)
	}
	out.Damage = len(r.Damage())
	return out
}

func formatVersion(r *Reader) string { return fmt.Sprintf("%d.%d", r.Major, r.Minor) }

func readTestdata(t testing.TB, name string) []byte {
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func hashEvent(h hash.Hash64, c *Chunk, i int, et *schema.Event) {
	hashUint(h, c.TS[i])
	hashUint(h, uint64(c.CPU))
	hashUint(h, c.Seq[i])
	hashUint(h, uint64(c.Type[i]))
	hashUint(h, uint64(c.TID[i]))
	hashUint(h, uint64(c.PID[i]))
	row := int(c.Row[i])
	for f, field := range et.Fields {
		col := c.Column(c.Type[i], f)
		if col.IsStr() {
			h.Write(col.Bytes(row))
			h.Write([]byte{0})
			continue
		}
		for e := 0; e < field.Count; e++ {
			hashUint(h, col.UintAt(row, e))
		}
	}
}

func hashUint(h hash.Hash64, v uint64) {
	h.Write(le.AppendUint64(nil, v))
}

// Every byte of every chunk of a pinned file is covered: a byte flipped
// anywhere in a chunk makes that chunk, and only it, a CorruptionError at
// its offset.
func TestPinnedChunkDamage(t *testing.T) {
	for _, p := range pinned {
		t.Run(p.file, func(t *testing.T) {
			data := readTestdata(t, p.file)
			r, err := NewReader(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			for k, s := range r.Chunks() {
				for _, at := range []int64{s.Offset, s.Offset + 8, s.Offset + sectionHeaderSize + 4, s.Offset + s.Length/2, s.End() - 1} {
					bad := append([]byte(nil), data...)
					bad[at] ^= 0x10
					checkChunkDamage(t, bad, k, at)
				}
			}
		})
	}
}

// checkChunkDamage reads data, in which chunk k has a damaged byte at at,
// and checks that the reader reports that chunk and reads every other.
func checkChunkDamage(t *testing.T, data []byte, k int, at int64) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("byte %d: %v", at, err)
	}
	var c Chunk
	for i, s := range r.Chunks() {
		err := r.ReadChunk(s, &c)
		if i != k {
			if err != nil {
				t.Fatalf("byte %d in chunk %d damages chunk %d: %v", at, k, i, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("byte %d in chunk %d [%d, %d): read without error", at, k, s.Offset, s.End())
		}
		requireDamageAt(t, err, s)
	}
	if d := r.Damage(); len(d) != 1 {
		t.Fatalf("byte %d in chunk %d: damage %v", at, k, d)
	}
}

// A Chunk decoded from one file and then another, with another schema,
// holds what a fresh Chunk would.
func TestChunkReuseAcrossSchemas(t *testing.T) {
	var reused Chunk
	for range 2 {
		for _, p := range pinned {
			r, err := Open(filepath.Join("testdata", p.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range r.Chunks() {
				var fresh Chunk
				if err := r.ReadChunk(s, &fresh); err != nil {
					t.Fatal(err)
				}
				if err := r.ReadChunk(s, &reused); err != nil {
					t.Fatal(err)
				}
				sameChunk(t, r.Schema(), &fresh, &reused)
			}
			r.Close()
		}
	}
}
