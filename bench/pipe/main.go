// Command pipe measures what recording costs per event, side by side in one
// run: rewind's kernel tier, the kernel's own ftrace ring buffer (a tracefs
// instance), and `perf record --overwrite`, each recording sched_switch,
// sys_enter and sys_exit while `perf bench sched pipe` runs pinned to CPU 0
// at SCHED_FIFO 50. The tracers' user-space parts run on CPU 1. Variants are
// interleaved in a shuffled order each round; medians are reported.
//
// ns/event = (µs/op traced − µs/op untraced) × 1000 / events per op, where
// events per op comes from `perf stat` counting the same tracepoints.
//
// A "bpf floor" variant attaches rewind's programs with every event turned
// off: the cost of a tracepoint calling BPF at all, which bounds any BPF
// recorder from below. It also records the default event set during the
// workload and reports the snapshot file's bytes per event. Run it as root:
// `make bench`.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"

	"github.com/rewindtrace/rewind/bpf"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

var (
	rewindBin = flag.String("rewind", "bin/rewind", "rewind binary")
	loops     = flag.Int("loops", 200000, "perf bench sched pipe loops per run")
	rounds    = flag.Int("rounds", 5, "rounds; each runs every variant once, in shuffled order")
	bufMiB    = flag.Int("buffer-mib", 64, "ring size per CPU for every tracer, MiB")
	outFile   = flag.String("o", "", "also write the markdown report to this file")
	sections  = flag.String("sections", "record,snapshots,history,tier,analysis,counters,daemon,triggers", "which sections to run, comma-separated")
)

const tracepoints = "sched:sched_switch,raw_syscalls:sys_enter,raw_syscalls:sys_exit"

// A tracer starts recording and returns a function that stops it and
// reports the CPU time its user-space part used meanwhile.
type tracer struct {
	name  string
	start func(dir string) (stop func() (cpu time.Duration, err error), err error)
}

func main() {
	flag.Parse()
	if *tickFloorOnly {
		tickFloor()
	}
	if *genRate > 0 {
		generate(*genRate, time.Duration(*genSeconds*float64(time.Second)))
		return
	}
	if *pipePairOnly {
		if err := pipePair(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		cleanup()
		os.Exit(1)
	}
	cleanup()
}

// cleanups undo what the run changed on the machine; they also run on
// SIGINT and SIGTERM.
var cleanups []func()

func cleanup() {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

func run() error {
	if os.Geteuid() != 0 {
		return errors.New("run as root (make bench)")
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		cleanup()
		os.Exit(1)
	}()
	for _, tool := range []string{"perf", "taskset", "chrt", *rewindBin} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s: %w", tool, err)
		}
	}
	if err := ensureTracefs(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "rewind-bench")
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })

	on := map[string]bool{}
	for _, sec := range strings.Split(*sections, ",") {
		switch sec {
		case "record", "snapshots", "history", "tier", "analysis", "counters", "daemon", "triggers":
			on[sec] = true
		default:
			return fmt.Errorf("-sections: unknown section %q (record, snapshots, history, tier, analysis, counters, daemon, triggers)", sec)
		}
	}
	var report string
	if on["record"] {
		r, err := recordCost(dir)
		if err != nil {
			return err
		}
		report += r
	}
	if on["snapshots"] {
		snaps, err := snapshotLatency(dir)
		if err != nil {
			return err
		}
		report += snaps.render()
	}
	if on["history"] {
		hist, err := historyTier(dir)
		if err != nil {
			return err
		}
		report += hist.render()
	}
	if on["tier"] {
		t, err := tierBench(dir)
		if err != nil {
			return err
		}
		report += t.render()
	}
	if on["counters"] {
		c, err := counterCost(dir)
		if err != nil {
			return err
		}
		report += c.render()
	}
	if on["daemon"] {
		dr, err := daemonCost(dir)
		if err != nil {
			return err
		}
		report += dr.render()
	}
	if on["triggers"] {
		tr, err := triggerCost(dir)
		if err != nil {
			return err
		}
		report += tr
	}
	if on["analysis"] {
		a, err := analysisBench(dir)
		if err != nil {
			return err
		}
		report += a.render()
	}
	fmt.Print(report)
	if *outFile != "" {
		return os.WriteFile(*outFile, []byte(report), 0o644)
	}
	return nil
}

