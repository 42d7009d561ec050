package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// The tier section finds, for a small and a large kernel ring, the highest
// event rate one CPU can write while the compressed tier, draining on its
// watermark, loses nothing: a generator pinned to CPU 0 makes getppid calls
// at a paced rate (two events a call), `rewind record --memory` records them
// with the recorder pinned to CPU 1, and the tier's summary says what it
// lost. Rates climb until one loses events, ending with the generator
// unpaced.

var (
	genRate    = flag.Float64("gen-rate", 0, "only generate this many getppid events a second on this thread (0: none), for -gen-seconds, after a line on stdin")
	genSeconds = flag.Float64("gen-seconds", 2, "how long -gen-rate generates")
)

// tierRates are the paced rates tried, in events a second; then unpaced.
var tierRates = []float64{0.5e6, 1e6, 2e6, 3e6, 4e6, 6e6}

// generate makes getppid calls at rate events a second (0: as fast as it
// can) for d, then prints the rate it reached.
func generate(rate float64, d time.Duration) {
	var b [1]byte
	os.Stdin.Read(b[:])
	calls := 0
	t0 := time.Now()
	for {
		for i := 0; i < 100; i++ {
			syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
		}
		calls += 100
		el := time.Since(t0)
		if el >= d {
			break
		}
		if rate > 0 {
			due := time.Duration(float64(2*calls) / rate * float64(time.Second))
			for time.Since(t0) < due {
			}
		}
	}
	fmt.Println(float64(2*calls) / time.Since(t0).Seconds())
}

// tierProbe is one run: the rate asked for and reached, and what the tier
// drained and lost.
type tierProbe struct {
	asked, reached float64
	drained, lost  uint64
}

// tierRate records a paced generator once into a ring of mib MiB.
func tierRate(dir string, mib int, rate float64) (tierProbe, error) {
	p := tierProbe{asked: rate}
	paced := rate
	if rate == 0 {
		paced = 1e12 // unpaced: a rate no CPU reaches
	}
	gen := exec.Command("taskset", "-c", "0", os.Args[0], "-gen-rate", strconv.FormatFloat(paced, 'f', 0, 64), "-gen-seconds", strconv.FormatFloat(*genSeconds, 'f', -1, 64))
	release, err := gen.StdinPipe()
	if err != nil {
		return p, err
	}
	genOut, err := gen.StdoutPipe()
	if err != nil {
		return p, err
	}
	if err := gen.Start(); err != nil {
		return p, err
	}
	cleanups = append(cleanups, func() { gen.Process.Kill() })
	defer gen.Wait()
	out := filepath.Join(dir, "tier")
	if err := mkdir(out); err != nil {
		return p, err
	}
	rec := exec.Command("taskset", "-c", "1", *rewindBin, "record", "--events", kinds.SysEnter+","+kinds.SysExit, "--pid", strconv.Itoa(gen.Process.Pid),
		"--counters", "none", "--buffer-size", fmt.Sprintf("%dMiB", mib), "--memory", "1GiB", "--output", out, "--no-final-snapshot", "--json")
	stdout, err := rec.StdoutPipe()
	if err != nil {
		return p, err
	}
	if err := startAndWait(rec, "recording"); err != nil {
		return p, err
	}
	release.Write([]byte{1})
	sc := bufio.NewScanner(genOut)
	if sc.Scan() {
		p.reached, _ = strconv.ParseFloat(strings.TrimSpace(sc.Text()), 64)
	}
	rec.Process.Signal(syscall.SIGINT)
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		var line struct {
			History *historyResult `json:"history"`
		}
		if json.Unmarshal(lines.Bytes(), &line) == nil && line.History != nil {
			p.drained, p.lost = line.History.DrainedEvents, line.History.LostEvents
		}
	}
	if err := rec.Wait(); err != nil {
		return p, fmt.Errorf("rewind record: %w", err)
	}
	if p.reached == 0 || p.drained == 0 {
		return p, fmt.Errorf("tier probe at %.0f events/s: generator reached %.0f, tier drained %d", rate, p.reached, p.drained)
	}
	return p, nil
}

// tierResult is the climb for each ring size.
type tierResult struct {
	rings  []int
	probes map[int][]tierProbe
}

func tierBench(dir string) (tierResult, error) {
	res := tierResult{rings: []int{4, 64}, probes: map[int][]tierProbe{}}
	for _, mib := range res.rings {
		for _, rate := range append(tierRates, 0) {
			p, err := tierRate(dir, mib, rate)
			if err != nil {
				return res, err
			}
			fmt.Fprintf(os.Stderr, "bench: tier %d MiB: asked %.1f M/s, reached %.2f M/s, drained %d, lost %d\n", mib, rate/1e6, p.reached/1e6, p.drained, p.lost)
			res.probes[mib] = append(res.probes[mib], p)
			if p.lost > 0 {
				break
			}
		}
	}
	return res, nil
}

func (t tierResult) render() string {
	var b strings.Builder
	b.WriteString("\n## Compressed tier: the highest rate it drains without loss\n\n")
	fmt.Fprintf(&b, "One CPU writes getppid events at a paced rate for %gs (the last probe unpaced), recorded with `--memory 1GiB`; the tier drains on its watermark (a quarter of a small ring, a 64Ki-slot chunk of a large one) and every 100 ms.\n\n", *genSeconds)
	b.WriteString("| ring per CPU | highest rate without loss | first rate with loss | lost there | probes (reached M/s: lost) |\n|---|---|---|---|---|\n")
	for _, mib := range t.rings {
		var best float64
		first, lost := "none up to the unpaced rate", "–"
		var probes []string
		for _, p := range t.probes[mib] {
			probes = append(probes, fmt.Sprintf("%.2f: %d", p.reached/1e6, p.lost))
			if p.lost == 0 {
				best = max(best, p.reached)
			} else {
				first, lost = fmt.Sprintf("%.2f M/s", p.reached/1e6), fmt.Sprintf("%d of %d", p.lost, p.lost+p.drained)
			}
		}
		fmt.Fprintf(&b, "| %d MiB | **%.2f M events/s** | %s | %s | %s |\n", mib, best/1e6, first, lost, strings.Join(probes, ", "))
	}
	return b.String()
}
