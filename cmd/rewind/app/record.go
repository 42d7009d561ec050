package app

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/formats/session"
	"github.com/rewindtrace/rewind/internal/units"
	"github.com/rewindtrace/rewind/record"
	"github.com/rewindtrace/rewind/record/counters"
)

func recordCommand() *cli.Command {
	return &cli.Command{
		Name:      "record",
		Usage:     "record in the foreground; SIGUSR1 writes a snapshot, SIGINT/SIGTERM write a last one and stop",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "events", Aliases: []string{"e"}, Value: "default", Usage: "events and groups to record, comma-separated (sched, syscalls, process, default, all, or event names)"},
			&cli.StringFlag{Name: "buffer-size", Aliases: []string{"b"}, Value: "64MiB", Usage: "kernel ring size per CPU (rounded down to a power of two of 64-byte slots)"},
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "stop after this long and write a final snapshot (0: until a signal)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: ".", Usage: "directory for snapshots"},
			&cli.StringSliceFlag{Name: "pid", Aliases: []string{"p"}, Usage: "record only these processes or threads (repeat or comma-separate)"},
			&cli.StringSliceFlag{Name: "comm", Aliases: []string{"c"}, Usage: "record only tasks with these names (repeat or comma-separate)"},
			&cli.StringSliceFlag{Name: "cgroup", Usage: "record only tasks in these cgroup v2 directories, absolute or relative to the cgroup2 mount (repeat or comma-separate)"},
			&cli.StringFlag{Name: "btf", Usage: "BTF file for a kernel without /sys/kernel/btf/vmlinux"},
			// For benchmarks and tests of the 5.10 object on newer kernels.
			&cli.BoolFlag{Name: "compat-object", Hidden: true, Usage: "load the BPF object built for kernels without fetching atomics (5.10, 5.11), whatever the kernel"},
			&cli.DurationFlag{Name: "history", Usage: "keep this much history in the compressed tier (drained from the kernel rings as they fill, zstd-compressed)"},
			&cli.StringFlag{Name: "memory", Usage: "cap the compressed tier at this much memory in all, oldest history dropped first (with or without --history)"},
			&cli.StringFlag{Name: "counters", Value: "default", Usage: "counter sources to sample, comma-separated, NAME@HZ for a rate of its own: " + strings.Join(counters.Names, ", ") + ", cgroup:PATH, default (" + strings.Join(counters.Default, ",") + "), all, none"},
			&cli.Float64Flag{Name: "counter-rate", Value: counters.DefaultRate, Usage: "samples a second of every counter source (1 to 1000)"},
			&cli.DurationFlag{Name: "counter-history", Usage: "keep counter samples this long (default 60s, or --history when longer)"},
			&cli.IntFlag{Name: "stacks", Usage: "sample what every CPU runs this many times a second, with kernel and user stacks (99 is usual; 0: none)"},
			&cli.BoolFlag{Name: "offcpu-stacks", Usage: "record the stack of every task that blocks, as it switches out"},
			&cli.BoolFlag{Name: "json", Usage: "print each snapshot written as a JSON line on stdout"},
			&cli.BoolFlag{Name: "no-final-snapshot", Usage: "on SIGINT/SIGTERM, stop without writing a snapshot"},
		},
		Action: runRecord,
	}
}

type recordConfig struct {
	record.SessionConfig
	json bool
}