// recordCost is the first section: what recording costs per event, side
// by side, and the snapshot's bytes per event.
func recordCost(dir string) (string, error) {
	perOp, err := eventsPerOp()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "bench: %.2f events per op (perf stat)\n", perOp)

	tracers := []tracer{
		{"none", func(string) (func() (time.Duration, error), error) {
			return func() (time.Duration, error) { return 0, nil }, nil
		}},
		{"bpf floor", startFloor},
		{"rewind", startRewind},
		{"rewind, 5.10 object", startRewindCompat},
		{"ftrace", startFtrace},
		{"perf --overwrite", startPerf},
	}
	times := map[string][]float64{}
	cpus := map[string][]time.Duration{}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for r := 0; r < *rounds; r++ {
		order := rng.Perm(len(tracers))
		for _, i := range order {
			t := tracers[i]
			stop, err := t.start(dir)
			if err != nil {
				return "", fmt.Errorf("start %s: %w", t.name, err)
			}
			us, werr := workload()
			cpu, serr := stop()
			if err := errors.Join(werr, serr); err != nil {
				return "", fmt.Errorf("%s: %w", t.name, err)
			}
			times[t.name] = append(times[t.name], us)
			cpus[t.name] = append(cpus[t.name], cpu)
			fmt.Fprintf(os.Stderr, "bench: round %d %-16s %.3f µs/op\n", r+1, t.name, us)
		}
	}
	size, err := snapshotSize(dir)
	if err != nil {
		return "", err
	}
	return render(tracers, times, cpus, perOp, size), nil
}

var usPerOp = regexp.MustCompile(`([0-9.]+) usecs/op`)

// workload runs the pipe benchmark pinned to CPU 0 and returns µs per op.
func workload() (float64, error) {
	out, err := exec.Command("chrt", "-f", "50", "taskset", "-c", "0", "perf", "bench", "sched", "pipe", "-l", strconv.Itoa(*loops)).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("perf bench: %v: %s", err, out)
	}
	m := usPerOp.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("perf bench printed no usecs/op: %s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// eventsPerOp counts, with perf stat, the traced events one op makes.
func eventsPerOp() (float64, error) {
	cmd := exec.Command("perf", "stat", "-x", ",", "-e", tracepoints, "--",
		"chrt", "-f", "50", "taskset", "-c", "0", "perf", "bench", "sched", "pipe", "-l", strconv.Itoa(*loops))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("perf stat: %v: %s", err, out)
	}
	var total float64
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ",")
		if len(f) > 3 && strings.Contains(line, ":") {
			if n, err := strconv.ParseFloat(f[0], 64); err == nil && strings.Contains(tracepoints, f[2]) {
				total += n
			}
		}
	}
	if total == 0 {
		return 0, fmt.Errorf("perf stat counted nothing: %s", out)
	}
	return total / float64(*loops), nil
}

// startFloor attaches rewind's programs in this process with every event
// turned off, so each runs only to its first check: the cost of the
// tracepoint calling BPF at all, which no BPF recorder can go below.
// pipeEvents are the events the recording variants trace: what `perf bench
// sched pipe` makes.
var pipeEvents = []string{kinds.SchedSwitch, kinds.SysEnter, kinds.SysExit}

func startFloor(string) (func() (time.Duration, error), error) {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	objs, err := bpf.Load(bpf.Options{CPUs: cpus, SlotsPerCPU: bpf.MinSlots, SelfTGID: uint32(os.Getpid())})
	if err != nil {
		return nil, err
	}
	for _, e := range pipeEvents {
		if err := errors.Join(objs.Enable(e), objs.Disable(e)); err != nil {
			objs.Close()
			return nil, err
		}
	}
	cleanups = append(cleanups, func() { objs.Close() })
	return func() (time.Duration, error) { return 0, objs.Close() }, nil
}

func startRewind(dir string) (func() (time.Duration, error), error) {
	return startRewindWith(dir)
}

// startRewindCompat records with the object built for kernels without
// fetching atomics (5.10, 5.11), whose reservation is a flag and a plain
// load and store instead of an atomic add.
func startRewindCompat(dir string) (func() (time.Duration, error), error) {
	return startRewindWith(dir, "--compat-object")
}

