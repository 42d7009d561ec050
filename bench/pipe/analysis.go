package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// The analysis section: `rewind analyze` over a large snapshot of two
// unpinned pipe benchmarks (tasks migrating mid-syscall, so pairs span
// CPUs), against perf's own analyses of the same workload recorded by perf:
// `perf sched latency` (run-queue latency per task) and `perf trace -s`
// (syscall latency summary). Throughput is events per CPU-second of the
// analysing process (user + system time), so per core whatever the
// parallelism; peak memory is its maximum RSS.

var (
	analysisLoops = flag.Int("analysis-loops", 300000, "loops of each of the two pipe benchmarks recorded for the analysis section")
	pipePairOnly  = flag.Bool("pipe-pair", false, "only run the analysis section's workload (what perf records)")
)

// A analysisRun is one analysing command: what it runs and over how many
// events.
type analysisRun struct {
	name, what string
	args       []string
	env        []string
	events     uint64
	cpu        []time.Duration
	wall       []time.Duration
	rss        []int64 // KiB
}

type analysisResult struct {
	runs        []*analysisRun
	snapBytes   int64
	floorCommon float64 // M events/s, decode of the common columns
	floorWanted float64 // M events/s, decode of every column the analyses read
	floorAll    float64 // M events/s, decode of every column
}

// pipePair runs two `perf bench sched pipe` at once, unpinned, each in its
// own process group, and waits for both.
func pipePair() error {
	var cmds []*exec.Cmd
	for i := 0; i < 2; i++ {
		c := exec.Command("perf", "bench", "sched", "pipe", "-l", strconv.Itoa(*analysisLoops))
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			killGroups(cmds)
			return err
		}
		cmds = append(cmds, c)
	}
	var err error
	for _, c := range cmds {
		if e := c.Wait(); e != nil && err == nil {
			err = fmt.Errorf("perf bench: %w", e)
		}
	}
	return err
}

func analysisBench(dir string) (*analysisResult, error) {
	out := filepath.Join(dir, "analysis")
	if err := mkdir(out); err != nil {
		return nil, err
	}
	// rewind: rings large enough to hold the whole workload.
	rec := exec.Command(*rewindBin, "record", "--events", kinds.GroupDefault, "--counters", "none", "--buffer-size", "256MiB", "--output", out)
	if err := startAndWait(rec, "recording"); err != nil {
		return nil, err
	}
	werr := pipePair()
	rec.Process.Signal(syscall.SIGINT)
	if err := rec.Wait(); err != nil || werr != nil {
		return nil, fmt.Errorf("rewind record: %v %v", err, werr)
	}
	snaps, _ := filepath.Glob(filepath.Join(out, "*.rwd"))
	if len(snaps) != 1 {
		return nil, fmt.Errorf("rewind record wrote %d snapshots", len(snaps))
	}
	snap := snaps[0]
	// perf: the same workload, recorded by perf for each of its analyses.
	schedData, traceData := filepath.Join(out, "sched.data"), filepath.Join(out, "trace.data")
	self, _ := os.Executable()
	for _, rec := range [][]string{
		{"perf", "sched", "record", "-o", schedData, "--", self, "-pipe-pair", "-analysis-loops", strconv.Itoa(*analysisLoops)},
		{"perf", "trace", "record", "-o", traceData, "--", self, "-pipe-pair", "-analysis-loops", strconv.Itoa(*analysisLoops)},
	} {
		if b, err := exec.Command(rec[0], rec[1:]...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(rec[:3], " "), err, b)
		}
	}
	res := &analysisResult{}
	if st, err := os.Stat(snap); err == nil {
		res.snapBytes = st.Size()
	}
	events, err := snapshotEvents(snap)
	if err != nil {
		return nil, err
	}
	schedEvents, err := perfSamples(schedData)
	if err != nil {
		return nil, err
	}
	traceEvents, err := perfSamples(traceData)
	if err != nil {
		return nil, err
	}
	one := []string{"GOMAXPROCS=1"}
	res.runs = []*analysisRun{
		{name: "rewind analyze", what: "all analyses, 1 core", args: []string{*rewindBin, "analyze", "--format", "json", snap}, env: one, events: events},
		{name: "rewind analyze", what: fmt.Sprintf("all analyses, %d cores", runtime.NumCPU()), args: []string{*rewindBin, "analyze", "--format", "json", snap}, events: events},
		{name: "rewind analyze --only runq_latency,offcpu,oncpu", what: "scheduling, 1 core", args: []string{*rewindBin, "analyze", "--only", "runq_latency,offcpu,oncpu", "--format", "json", snap}, env: one, events: events},
		{name: "perf sched latency", what: "scheduling", args: []string{"perf", "sched", "latency", "-i", schedData}, events: schedEvents},
		{name: "rewind analyze --only syscall_latency", what: "syscalls, 1 core", args: []string{*rewindBin, "analyze", "--only", "syscall_latency", "--format", "json", snap}, env: one, events: events},
		{name: "perf trace -s", what: "syscalls", args: []string{"perf", "trace", "-s", "-i", traceData}, events: traceEvents},
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for round := 0; round < *rounds; round++ {
		for _, i := range rng.Perm(len(res.runs)) {
			r := res.runs[i]
			cmd := exec.Command(r.args[0], r.args[1:]...)
			cmd.Env = append(os.Environ(), r.env...)
			start := time.Now()
			if b, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("%s: %v: %.500s", strings.Join(r.args, " "), err, b)
			}
			r.wall = append(r.wall, time.Since(start))
			r.cpu = append(r.cpu, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
			r.rss = append(r.rss, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
			fmt.Fprintf(os.Stderr, "bench: analysis round %d %-45s %v cpu\n", round+1, r.name+" ("+r.what+")", r.cpu[len(r.cpu)-1])
		}
	}
	res.floorCommon, res.floorWanted, res.floorAll, err = decodeFloor(snap)
	return res, err
}

// snapshotEvents reads a snapshot's event count from `rewind info --json`.
func snapshotEvents(path string) (uint64, error) {
	b, err := exec.Command(*rewindBin, "info", "--json", path).Output()
	if err != nil {
		return 0, fmt.Errorf("rewind info: %w", err)
	}
	var info struct {
		Events uint64 `json:"events_total"`
	}
	if err := json.Unmarshal(b, &info); err != nil || info.Events == 0 {
		return 0, fmt.Errorf("rewind info --json: %v", err)
	}
	return info.Events, nil
}

var samplesLine = regexp.MustCompile(`(?m)^\s+SAMPLE events:\s+(\d+)`)

// perfSamples is the number of samples (tracepoint hits) in a perf.data.
func perfSamples(path string) (uint64, error) {
	b, err := exec.Command("perf", "report", "--stats", "-i", path).Output()
	if err != nil {
		return 0, fmt.Errorf("perf report --stats %s: %w", path, err)
	}
	m := samplesLine.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("perf report --stats %s: no SAMPLE events line", path)
	}
	return strconv.ParseUint(string(m[1]), 10, 64)
}

