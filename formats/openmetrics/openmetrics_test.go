package openmetrics

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewindtrace/rewind/analyze"
	"github.com/rewindtrace/rewind/analyze/hist"
)

func series(name, unit string, values []uint64, labels ...analyze.Label) *analyze.Series {
	m, _ := hist.MBits(hist.DefaultError)
	h := hist.New(m)
	if unit == analyze.UnitBytes {
		h = hist.NewExact(m, 100)
	}
	for _, v := range values {
		h.Record(v)
	}
	return &analyze.Series{Name: name, Unit: unit, Labels: labels, Hist: h}
}

func sample() (*analyze.Result, map[int]uint64) {
	res := &analyze.Result{
		Histograms: []*analyze.Series{
			series(analyze.SyscallLatency, analyze.UnitNanoseconds, []uint64{800, 2e6, 3e9}, analyze.Label{Name: "by", Value: "all"}),
			series(analyze.SyscallLatency, analyze.UnitNanoseconds, []uint64{2e6},
				analyze.Label{Name: "by", Value: "process"}, analyze.Label{Name: "pid", Value: "7"}, analyze.Label{Name: "comm", Value: `a "b"\c`}),
			series(analyze.BioSize, analyze.UnitBytes, []uint64{4096, 65536, 1 << 30}, analyze.Label{Name: "dev", Value: "7:0"}, analyze.Label{Name: "op", Value: "R"}),
		},
		Counters: []analyze.Counter{
			{Name: "syscalls", Labels: analyze.Labels{{Name: "syscall", Value: "read"}}, Value: 3},
			{Name: "syscalls", Labels: analyze.Labels{{Name: "syscall", Value: "nanosleep"}}, Value: 200},
			{Name: "page_faults", Labels: analyze.Labels{{Name: "pid", Value: "7"}, {Name: "kind", Value: "user"}}, Value: 9},
		},
	}
	return res, map[int]uint64{0: 5, 3: 1}
}

func TestCumulativeBuckets(t *testing.T) {
	res, lost := sample()
	var b bytes.Buffer
	if err := Write(&b, res, 1700000000.5, lost); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`rewind_syscall_latency_seconds_bucket{by="all",le="1e-06"} 1 1700000000.500`,
		`rewind_syscall_latency_seconds_bucket{by="all",le="0.002"} 1 1700000000.500`, // 2 ms lies in a bucket reaching past 0.002
		`rewind_syscall_latency_seconds_bucket{by="all",le="0.005"} 2 1700000000.500`,
		`rewind_syscall_latency_seconds_bucket{by="all",le="5"} 3 1700000000.500`,
		`rewind_syscall_latency_seconds_bucket{by="all",le="+Inf"} 3 1700000000.500`,
		`rewind_syscall_latency_seconds_count{by="all"} 3 1700000000.500`,
		`comm="a \"b\"\\c"`,
		`rewind_bio_size_bytes_bucket{dev="7:0",op="R",le="65536"} 2 `,
		`rewind_bio_size_bytes_bucket{dev="7:0",op="R",le="+Inf"} 3 `,
		`rewind_lost_events_total{cpu="3"} 1 `,
		`# TYPE rewind_syscalls counter`,
		"# EOF\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// promtool backfills the output into a TSDB block: the block must hold
// every series and sample written. promtool skips some lines it cannot
// parse instead of failing, so the counts are the check.
func TestPromtoolIngests(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("REWIND_REQUIRE_KERNEL") == "1" {
			t.Fatal("promtool not found; `make test` installs it (Debian package prometheus)")
		}
		t.Skip("promtool not found")
	}
	res, lost := sample()
	dir := t.TempDir()
	file := filepath.Join(dir, "rewind.om")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	ts := float64(time.Now().Add(-time.Hour).Unix())
	if err := Write(f, res, ts, lost); err != nil {
		t.Fatal(err)
	}
	f.Close()
	blocks := filepath.Join(dir, "blocks")
	out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", file, blocks).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
	metas, _ := filepath.Glob(filepath.Join(blocks, "*", "meta.json"))
	if len(metas) != 1 {
		t.Fatalf("promtool wrote %d blocks, want 1\n%s", len(metas), out)
	}
	raw, err := os.ReadFile(metas[0])
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Stats struct {
			NumSamples, NumSeries uint64
		}
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	// Counted from the input: each histogram series is its buckets, +Inf,
	// _count and _sum; each counter and each CPU's lost count one series.
	want := uint64(2*(len(durationBounds)+3) + len(sizeBounds) + 3 + len(res.Counters) + len(lost))
	if meta.Stats.NumSeries != want || meta.Stats.NumSamples != want {
		t.Errorf("block holds %d series and %d samples, want %d of each", meta.Stats.NumSeries, meta.Stats.NumSamples, want)
	}
	if n := Samples(res, lost); uint64(n) != want {
		t.Errorf("Samples says %d, want %d", n, want)
	}
}
