package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// historyResult is what the compressed tier did during one workload run.
type historyResult struct {
	CPUNSPerEvent float64 `json:"cpu_ns_per_event"`
	BytesPerEvent float64 `json:"bytes_per_event"`
	DrainedEvents uint64  `json:"drained_events"`
	LostEvents    uint64  `json:"lost_events"`
	processCPU    time.Duration
	rate          float64 // events per second during the run
}

// historyTier records the default events with a compressed tier during one
// pipe run and reads the tier's summary line.
func historyTier(dir string) (historyResult, error) {
	var res historyResult
	out := filepath.Join(dir, "history")
	if err := mkdir(out); err != nil {
		return res, err
	}
	cmd := exec.Command("taskset", "-c", "1", *rewindBin, "record", "--events", kinds.GroupDefault, "--counters", "none", "--buffer-size", fmt.Sprintf("%dMiB", *bufMiB),
		"--memory", "512MiB", "--output", out, "--no-final-snapshot", "--json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := startAndWait(cmd, "recording"); err != nil {
		return res, err
	}
	cpu0, t0 := cpuTime(cmd.Process.Pid), time.Now()
	if _, err := workload(); err != nil {
		return res, err
	}
	res.processCPU = cpuTime(cmd.Process.Pid) - cpu0
	elapsed := time.Since(t0)
	cmd.Process.Signal(syscall.SIGINT)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var line struct {
			History *historyResult `json:"history"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.History != nil {
			res.CPUNSPerEvent, res.BytesPerEvent = line.History.CPUNSPerEvent, line.History.BytesPerEvent
			res.DrainedEvents, res.LostEvents = line.History.DrainedEvents, line.History.LostEvents
		}
	}
	cmd.Wait()
	if res.DrainedEvents == 0 {
		return res, fmt.Errorf("rewind record printed no history summary")
	}
	res.rate = float64(res.DrainedEvents) / elapsed.Seconds()
	return res, nil
}

func (h historyResult) render() string {
	var b strings.Builder
	const slot = 64
	kernelPerMiB := float64(1<<20) / slot
	tierPerMiB := float64(1<<20) / h.BytesPerEvent
	fmt.Fprintf(&b, "\n## History per MiB of memory, default events during one pipe run (%.0f events/s)\n\n", h.rate)
	b.WriteString("| tier | bytes/event | events per MiB | history per MiB at this rate | × kernel tier |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| kernel (64-byte slots) | %d | %.0f | %s | 1 |\n", slot, kernelPerMiB, seconds(kernelPerMiB/h.rate))
	fmt.Fprintf(&b, "| compressed (columnar + zstd) | %.2f | %.0f | %s | **%.1f** |\n", h.BytesPerEvent, tierPerMiB, seconds(tierPerMiB/h.rate), tierPerMiB/kernelPerMiB)
	fmt.Fprintf(&b, "\nConsumer CPU of the compressed tier: **%.0f ns per event** drained (the drainer's own thread time; %d events, %d lost before a drain reached them). `rewind record`'s whole process used %v over the run: %.0f ns per event.\n",
		h.CPUNSPerEvent, h.DrainedEvents, h.LostEvents, h.processCPU, float64(h.processCPU.Nanoseconds())/float64(h.DrainedEvents))
	return b.String()
}

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}
