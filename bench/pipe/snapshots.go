package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

var (
	snapshots    = flag.Int("snapshots", 10, "snapshots per variant for the latency measurement")
	snapshotsGap = flag.Duration("snapshot-gap", time.Second, "time from one snapshot's file to the next trigger")
)

// snapResult is one `rewind record --json` snapshot line.
type snapResult struct {
	Path     string  `json:"path"`
	Bytes    int64   `json:"bytes"`
	Events   uint64  `json:"events"`
	Lost     uint64  `json:"lost"`
	ReadMS   float64 `json:"read_ms"`
	EncodeMS float64 `json:"encode_ms"`
	CommitMS float64 `json:"commit_ms"`
	TotalMS  float64 `json:"total_ms"`
}

type latencyResult struct {
	variants []latencyVariant
}

type latencyVariant struct {
	name  string
	snaps []snapResult
}

// startPipes runs perf bench sched pipe on every CPU in the background
// until stop is called. With ownSession each runs in a session of its
// own, as a service or another terminal's work does: with autogroups on,
// the scheduler shares the CPUs between sessions first.
func startPipes(ownSession bool) (stop func(), err error) {
	var cmds []*exec.Cmd
	for cpu := 0; cpu < cpuCount(); cpu++ {
		c := exec.Command("taskset", "-c", strconv.Itoa(cpu), "perf", "bench", "sched", "pipe", "-l", "100000000")
		// perf bench forks the two ends of the pipe: each run gets a
		// process group (a session leader leads one too), so that
		// stopping it stops them too.
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: !ownSession, Setsid: ownSession}
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

// snapshotLatency measures trigger-to-file with the workload in rewind's
// session and in sessions of its own.
func snapshotLatency(dir string) (latencyResult, error) {
	var res latencyResult
	for _, v := range []struct {
		name       string
		ownSession bool
	}{{"workload in sessions of its own", true}, {"workload in rewind's session", false}} {
		snaps, err := snapshotRun(dir, v.ownSession)
		if err != nil {
			return res, fmt.Errorf("%s: %w", v.name, err)
		}
		res.variants = append(res.variants, latencyVariant{v.name, snaps})
	}
	return res, nil
}

// snapshotRun fills 64 MiB rings on every CPU with pipe workloads that
// keep running, then takes snapshots with SIGUSR1, each -snapshot-gap
// after the previous one is written.
func snapshotRun(dir string, ownSession bool) ([]snapResult, error) {
	var res []snapResult
	out := filepath.Join(dir, "latency")
	if err := mkdir(out); err != nil {
		return res, err
	}
	stop, err := startPipes(ownSession)
	if err != nil {
		return res, err
	}
	defer stop()
	cmd := exec.Command(*rewindBin, "record", "--events", kinds.GroupDefault, "--counters", "none", "--buffer-size", "64MiB", "--output", out, "--no-final-snapshot", "--json")
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
		if i > 0 {
			time.Sleep(*snapshotsGap)
		}
		cmd.Process.Signal(syscall.SIGUSR1)
		if !lines.Scan() {
			return res, fmt.Errorf("rewind record stopped before snapshot %d", i+1)
		}
		var s snapResult
		if err := json.Unmarshal(lines.Bytes(), &s); err != nil {
			return res, fmt.Errorf("snapshot %d: %w: %s", i+1, err, lines.Text())
		}
		fmt.Fprintf(os.Stderr, "bench: snapshot %d (own session %v): %.0f ms: read %.0f, encode %.0f, commit %.0f; %d events, %d lost\n", i+1, ownSession, s.TotalMS, s.ReadMS, s.EncodeMS, s.CommitMS, s.Events, s.Lost)
		res = append(res, s)
		if err := os.Remove(s.Path); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (l latencyResult) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Snapshots of %d × 64 MiB rings while `perf bench sched pipe` runs on every CPU\n\n", cpuCount())
	b.WriteString("| workload | snapshots | events per snapshot | trigger to file, median | max | first snapshot | ring copy, median | events lost to snapshots | bytes/event |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, v := range l.variants {
		total, read := make([]float64, len(v.snaps)), make([]float64, len(v.snaps))
		var lost, events uint64
		var bytes int64
		for i, s := range v.snaps {
			total[i], read[i] = s.TotalMS, s.ReadMS
			lost += s.Lost
			events += s.Events
			bytes += s.Bytes
		}
		n := float64(len(v.snaps))
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %d | %.2f |\n", v.name, len(v.snaps), float64(events)/n, median(total), maxOf(total), total[0], median(read), lost, float64(bytes)/float64(events))
	}
	fmt.Fprintf(&b, "\nA snapshot every %v after the previous file, the first 3 s after the recorder starts; the pipes run at nice 0, each pinned to one CPU.\n", *snapshotsGap)
	return b.String()
}

func maxOf(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)-1]
}