func startRewindWith(dir string, flags ...string) (func() (time.Duration, error), error) {
	args := append([]string{"-c", "1", *rewindBin, "record", "--events", strings.Join(pipeEvents, ","), "--counters", "none",
		"--buffer-size", fmt.Sprintf("%dMiB", *bufMiB), "--output", dir, "--no-final-snapshot"}, flags...)
	cmd := exec.Command("taskset", args...)
	if err := startAndWait(cmd, "recording"); err != nil {
		return nil, err
	}
	cpu0 := cpuTime(cmd.Process.Pid)
	return func() (time.Duration, error) {
		cpu := cpuTime(cmd.Process.Pid) - cpu0
		cmd.Process.Signal(syscall.SIGINT)
		return cpu, cmd.Wait()
	}, nil
}

// startAndWait starts cmd and waits until its stderr prints a line holding
// ready.
func startAndWait(cmd *exec.Cmd, ready string) error {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	cleanups = append(cleanups, func() { cmd.Process.Kill() })
	found := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var lines []string
		for sc.Scan() {
			if strings.Contains(sc.Text(), ready) {
				found <- nil
				for sc.Scan() {
				}
				return
			}
			lines = append(lines, sc.Text())
		}
		found <- fmt.Errorf("%s exited: %s", cmd.Path, strings.Join(lines, "\n"))
	}()
	select {
	case err := <-found:
		return err
	case <-time.After(60 * time.Second):
		return fmt.Errorf("%s not ready after 60s", cmd.Path)
	}
}

const tracefs = "/sys/kernel/tracing"

func ensureTracefs() error {
	if _, err := os.Stat(filepath.Join(tracefs, "instances")); err == nil {
		return nil
	}
	if err := syscall.Mount("tracefs", tracefs, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("mount tracefs: %w", err)
	}
	cleanups = append(cleanups, func() { syscall.Unmount(tracefs, 0) })
	return nil
}

func startFtrace(string) (func() (time.Duration, error), error) {
	inst := filepath.Join(tracefs, "instances", fmt.Sprintf("rewind-bench-%d", os.Getpid()))
	if err := os.Mkdir(inst, 0o755); err != nil {
		return nil, err
	}
	remove := func() { os.WriteFile(filepath.Join(inst, "tracing_on"), []byte("0"), 0); os.Remove(inst) }
	cleanups = append(cleanups, remove)
	write := func(rel, v string) error { return os.WriteFile(filepath.Join(inst, rel), []byte(v), 0) }
	err := errors.Join(
		write("buffer_size_kb", strconv.Itoa(*bufMiB<<10)),
		write("events/sched/sched_switch/enable", "1"),
		write("events/raw_syscalls/sys_enter/enable", "1"),
		write("events/raw_syscalls/sys_exit/enable", "1"),
		write("tracing_on", "1"),
	)
	if err != nil {
		remove()
		return nil, err
	}
	return func() (time.Duration, error) {
		remove()
		if _, err := os.Stat(inst); err == nil {
			return 0, fmt.Errorf("could not remove %s", inst)
		}
		return 0, nil
	}, nil
}

func startPerf(dir string) (func() (time.Duration, error), error) {
	ctl, ack := filepath.Join(dir, "perf.ctl"), filepath.Join(dir, "perf.ack")
	for _, f := range []string{ctl, ack} {
		os.Remove(f)
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command("taskset", "-c", "1", "perf", "record", "--overwrite", "-a", "-m", fmt.Sprintf("%dM", *bufMiB),
		"-e", "sched:sched_switch", "-e", "raw_syscalls:sys_enter", "-e", "raw_syscalls:sys_exit",
		"-D", "-1", "--control", "fifo:"+ctl+","+ack, "-o", filepath.Join(dir, "perf.data"), "-q")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { cmd.Process.Kill() })
	// perf starts with its events disabled; enabling them through the
	// control fifo and reading the ack is the synchronisation.
	if err := perfControl(ctl, ack, "enable"); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	cpu0 := cpuTime(cmd.Process.Pid)
	return func() (time.Duration, error) {
		cpu := cpuTime(cmd.Process.Pid) - cpu0
		cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = nil // perf exits non-zero after SIGINT
		}
		os.Remove(filepath.Join(dir, "perf.data"))
		return cpu, err
	}, nil
}

