package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/internal/testkernel"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/snaptest"
)

var rewindBin string

// TestMain builds the binary once; the test binary doubles as a workload
// child when REWIND_TEST_CHILD is set.
func TestMain(m *testing.M) {
	switch os.Getenv("REWIND_TEST_CHILD") {
	case "spin":
		spin()
		return
	case "step":
		stepChild()
		return
	}
	dir, err := os.MkdirTemp("", "rewind-e2e")
	if err != nil {
		panic(err)
	}
	rewindBin = filepath.Join(dir, "rewind")
	cmd := exec.Command("go", "build", "-o", rewindBin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// spin makes system calls on the CPU in REWIND_TEST_CPU until stdin closes.
func spin() {
	runtime.LockOSThread()
	n, _ := strconv.Atoi(os.Getenv("REWIND_TEST_CPU"))
	var set unix.CPUSet
	set.Set(n)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		os.Exit(2)
	}
	done := make(chan struct{})
	go func() { var b [1]byte; os.Stdin.Read(b[:]); close(done) }()
	for {
		select {
		case <-done:
			os.Exit(0)
		default:
		}
		for i := 0; i < 1000; i++ {
			syscall.Getppid()
		}
		time.Sleep(time.Millisecond)
	}
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(rewindBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func spinOn(t *testing.T, cpu int) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "REWIND_TEST_CHILD=spin", "REWIND_TEST_CPU="+strconv.Itoa(cpu))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
}

type infoOut struct {
	CPUs        int    `json:"cpus"`
	EventsTotal uint64 `json:"events_total"`
	LostTotal   uint64 `json:"lost_total"`
	PerCPU      []struct {
		CPU     int    `json:"cpu"`
		Events  uint64 `json:"events"`
		Lost    uint64 `json:"lost"`
		FirstNS uint64 `json:"first_ns"`
		LastNS  uint64 `json:"last_ns"`
	} `json:"per_cpu"`
	EventCounts map[string]uint64 `json:"event_counts"`
	Trigger     struct {
		Kind   string `json:"kind"`
		Signal string `json:"signal"`
	} `json:"trigger"`
	Damaged []any `json:"damaged"`
}

func info(t *testing.T, path string) infoOut {
	t.Helper()
	r := run(t, "info", "--json", path)
	if r.code != 0 {
		t.Fatalf("info %s: exit %d: %s", path, r.code, r.stderr)
	}
	var out infoOut
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("info --json: %v\n%s", err, r.stdout)
	}
	return out
}

