package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var snapshots = flag.Int("snapshots", 10, "back-to-back snapshots for the latency measurement")

// snapResult is one `rewind record --json` snapshot line.
type snapResult struct {
	Path    string  `json:"path"`
	Bytes   int64   `json:"bytes"`
	Events  uint64  `json:"events"`
	Lost    uint64  `json:"lost"`
	ReadMS  float64 `json:"read_ms"`
	TotalMS float64 `json:"total_ms"`
}

type latencyResult struct {
	snaps []snapResult
}

// startPipes runs perf bench sched pipe on every CPU in the background
// until stop is called.
func startPipes() (stop func(), err error) {
	var cmds []*exec.Cmd
	for cpu := 0; cpu < cpuCount(); cpu++ {
		c := exec.Command("taskset", "-c", strconv.Itoa(cpu), "perf", "bench", "sched", "pipe", "-l", "100000000")
		// perf bench forks the two ends of the pipe: each run gets a
		// process group, so that stopping it stops them too.
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			killGroups(cmds)
			return nil, err
		}
		cmds = append(cmds, c)
	}
	stopAll := func() { killGroups(cmds) }
	cleanups = append(cleanups, stopAll)
	return stopAll, nil
}

// killGroups kills the commands' process groups and reaps the commands.
func killGroups(cmds []*exec.Cmd) {
	for _, c := range cmds {
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		c.Wait()
	}
}

// snapshotLatency fills 64 MiB rings on every CPU with pipe workloads that
// keep running, then takes snapshots back to back with SIGUSR1, each as
// soon as the previous one is written.
func snapshotLatency(dir string) (latencyResult, error) {
	var res latencyResult
	out := filepath.Join(dir, "latency")
	if err := mkdir(out); err != nil {
		return res, err
	}
	stop, err := startPipes()
	if err != nil {
		return res, err
	}
	defer stop()
	cmd := exec.Command(*rewindBin, "record", "--events", "default", "--counters", "none", "--buffer-size", "64MiB", "--output", out, "--no-final-snapshot", "--json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := startAndWait(cmd, "recording"); err != nil {
		return res, err
	}
	defer func() { cmd.Process.Signal(syscall.SIGINT); cmd.Wait() }()
	time.Sleep(3 * time.Second) // let the workload fill the rings
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	for i := 0; i < *snapshots; i++ {
		cmd.Process.Signal(syscall.SIGUSR1)
		if !lines.Scan() {
			return res, fmt.Errorf("rewind record stopped before snapshot %d", i+1)
		}
		var s snapResult
		if err := json.Unmarshal(lines.Bytes(), &s); err != nil {
			return res, fmt.Errorf("snapshot %d: %w: %s", i+1, err, lines.Text())
		}
		res.snaps = append(res.snaps, s)
	}
	return res, nil
}

func (l latencyResult) render() string {
	var b strings.Builder
	total, read := make([]float64, len(l.snaps)), make([]float64, len(l.snaps))
	var lost, events uint64
	var bytes int64
	for i, s := range l.snaps {
		total[i], read[i] = s.TotalMS, s.ReadMS
		lost += s.Lost
		events += s.Events
		bytes += s.Bytes
	}
	n := float64(len(l.snaps))
	fmt.Fprintf(&b, "\n## Snapshots of %d × 64 MiB rings, back to back, while `perf bench sched pipe` runs on every CPU\n\n", cpuCount())
	b.WriteString("| snapshots | events per snapshot | trigger to file, median | max | ring copy, median | events lost to snapshots |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %d | %.0f | %.0f ms | %.0f ms | %.0f ms | %d |\n", len(l.snaps), float64(events)/n, median(total), maxOf(total), median(read), lost)
	fmt.Fprintf(&b, "\nEach file averaged %.0f bytes (%.2f bytes/event).\n", float64(bytes)/n, float64(bytes)/float64(events))
	return b.String()
}

func maxOf(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)-1]
}