func perfControl(ctl, ack, command string) error {
	done := make(chan error, 1)
	go func() {
		c, err := os.OpenFile(ctl, os.O_WRONLY, 0)
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		a, err := os.Open(ack)
		if err != nil {
			done <- err
			return
		}
		defer a.Close()
		if _, err := c.WriteString(command + "\n"); err != nil {
			done <- err
			return
		}
		b := make([]byte, 16)
		n, err := a.Read(b)
		if err == nil && !strings.HasPrefix(string(b[:n]), "ack") {
			err = fmt.Errorf("perf answered %q to %s", b[:n], command)
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		return errors.New("perf did not answer on its control fifo in 60s")
	}
}

// cpuTime is a process's user and system time so far.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * time.Second / 100 // USER_HZ
}

type sizeResult struct {
	events, bytes uint64
	snapshotMS    float64
}

// snapshotSize records the default events during one workload run, takes a
// snapshot, and reads its size and event count.
func snapshotSize(dir string) (sizeResult, error) {
	out := filepath.Join(dir, "size")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return sizeResult{}, err
	}
	cmd := exec.Command("taskset", "-c", "1", *rewindBin, "record", "--counters", "none", "--buffer-size", fmt.Sprintf("%dMiB", *bufMiB), "--output", out, "--no-final-snapshot", "--json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return sizeResult{}, err
	}
	if err := startAndWait(cmd, "recording"); err != nil {
		return sizeResult{}, err
	}
	if _, err := workload(); err != nil {
		return sizeResult{}, err
	}
	cmd.Process.Signal(syscall.SIGUSR1)
	var snap struct {
		Path    string  `json:"path"`
		Bytes   uint64  `json:"bytes"`
		Events  uint64  `json:"events"`
		TotalMS float64 `json:"total_ms"`
	}
	err = json.NewDecoder(stdout).Decode(&snap)
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if err != nil {
		return sizeResult{}, fmt.Errorf("read snapshot result: %w", err)
	}
	return sizeResult{snap.Events, snap.Bytes, snap.TotalMS}, nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func render(tracers []tracer, times map[string][]float64, cpus map[string][]time.Duration, perOp float64, size sizeResult) string {
	var b strings.Builder
	host, _ := os.Hostname()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Fprintf(&b, "## perf bench sched pipe, %d loops × %d rounds (%s, %s, kernel %s)\n\n", *loops, *rounds, time.Now().UTC().Format("2006-01-02"), host, strings.TrimSpace(string(kernel)))
	fmt.Fprintf(&b, "Events per op (perf stat, sched_switch + sys_enter + sys_exit): %.2f. Rings: %d MiB per CPU for every tracer.\n\n", perOp, *bufMiB)
	base := median(times["none"])
	nsPer := func(name string) float64 { return (median(times[name]) - base) * 1000 / perOp }
	b.WriteString("| variant | µs/op (median) | runs | ns/event | × ftrace | × perf --overwrite | tracer user-space CPU |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, t := range tracers {
		runs := make([]string, len(times[t.name]))
		for i, v := range times[t.name] {
			runs[i] = fmt.Sprintf("%.2f", v)
		}
		var total time.Duration
		for _, c := range cpus[t.name] {
			total += c
		}
		if t.name == "none" {
			fmt.Fprintf(&b, "| %s | %.3f | %s | – | – | – | – |\n", t.name, base, strings.Join(runs, " "))
			continue
		}
		cpu := "none"
		switch t.name {
		case "ftrace", "bpf floor":
			cpu = "none (kernel only)"
		default:
			if total > 0 {
				cpu = fmt.Sprintf("%v over %d runs", total, len(cpus[t.name]))
			}
		}
		fmt.Fprintf(&b, "| %s | %.3f | %s | %.1f | %.2f | %.2f | %s |\n", t.name, median(times[t.name]), strings.Join(runs, " "),
			nsPer(t.name), nsPer(t.name)/nsPer("ftrace"), nsPer(t.name)/nsPer("perf --overwrite"), cpu)
	}
	fmt.Fprintf(&b, "\nSnapshot of the default event group after one run: %d events in %d bytes = **%.2f bytes/event**, written in %.0f ms.\n",
		size.events, size.bytes, float64(size.bytes)/float64(size.events), size.snapshotMS)
	return b.String()
}

func mkdir(dir string) error { return os.MkdirAll(dir, 0o755) }

func cpuCount() int {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return 1
	}
	return n
}
