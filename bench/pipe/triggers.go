package main

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"time"

	"github.com/rewindtrace/rewind/bpf"
)

// The triggers section: what the watch programs (bpf/watch.bpf.c) add to
// recording, per traced event of `perf bench sched pipe`: recording alone,
// with the watch loaded and no trigger set (nothing attached), with one
// latency trigger (system calls slower than 1 s: evaluated at every
// sys_exit, never firing), and with the live histograms (system call,
// run-queue and off-CPU), rounds interleaved.

type watchVariant struct {
	name  string
	setup func(w *bpf.Watch) error
}

var watchVariants = []watchVariant{
	{"rewind", nil},
	{"rewind + watch, no trigger", func(*bpf.Watch) error { return nil }},
	{"rewind + 1 latency trigger", func(w *bpf.Watch) error {
		return w.SetTrigger(0, &bpf.Condition{Kind: bpf.WatchSyscall, Threshold: uint64(time.Second)})
	}},
	{"rewind + live histograms", func(w *bpf.Watch) error {
		return w.SetHistograms(bpf.HistSyscall | bpf.HistRunq | bpf.HistOffCPU)
	}},
	{"rewind + trigger + histograms", func(w *bpf.Watch) error {
		return errors.Join(w.SetTrigger(0, &bpf.Condition{Kind: bpf.WatchSyscall, Threshold: uint64(time.Second)}),
			w.SetHistograms(bpf.HistSyscall|bpf.HistRunq|bpf.HistOffCPU))
	}},
}

func triggerCost(dir string) (string, error) {
	perOp, err := eventsPerOp()
	if err != nil {
		return "", err
	}
	times := map[string][]float64{}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	all := append([]watchVariant{{"none", nil}}, watchVariants...)
	for r := 0; r < *rounds; r++ {
		for _, i := range rng.Perm(len(all)) {
			v := all[i]
			stop := func() error { return nil }
			if v.name != "none" {
				stopRec, err := startRewind(dir)
				if err != nil {
					return "", err
				}
				var w *bpf.Watch
				if v.setup != nil {
					if w, err = bpf.LoadWatch(bpf.WatchOptions{SelfTGID: uint32(os.Getpid())}); err != nil {
						stopRec()
						return "", err
					}
					if err := v.setup(w); err != nil {
						w.Close()
						stopRec()
						return "", fmt.Errorf("%s: %w", v.name, err)
					}
				}
				stop = func() error {
					var errs []error
					if w != nil {
						errs = append(errs, w.Close())
					}
					_, err := stopRec()
					return errors.Join(append(errs, err)...)
				}
			}
			us, werr := workload()
			if err := errors.Join(werr, stop()); err != nil {
				return "", fmt.Errorf("%s: %w", v.name, err)
			}
			times[v.name] = append(times[v.name], us)
			fmt.Fprintf(os.Stderr, "bench: triggers round %d %-30s %.3f µs/op\n", r+1, v.name, us)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Triggers and live histograms: cost added to recording (perf bench sched pipe, %d loops × %d rounds)\n\n", *loops, *rounds)
	fmt.Fprintf(&b, "Events per op: %.2f (sched_switch + sys_enter + sys_exit); rewind records them, the watch programs run beside.\n\n", perOp)
	base, rec := median(times["none"]), median(times["rewind"])
	b.WriteString("| variant | µs/op (median) | runs | ns/event | ns/event added to recording |\n|---|---|---|---|---|\n")
	for _, v := range all {
		runs := make([]string, len(times[v.name]))
		for i, x := range times[v.name] {
			runs[i] = fmt.Sprintf("%.2f", x)
		}
		m := median(times[v.name])
		if v.name == "none" {
			fmt.Fprintf(&b, "| %s | %.3f | %s | – | – |\n", v.name, m, strings.Join(runs, " "))
			continue
		}
		added := "–"
		if v.name != "rewind" {
			added = fmt.Sprintf("%.1f", (m-rec)*1000/perOp)
		}
		fmt.Fprintf(&b, "| %s | %.3f | %s | %.1f | %s |\n", v.name, m, strings.Join(runs, " "), (m-base)*1000/perOp, added)
	}
	return b.String(), nil
}