// decodeFloor measures, on one thread, how fast this build reads the
// snapshot's chunks (checksum, decompression, column decoding) with no
// analysis at all: the common columns, the analyses' columns, every
// column. No analysis can be faster than the second.
func decodeFloor(path string) (common, wanted, all float64, err error) {
	r, err := snapshot.Open(path)
	if err != nil {
		return 0, 0, 0, err
	}
	defer r.Close()
	s := r.Schema()
	var analyses snapshot.Want
	for event, fields := range map[string][]string{
		kinds.SchedSwitch:    {kinds.FieldPrevComm, kinds.FieldNextTID, kinds.FieldPrevState},
		kinds.SchedWaking:    {kinds.FieldTargetTID, kinds.FieldTargetPID},
		kinds.SchedWakeupNew: {kinds.FieldTargetTID, kinds.FieldTargetPID},
		kinds.SysEnter:       {kinds.FieldID},
		kinds.SysExit:        {kinds.FieldID, kinds.FieldRet},
	} {
		for _, f := range fields {
			analyses.Field(s, event, f)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rate := func(want *snapshot.Want) (float64, error) {
		var c snapshot.Chunk
		best := 0.0
		for round := 0; round < 3; round++ {
			n := 0
			t0 := threadCPU()
			for _, sec := range r.Chunks() {
				if err := r.ReadChunkWant(sec, &c, want); err != nil {
					return 0, err
				}
				n += c.Len()
			}
			best = max(best, float64(n)/(threadCPU()-t0).Seconds()/1e6)
		}
		return best, nil
	}
	if common, err = rate(&snapshot.Want{}); err != nil {
		return
	}
	if wanted, err = rate(&analyses); err != nil {
		return
	}
	all, err = rate(nil)
	return
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (a *analysisResult) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Analysis throughput: two unpinned `perf bench sched pipe -l %d` at once\n\n", *analysisLoops)
	fmt.Fprintf(&b, "rewind recorded the default events into 256 MiB per CPU and analysed the %d-event snapshot (%.1f MiB); perf recorded the same workload with `perf sched record` and `perf trace record`. Medians of %d rounds, interleaved; events/s per core = events ÷ (user + system CPU time).\n\n",
		a.runs[0].events, float64(a.snapBytes)/(1<<20), *rounds)
	b.WriteString("| analyser | analyses | events read | CPU (median) | wall (median) | events/s per core | perf's CPU ÷ rewind's | peak RSS |\n|---|---|---|---|---|---|---|---|\n")
	perf := map[string]time.Duration{}
	for _, r := range a.runs {
		if strings.HasPrefix(r.name, "perf") {
			perf[r.what] = medianDur(r.cpu)
		}
	}
	for _, r := range a.runs {
		ratio := "–"
		if p := perf[strings.TrimSuffix(r.what, ", 1 core")]; p > 0 && !strings.HasPrefix(r.name, "perf") {
			ratio = fmt.Sprintf("**%.1f ×**", p.Seconds()/medianDur(r.cpu).Seconds())
		}
		fmt.Fprintf(&b, "| `%s` | %s | %d | %v | %v | %.1f M | %s | %.0f MiB |\n", r.name, r.what, r.events,
			medianDur(r.cpu).Round(time.Millisecond), medianDur(r.wall).Round(time.Millisecond), r.rate()/1e6, ratio, float64(maxInt(r.rss))/1024)
	}
	b.WriteString("\nEach analyser reads its own recording of the same workload: rewind's snapshot holds every default event (its scheduling and syscall analyses skip the others), perf's files only the events of the one analysis. The ratio compares CPU time for the same question about the same workload.\n")
	fmt.Fprintf(&b, "\nReading the same snapshot with no analysis, on one thread (checksums, zstd, column decoding): %.0f M events/s with the common columns only, %.0f M/s with the columns the analyses read, %.0f M/s with every column.\n",
		a.floorCommon, a.floorWanted, a.floorAll)
	return b.String()
}

func (r *analysisRun) rate() float64 {
	return float64(r.events) / medianDur(r.cpu).Seconds()
}

func medianDur(d []time.Duration) time.Duration {
	v := make([]float64, len(d))
	for i, x := range d {
		v[i] = float64(x)
	}
	return time.Duration(median(v))
}

func maxInt(v []int64) int64 {
	var m int64
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