func parseRecord(cliContext *cli.Context) (*recordConfig, error) {
	if cliContext.NArg() != 0 {
		return nil, fmt.Errorf("record takes no arguments, got %q", cliContext.Args().Slice())
	}
	size, err := units.ParseSize(cliContext.String("buffer-size"))
	if err != nil {
		return nil, fmt.Errorf("--buffer-size: %w", err)
	}
	if size < 4<<10 || size > 1<<30 {
		return nil, fmt.Errorf("--buffer-size %s: want between 4KiB and 1GiB per CPU", cliContext.String("buffer-size"))
	}
	if d := cliContext.Duration("duration"); d < 0 {
		return nil, fmt.Errorf("--duration %v: must not be negative", d)
	}
	var history uint64
	if m := cliContext.String("memory"); m != "" {
		if history, err = units.ParseSize(m); err != nil {
			return nil, fmt.Errorf("--memory: %w", err)
		}
		if history < 1<<20 {
			return nil, fmt.Errorf("--memory %s: want at least 1MiB", m)
		}
	}
	if d := cliContext.Duration("history"); d < 0 {
		return nil, fmt.Errorf("--history %v: must not be negative", d)
	}
	if hz := cliContext.Int("stacks"); hz < 0 || hz > record.MaxStackRate {
		return nil, fmt.Errorf("--stacks %d: want 1 to %d samples a second per CPU, or 0 for none", hz, record.MaxStackRate)
	}
	if r := cliContext.Float64("counter-rate"); !(r >= 1 && r <= counters.MaxRate) {
		return nil, fmt.Errorf("--counter-rate %g: want 1 to %d samples a second", r, counters.MaxRate)
	}
	if d := cliContext.Duration("counter-history"); d < 0 {
		return nil, fmt.Errorf("--counter-history %v: must not be negative", d)
	}
	if _, _, _, err := counters.ParseSources(splitList(cliContext.String("counters"))); err != nil {
		return nil, fmt.Errorf("--counters: %w", err)
	}
	out := cliContext.String("output")
	if st, err := os.Stat(out); err != nil {
		return nil, fmt.Errorf("--output: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("--output %s: not a directory", out)
	}
	c := &recordConfig{
		SessionConfig: record.SessionConfig{
			Recorder: record.Config{
				Events:       splitList(cliContext.String("events")),
				BufferSize:   size,
				KernelBTF:    cliContext.String("btf"),
				CompatObject: cliContext.Bool("compat-object"),
				HistoryBytes: history,
				HistoryAge:   cliContext.Duration("history"),
				Stacks:       cliContext.Int("stacks"),
				OffCPUStacks: cliContext.Bool("offcpu-stacks"),
				Counters:     splitList(cliContext.String("counters")),
				CounterRate:  cliContext.Float64("counter-rate"),
				CounterKeep:  cliContext.Duration("counter-history"),
				Version:      "rewind " + Version,
			},
			Dir:           out,
			Duration:      cliContext.Duration("duration"),
			FinalSnapshot: !cliContext.Bool("no-final-snapshot"),
			Signals:       true,
		},
		json: cliContext.Bool("json"),
	}
	for _, p := range splitList(strings.Join(cliContext.StringSlice("pid"), ",")) {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("--pid %q: want a process or thread id", p)
		}
		c.Recorder.PIDs = append(c.Recorder.PIDs, uint32(n))
	}
	c.Recorder.Cgroups = splitList(strings.Join(cliContext.StringSlice("cgroup"), ","))
	for _, name := range splitList(strings.Join(cliContext.StringSlice("comm"), ",")) {
		if len(name) > 15 {
			return nil, fmt.Errorf("--comm %q: task names are at most 15 bytes", name)
		}
		c.Recorder.Comms = append(c.Recorder.Comms, name)
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func runRecord(cliContext *cli.Context) error {
	cfg, err := parseRecord(cliContext)
	if err != nil {
		return err
	}
	p := &session.Printer{Out: os.Stdout, Err: os.Stderr, JSON: cfg.json}
	var printErr error
	sess, err := record.NewSession(cfg.SessionConfig, func(n record.Notice) {
		switch {
		case n.Started != nil:
			p.Start(startLine(cfg, n.Started))
		case n.Estimate != nil:
			p.Estimate(session.Estimate{Rate: n.Estimate.Rate, BusiestRate: n.Estimate.BusiestRate, Kernel: n.Estimate.Kernel,
				Tier: cfg.Recorder.HistoryBytes > 0 || cfg.Recorder.HistoryAge > 0, BytesPerEvent: n.Estimate.BytesPerEvent, TierHolds: n.Estimate.Tier})
		case n.Snapshot != nil:
			if err := p.Snapshot(n.Snapshot.Report()); err != nil && printErr == nil {
				printErr = err
			}
		case n.Failed != nil:
			p.Failed(n.Failed)
		case n.Ended != nil && n.Ended.History != nil:
			if err := p.History(historyLine(n.Ended.History)); err != nil && printErr == nil {
				printErr = err
			}
		}
	})
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := sess.Run(cliContext.Context); err != nil {
		return err
	}
	return printErr
}

// startLine is what session.Printer says as recording starts.
func startLine(cfg *recordConfig, st *record.Stats) session.Start {
	start := session.Start{Events: st.Events, CPUs: len(st.CPUs), BufferBytes: st.BufferBytes, CopyBytes: st.CopyBytes,
		Unavailable: st.Unavailable, Counters: st.Counters.Sources, CounterKeep: st.Counters.Keep, CounterBytes: st.Counters.Bytes,
		HistoryBytes: cfg.Recorder.HistoryBytes, HistoryAge: cfg.Recorder.HistoryAge, PID: os.Getpid(), Dir: cfg.Dir}
	for _, u := range st.Counters.Unavailable {
		if start.CountersUnavailable == nil {
			start.CountersUnavailable = map[string]string{}
		}
		start.CountersUnavailable[u.Name] = u.Why
	}
	return start
}

// historyLine is the compressed tier's figures as session.Printer shows
// them.
func historyLine(h *record.HistoryStats) session.History {
	out := session.History{DrainedEvents: h.Drained, LostEvents: h.Lost, HeldEvents: h.Held.Events, HeldBytes: h.Held.Bytes,
		EvictedEvents: h.Evicted.Events, DrainCPUNS: h.CPU.Nanoseconds(), Drains: h.Drains}
	if h.Drained > 0 {
		out.CPUNSPerEvent = float64(h.CPU.Nanoseconds()) / float64(h.Drained)
	}
	if h.Held.Events > 0 {
		out.BytesPerEvent = float64(h.Held.Bytes) / float64(h.Held.Events)
	}
	if h.Err != nil {
		out.Error = h.Err.Error()
	}
	return out
}