// `rewind record --duration 3s` with work on both CPUs records both; two
// SIGUSR1 while it runs give two more readable snapshots.
func TestRecordSignalsAndDuration(t *testing.T) {
	testkernel.Require(t)
	dir := t.TempDir()
	spinOn(t, 0)
	spinOn(t, 1)
	cmd := exec.Command(rewindBin, "record", "--duration", "3s", "--buffer-size", "8MiB", "--output", dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	ready := make(chan string, 1)
	go func() {
		var all []string
		for sc.Scan() {
			all = append(all, sc.Text())
			if strings.Contains(sc.Text(), "recording") {
				ready <- sc.Text()
			}
		}
		ready <- strings.Join(all, "\n")
	}()
	select {
	case line := <-ready:
		if !strings.Contains(line, "recording") {
			t.Fatalf("record did not start: %s", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("record did not start within 20s")
	}
	for i := 0; i < 2; i++ {
		before := countFiles(t, dir)
		if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return countFiles(t, dir) > before })
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("record: %v\n%s", err, stdout.String())
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.rwd"))
	if len(files) != 3 {
		t.Fatalf("%d snapshots, want 3: %v\n%s", len(files), files, stdout.String())
	}
	kinds := map[string]int{}
	for _, f := range files {
		in := info(t, f)
		kinds[in.Trigger.Kind]++
		if in.CPUs != 2 && runtime.NumCPU() == 2 {
			t.Errorf("%s: %d CPUs", f, in.CPUs)
		}
		seen := map[int]uint64{}
		for _, c := range in.PerCPU {
			seen[c.CPU] = c.Events
			if c.Events > 0 && c.LastNS < c.FirstNS {
				t.Errorf("%s cpu %d: window %d..%d", f, c.CPU, c.FirstNS, c.LastNS)
			}
		}
		if seen[0] == 0 || seen[1] == 0 {
			t.Errorf("%s: events per CPU %v, want both CPUs", f, seen)
		}
		if in.EventCounts["sys_enter"] == 0 || in.EventCounts["sched_switch"] == 0 {
			t.Errorf("%s: event counts %v", f, in.EventCounts)
		}
		if !strings.Contains(filepath.Base(f), "rewind-") {
			t.Errorf("file name %s", f)
		}
	}
	if kinds["signal"] != 2 || kinds["duration"] != 1 {
		t.Errorf("trigger kinds %v, want 2 signal and 1 duration", kinds)
	}
	host, _ := os.Hostname()
	if !strings.Contains(filepath.Base(files[0]), host) {
		t.Errorf("file name %s does not carry host %s", files[0], host)
	}
	// view --json prints one object per line with the documented keys.
	r := run(t, "view", "--json", "--event", "sys_enter,sys_exit", "--limit", "50", files[0])
	if r.code != 0 {
		t.Fatalf("view: %s", r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 50 {
		t.Fatalf("view --limit 50 printed %d lines", len(lines))
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("view line %q: %v", l, err)
		}
		for _, k := range []string{"ts_ns", "cpu", "event", "tid", "pid", "comm", "id", "syscall"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("view line lacks %q: %s", k, l)
			}
		}
		if m["event"] == "sys_exit" {
			if _, ok := m["ret"]; !ok {
				t.Fatalf("sys_exit without ret: %s", l)
			}
		}
	}
}

func countFiles(t *testing.T, dir string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "*.rwd"))
	return len(files)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeSynthetic writes a snapshot without the kernel, for the tests of
// damaged input.
func writeSynthetic(t *testing.T) string {
	s, err := schema.New(snaptest.SyscallEvents()[:1])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "synthetic.rwd")
	w, err := snapshot.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteMeta(&snapshot.Meta{Recorder: "test", CPUs: 1, Kernel: snapshot.Kernel{Machine: "x86_64"}, Trigger: snapshot.Trigger{Kind: "manual"}})
	w.WriteSchema(s)
	w.WriteProcs(nil)
	enc := snapshot.NewEncoder(s)
	for c := 0; c < 4; c++ {
		ev := make([]snapshot.Event, 1000)
		for i := range ev {
			d := make([]byte, 40)
			d[0] = 110
			ev[i] = snapshot.Event{TS: uint64(c*1000+i) * 1000, Seq: uint64(c*1000 + i), TID: 5, PID: 5, Type: 7, Data: d}
		}
		p, sum, err := enc.EncodeChunk(snapshot.ChunkInput{Events: ev, FirstSeq: uint64(c * 1000), NextSeq: uint64(c*1000 + 1000)})
		if err != nil {
			t.Fatal(err)
		}
		w.WriteChunk(p, sum)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTruncatedSnapshot(t *testing.T) {
	path := writeSynthetic(t)
	data, _ := os.ReadFile(path)
	cut := filepath.Join(t.TempDir(), "cut.rwd")
	os.WriteFile(cut, data[:len(data)*3/4], 0o644)

	r := run(t, "info", "--json", cut)
	if r.code != 0 || !strings.Contains(r.stderr, "warning") || !strings.Contains(r.stderr, "damaged bytes") {
		t.Fatalf("info on a truncated file: exit %d, stderr %q", r.code, r.stderr)
	}
	var in infoOut
	if err := json.Unmarshal([]byte(r.stdout), &in); err != nil {
		t.Fatal(err)
	}
	if in.EventsTotal == 0 || in.EventsTotal >= 4000 || len(in.Damaged) == 0 {
		t.Fatalf("truncated file: %d events, damage %v", in.EventsTotal, in.Damaged)
	}
	v := run(t, "view", cut)
	if v.code != 0 || strings.Count(v.stdout, "\n") != int(in.EventsTotal) || !strings.Contains(v.stderr, "damaged bytes") {
		t.Fatalf("view on a truncated file: exit %d, %d lines for %d events, stderr %q", v.code, strings.Count(v.stdout, "\n"), in.EventsTotal, v.stderr)
	}
	if !strings.Contains(v.stdout, "id=110(getppid)") {
		t.Fatalf("view does not name syscalls: %q", v.stdout[:200])
	}
	a := run(t, "analyze", "--format", "json", cut)
	var out analyzeOut
	if a.code != 0 || !strings.Contains(a.stderr, "damaged bytes") || json.Unmarshal([]byte(a.stdout), &out) != nil {
		t.Fatalf("analyze on a truncated file: exit %d, stderr %q", a.code, a.stderr)
	}
	for _, cmd := range []string{"info", "view", "analyze"} {
		s := run(t, cmd, "--strict", cut)
		if s.code != 1 || !strings.Contains(s.stderr, "damaged bytes") {
			t.Fatalf("%s --strict on a truncated file: exit %d, stderr %q", cmd, s.code, s.stderr)
		}
	}
}

func TestNotASnapshot(t *testing.T) {
	junk := make([]byte, 10000)
	rand.New(rand.NewSource(1)).Read(junk)
	path := filepath.Join(t.TempDir(), "junk.rwd")
	os.WriteFile(path, junk, 0o644)
	// A valid header followed by garbage: the header is broken.
	broken := filepath.Join(t.TempDir(), "broken.rwd")
	data, _ := os.ReadFile(writeSynthetic(t))
	os.WriteFile(broken, append(data[:16:16], junk...), 0o644)
	for _, c := range []struct{ file, want string }{
		{path, "not a rewind snapshot"},
		{broken, "snapshot header is broken"},
		{filepath.Join(t.TempDir(), "missing.rwd"), "no such file"},
	} {
		for _, cmd := range []string{"info", "view", "analyze"} {
			r := run(t, cmd, c.file)
			if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "panic") {
				t.Errorf("%s %s: exit %d, stderr %q; want one line with %q", cmd, filepath.Base(c.file), r.code, r.stderr, c.want)
			}
		}
	}
}

func TestRecordBadCgroup(t *testing.T) {
	testkernel.Require(t)
	r := run(t, "record", "--cgroup", "/nonexistent/cgroup", "--duration", "1s", "--output", t.TempDir())
	if r.code != 1 || !strings.Contains(r.stderr, "cgroup /nonexistent/cgroup") {
		t.Fatalf("record --cgroup /nonexistent/cgroup: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestListEvents(t *testing.T) {
	r := run(t, "list", "--events", "--json")
	if r.code != 0 {
		t.Fatalf("list: %s", r.stderr)
	}
	var out struct {
		Verified bool `json:"verified"`
		Events   []struct {
			Name      string `json:"name"`
			Group     string `json:"group"`
			Supported bool   `json:"supported"`
			Reason    string `json:"reason"`
		} `json:"events"`
		Groups map[string][]string `json:"groups"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Events) < 37 || len(out.Groups["all"]) != len(out.Events) || len(out.Groups["default"]) == 0 {
		t.Fatalf("list --events --json: %d events, groups %v", len(out.Events), out.Groups)
	}
	for _, e := range out.Events {
		if e.Group == "" || !e.Supported && e.Reason == "" {
			t.Errorf("event %+v: no group, or unsupported without a reason", e)
		}
	}
	for _, g := range []string{"sched", "syscalls", "block", "irq", "faults", "signals", "process", "net", "memory", "lock", "workqueue", "power"} {
		if len(out.Groups[g]) == 0 {
			t.Errorf("no group %s", g)
		}
	}
}

// Without privileges, record says exactly what is missing.
func TestRecordUnprivileged(t *testing.T) {
	testkernel.Require(t)
	if err := os.Chmod(filepath.Dir(rewindBin), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(rewindBin, "record", "--duration", "1s", "--output", "/tmp")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "needs root, or CAP_BPF and CAP_PERFMON") || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("unprivileged record: %v, %q", err, out)
	}
}

func TestBadInput(t *testing.T) {
	snap := writeSynthetic(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"record", "--buffer-size", "12qq"}, "--buffer-size"},
		{[]string{"record", "--buffer-size", "2GiB"}, "between 4KiB and 1GiB"},
		{[]string{"record", "--events", "sched,nope"}, `unknown event or group "nope"`},
		{[]string{"record", "--pid", "abc"}, `--pid "abc"`},
		{[]string{"record", "--comm", "a-name-longer-than-15"}, "at most 15 bytes"},
		{[]string{"record", "--output", "/nonexistent/dir"}, "--output"},
		{[]string{"record", "--duration", "soon"}, "duration"},
		{[]string{"record", "extra"}, "no arguments"},
		{[]string{"info"}, "want one snapshot file"},
		{[]string{"view", "--from", "yesterday", snap}, `--from "yesterday"`},
		{[]string{"view", "--event", "nope", snap}, `--event "nope"`},
		{[]string{"view", "--cpu", "-3", snap}, "must not be negative"},
		{[]string{"nosuchcommand"}, "nosuchcommand"},
		{[]string{"record", "--btf", "/nonexistent/vmlinux", "--duration", "1s", "--output", t.TempDir()}, "kernel BTF file"},
		{[]string{"list", "--sessions", "--socket", "/nonexistent/rewind.sock"}, "no rewind daemon listens on /nonexistent/rewind.sock"},
		{[]string{"list", "extra"}, "no arguments"},
		{[]string{"record", "--counters", "cpu,nope"}, `--counters: unknown source "nope"`},
		{[]string{"record", "--counters", "cpu@5000"}, "want 1 to 1000 samples a second"},
		{[]string{"record", "--counter-rate", "0"}, "--counter-rate 0"},
		{[]string{"record", "--counter-history", "-1s"}, "--counter-history"},
		{[]string{"record", "--stacks", "-1"}, "--stacks -1"},
		{[]string{"view", "--counters", "nope", snap}, `--counters "nope"`},
	} {
		r := run(t, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "panic") {
			t.Errorf("rewind %s: exit %d, stderr %q; want an error naming %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}

// writeSyscalls writes a one-CPU snapshot of n getppid calls by process 5
// ("worker"), one every 10 µs, each lasting d ns.
func writeSyscalls(t *testing.T, name string, n int, d uint64) string {
	t.Helper()
	s, err := schema.New(snaptest.SyscallEvents())
	if err != nil {
		t.Fatal(err)
	}
	var ev []snapshot.Event
	for i := 0; i < n; i++ {
		enter, exit := make([]byte, 40), make([]byte, 16)
		enter[0], exit[0] = 110, 110
		ts := 2e9 + uint64(i+1)*10000
		ev = append(ev, snapshot.Event{TS: ts, Seq: uint64(2 * i), TID: 5, PID: 5, Type: 7, Data: enter},
			snapshot.Event{TS: ts + d, Seq: uint64(2*i + 1), TID: 5, PID: 5, Type: 8, Data: exit})
	}
	path := filepath.Join(t.TempDir(), name)
	meta := &snapshot.Meta{Recorder: "test", CPUs: 1, Kernel: snapshot.Kernel{Machine: "x86_64"}, Trigger: snapshot.Trigger{Kind: "manual"}}
	procs := []snapshot.Proc{{PID: 5, Comm: "worker", Threads: []snapshot.Thread{{TID: 5, Comm: "worker"}}}}
	// A CPU's busy time, sampled every 10 ms: busy for one interval in
	// 100 (the burst), idle otherwise.
	cpu := &snapshot.Series{Source: "cpu", RateHz: 100, Fields: []snapshot.SeriesField{
		{Name: "user", Labels: map[string]string{"cpu": "0"}, Unit: "ns", Kind: snapshot.SeriesCounter},
		{Name: "running", Unit: "tasks", Kind: snapshot.SeriesGauge}}}
	cpu.Values = make([][]uint64, 2)
	var busy uint64
	for i := 0; i <= 200; i++ {
		cpu.TS = append(cpu.TS, 10e6+uint64(i)*10e6)
		if i == 150 {
			busy += 10e6
		}
		cpu.Values[0] = append(cpu.Values[0], busy)
		cpu.Values[1] = append(cpu.Values[1], 1)
	}
	snaptest.Write(t, path, meta, s, procs, []snapshot.ChunkInput{{Events: ev, FirstSeq: 0, NextSeq: uint64(len(ev))}}, cpu)
	return path
}

type analyzeOut struct {
	Skipped    map[string]string `json:"skipped"`
	Histograms []struct {
		Name    string            `json:"name"`
		Labels  map[string]string `json:"labels"`
		Count   uint64            `json:"count"`
		P50     uint64            `json:"p50"`
		Buckets []struct {
			Le    uint64 `json:"le"`
			Count uint64 `json:"count"`
		} `json:"buckets"`
	} `json:"histograms"`
	Counters []struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
		Value  uint64            `json:"value"`
	} `json:"counters"`
	Processes []struct {
		PID      uint32 `json:"pid"`
		Comm     string `json:"comm"`
		Syscalls uint64 `json:"syscalls"`
	} `json:"processes"`
}

func analyzeJSON(t *testing.T, args ...string) analyzeOut {
	t.Helper()
	r := run(t, append([]string{"analyze", "--format", "json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("analyze %v: exit %d: %s", args, r.code, r.stderr)
	}
	var out analyzeOut
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("analyze --format json: %v\n%s", err, r.stdout)
	}
	return out
}

// getppids is the count and p50 of the getppid latency histogram.
func (o analyzeOut) getppids() (uint64, uint64) {
	for _, h := range o.Histograms {
		if h.Name == "syscall_latency" && h.Labels["by"] == "syscall" && h.Labels["syscall"] == "getppid" {
			return h.Count, h.P50
		}
	}
	return 0, 0
}

func within(v, want uint64, rel float64) bool {
	return float64(v) >= float64(want)*(1-rel) && float64(v) <= float64(want)*(1+rel)
}

func TestAnalyze(t *testing.T) {
	path := writeSyscalls(t, "a.rwd", 1000, 2000)

	text := run(t, "analyze", path)
	for _, want := range []string{"== syscall_latency", "getppid", "== runq_latency: skipped", "1000 samples", "worker"} {
		if text.code != 0 || !strings.Contains(text.stdout, want) {
			t.Errorf("analyze: exit %d, output lacks %q:\n%s%s", text.code, want, text.stdout, text.stderr)
		}
	}

	out := analyzeJSON(t, path)
	if n, p50 := out.getppids(); n != 1000 || !within(p50, 2000, 0.01) {
		t.Errorf("json: %d getppid calls, p50 %d; want 1000 of 2000 ns", n, p50)
	}
	if out.Skipped["runq_latency"] == "" || len(out.Processes) != 1 || out.Processes[0].Comm != "worker" || out.Processes[0].Syscalls != 1000 {
		t.Errorf("json: skipped %v, processes %+v", out.Skipped, out.Processes)
	}
	for _, h := range out.Histograms {
		if n := len(h.Buckets); n == 0 || h.Buckets[n-1].Count != h.Count {
			t.Errorf("%s %v: cumulative buckets end at %v, count %d", h.Name, h.Labels, h.Buckets, h.Count)
		}
	}

	// Selection: the last 5 ms hold the last 500 calls; pid 6 made none.
	if n, _ := analyzeJSON(t, "--last", "5ms", path).getppids(); n < 499 || n > 501 {
		t.Errorf("--last 5ms: %d calls, want 500", n)
	}
	if n, _ := analyzeJSON(t, "--pid", "6", path).getppids(); n != 0 {
		t.Errorf("--pid 6: %d calls, want none", n)
	}
	if o := analyzeJSON(t, "--only", "processes", path); len(o.Histograms) != 0 || len(o.Processes) != 1 {
		t.Errorf("--only processes: %d histograms, %d processes", len(o.Histograms), len(o.Processes))
	}

	// Counters: the one busy interval in 2 s is a max of 100% and a mean
	// of 0.5%.
	var rates struct {
		Rates []struct {
			Name      string            `json:"name"`
			Labels    map[string]string `json:"labels"`
			Mean, Max float64
			Windows   []struct{ Max, P99 float64 }
		} `json:"counters_rates"`
	}
	cr := run(t, "analyze", "--only", "counters", "--format", "json", path)
	if err := json.Unmarshal([]byte(cr.stdout), &rates); err != nil || cr.code != 0 {
		t.Fatalf("analyze --only counters: exit %d, %v: %s", cr.code, err, cr.stderr)
	}
	found := false
	for _, r := range rates.Rates {
		if r.Name == "user" && r.Labels["cpu"] == "0" {
			found = true
			burst := 0
			for _, w := range r.Windows {
				if w.Max == 1e9 {
					burst++
				}
			}
			if r.Max != 1e9 || r.Mean != 5e6 || burst != 1 {
				t.Errorf("user{cpu=0}: %+v; want a max of 1e9 ns/s and a mean of 5e6", r)
			}
		}
	}
	if !found {
		t.Errorf("no user{cpu=0} rates: %s", cr.stdout)
	}
	vc := run(t, "view", "--counters", "cpu", "--event", "none", "--limit", "2", path)
	if vc.code != 0 || strings.Count(vc.stdout, "counters cpu: user{cpu=0}=0 running=1") != 2 {
		t.Errorf("view --counters: exit %d: %q %s", vc.code, vc.stdout, vc.stderr)
	}

	om := run(t, "analyze", "--format", "openmetrics", path)
	if om.code != 0 || !strings.HasSuffix(om.stdout, "# EOF\n") ||
		!strings.Contains(om.stdout, `rewind_syscall_latency_seconds_count{by="syscall",syscall="getppid"} 1000 `) {
		t.Errorf("openmetrics: exit %d:\n%s%s", om.code, om.stdout, om.stderr)
	}
}

// diff pairs the same series of two runs, per-process ones by name, and
// gives the change in each percentile.
func TestDiff(t *testing.T) {
	a, b := writeSyscalls(t, "a.rwd", 1000, 2000), writeSyscalls(t, "b.rwd", 1000, 3000)
	r := run(t, "diff", "--format", "json", a, b)
	if r.code != 0 {
		t.Fatalf("diff: exit %d: %s", r.code, r.stderr)
	}
	var d struct {
		Before, After struct{ File string }
		Histograms    []struct {
			Name          string            `json:"name"`
			Labels        map[string]string `json:"labels"`
			Before, After *struct{ P50 uint64 }
			Change        map[string]float64 `json:"change"`
		} `json:"histograms"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("diff json: %v\n%s", err, r.stdout)
	}
	found := 0
	for _, h := range d.Histograms {
		if h.Name != "syscall_latency" {
			continue
		}
		if h.Before == nil || h.After == nil || h.Change["p50"] < 0.48 || h.Change["p50"] > 0.52 {
			t.Errorf("%v: before %+v after %+v change %v; want p50 +50%%", h.Labels, h.Before, h.After, h.Change)
		}
		if h.Labels["by"] == "process" && (h.Labels["comm"] != "worker" || h.Labels["pid"] != "") {
			t.Errorf("per-process row %v: want it by name", h.Labels)
		}
		found++
	}
	if found != 3 || d.Before.File != a || d.After.File != b {
		t.Errorf("diff: %d syscall_latency rows (want all, by syscall, by process), files %s %s", found, d.Before.File, d.After.File)
	}
	text := run(t, "diff", a, b)
	if text.code != 0 || !strings.Contains(text.stdout, "(+50%)") {
		t.Errorf("diff text: exit %d:\n%s%s", text.code, text.stdout, text.stderr)
	}
}

func TestAnalyzeBadInput(t *testing.T) {
	snap := writeSyscalls(t, "a.rwd", 10, 2000)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"analyze"}, "want one snapshot file"},
		{[]string{"analyze", "--format", "xml", snap}, `--format "xml"`},
		{[]string{"analyze", "--only", "runq_latency,nope", snap}, `--only: unknown analysis "nope"`},
		{[]string{"analyze", "--last", "1s", "--from", "0s", snap}, "--last"},
		{[]string{"analyze", "--last", "-1s", snap}, "--last"},
		{[]string{"analyze", "--error", "0.7", snap}, "--error: relative error 0.7"},
		{[]string{"analyze", "--pid", "x", snap}, `--pid "x"`},
		{[]string{"analyze", "--cpu", "-1", snap}, `--cpu "-1"`},
		{[]string{"analyze", "--to", "soon", snap}, `--to "soon"`},
		{[]string{"analyze", "--top", "0", snap}, "--top 0"},
		{[]string{"analyze", filepath.Join(t.TempDir(), "missing.rwd")}, "no such file"},
		{[]string{"diff", snap}, "want two snapshot files"},
		{[]string{"diff", "--format", "openmetrics", snap, snap}, `--format "openmetrics"`},
	} {
		r := run(t, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "panic") || r.stdout != "" {
			t.Errorf("rewind %s: exit %d, stdout %q, stderr %q; want an error naming %q", strings.Join(c.args, " "), r.code, r.stdout, r.stderr, c.want)
		}
	}
}

// record --json prints one line per snapshot, matching the file it wrote,
// with a time breakdown that adds up.
func TestRecordJSON(t *testing.T) {
	testkernel.Require(t)
	dir := t.TempDir()
	r := run(t, "record", "--duration", "1s", "--buffer-size", "4MiB", "--counters", "cpu", "--json", "--output", dir)
	if r.code != 0 {
		t.Fatalf("record: exit %d: %s", r.code, r.stderr)
	}
	var s struct {
		Path    string `json:"path"`
		Bytes   int64  `json:"bytes"`
		Events  uint64 `json:"events"`
		Lost    uint64 `json:"lost"`
		Samples uint64 `json:"counter_samples"`
		Trigger struct {
			Kind   string `json:"kind"`
			Detail string `json:"detail"`
		} `json:"trigger"`
		ReadMS   *float64 `json:"read_ms"`
		EncodeMS *float64 `json:"encode_ms"`
		CommitMS *float64 `json:"commit_ms"`
		TotalMS  *float64 `json:"total_ms"`
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one JSON line, got %q", r.stdout)
	}
	dec := json.NewDecoder(strings.NewReader(lines[0]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("%v: %s", err, lines[0])
	}
	st, err := os.Stat(s.Path)
	if err != nil || filepath.Dir(s.Path) != dir || st.Size() != s.Bytes {
		t.Fatalf("path %q, bytes %d: %v %v", s.Path, s.Bytes, st, err)
	}
	if s.Events == 0 || s.Samples == 0 || s.Trigger.Kind != "duration" || s.Trigger.Detail != "1s" {
		t.Fatalf("snapshot line: %s", lines[0])
	}
	if s.ReadMS == nil || s.EncodeMS == nil || s.CommitMS == nil || s.TotalMS == nil {
		t.Fatalf("a time is missing: %s", lines[0])
	}
	parts := *s.ReadMS + *s.EncodeMS + *s.CommitMS
	if *s.ReadMS < 0 || *s.EncodeMS < 0 || *s.CommitMS < 0 || parts > *s.TotalMS*1.001+0.01 || parts < *s.TotalMS*0.999-0.01 {
		t.Fatalf("read %v + encode %v + commit %v is not total %v", *s.ReadMS, *s.EncodeMS, *s.CommitMS, *s.TotalMS)
	}
	info := run(t, "info", "--json", s.Path)
	var in struct {
		Events uint64 `json:"events_total"`
		Lost   uint64 `json:"lost_total"`
	}
	if info.code != 0 || json.Unmarshal([]byte(info.stdout), &in) != nil || in.Events != s.Events || in.Lost != s.Lost {
		t.Fatalf("info of %s does not count %d events, %d lost: %s", s.Path, s.Events, s.Lost, info.stdout)
	}
}
