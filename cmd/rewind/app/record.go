package app

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/record"
	"github.com/rewindtrace/rewind/record/counters"
	"github.com/rewindtrace/rewind/snapshot"
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
			&cli.DurationFlag{Name: "history", Usage: "keep this much history in the compressed tier (drained from the kernel rings on a timer, zstd-compressed)"},
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
	record.Config
	duration time.Duration
	output   string
	json     bool
	final    bool
}

func parseRecord(cliContext *cli.Context) (*recordConfig, error) {
	if cliContext.NArg() != 0 {
		return nil, fmt.Errorf("record takes no arguments, got %q", cliContext.Args().Slice())
	}
	size, err := parseSize(cliContext.String("buffer-size"))
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
		if history, err = parseSize(m); err != nil {
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
	if r := cliContext.Float64("counter-rate"); r < 1 || r > counters.MaxRate {
		return nil, fmt.Errorf("--counter-rate %g: want 1 to %d samples a second", r, counters.MaxRate)
	}
	if d := cliContext.Duration("counter-history"); d < 0 {
		return nil, fmt.Errorf("--counter-history %v: must not be negative", d)
	}
	if _, _, _, err := counters.ParseSources(splitList(cliContext.String("counters"))); err != nil {
		return nil, err
	}
	out := cliContext.String("output")
	if st, err := os.Stat(out); err != nil {
		return nil, fmt.Errorf("--output: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("--output %s: not a directory", out)
	}
	c := &recordConfig{
		Config: record.Config{
			Events:       splitList(cliContext.String("events")),
			BufferSize:   size,
			KernelBTF:    cliContext.String("btf"),
			HistoryBytes: history,
			HistoryAge:   cliContext.Duration("history"),
			Stacks:       cliContext.Int("stacks"),
			OffCPUStacks: cliContext.Bool("offcpu-stacks"),
			Counters:     splitList(cliContext.String("counters")),
			CounterRate:  cliContext.Float64("counter-rate"),
			CounterKeep:  cliContext.Duration("counter-history"),
			Version:      "rewind " + Version,
		},
		duration: cliContext.Duration("duration"),
		output:   out,
		json:     cliContext.Bool("json"),
		final:    !cliContext.Bool("no-final-snapshot"),
	}
	for _, p := range splitList(strings.Join(cliContext.StringSlice("pid"), ",")) {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("--pid %q: want a process or thread id", p)
		}
		c.PIDs = append(c.PIDs, uint32(n))
	}
	c.Cgroups = splitList(strings.Join(cliContext.StringSlice("cgroup"), ","))
	for _, name := range splitList(strings.Join(cliContext.StringSlice("comm"), ",")) {
		if len(name) > 15 {
			return nil, fmt.Errorf("--comm %q: task names are at most 15 bytes", name)
		}
		c.Comms = append(c.Comms, name)
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
	// Catch the signals before anything else: SIGUSR1 would otherwise kill
	// the process while the programs load.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	rec, err := record.Start(cfg.Config)
	if err != nil {
		return err
	}
	defer rec.Close()
	for _, name := range sortedKeys(rec.Unavailable()) {
		fmt.Fprintf(os.Stderr, "rewind: warning: not recording %s: %s\n", name, rec.Unavailable()[name])
	}
	cpus := uint64(rec.CPUs())
	memory := fmt.Sprintf("memory %s (%s of kernel rings, %s to copy them into for snapshots)",
		formatSize(cpus*(rec.BufferBytes()+rec.CopyBytes())), formatSize(cpus*rec.BufferBytes()), formatSize(cpus*rec.CopyBytes()))
	if cfg.HistoryBytes > 0 {
		memory += fmt.Sprintf(" + up to %s of compressed history", formatSize(cfg.HistoryBytes))
	} else if cfg.HistoryAge > 0 {
		memory += fmt.Sprintf(" + %s of compressed history, whatever that takes", cfg.HistoryAge)
	}
	for _, u := range rec.Counters().Unavailable() {
		fmt.Fprintf(os.Stderr, "rewind: warning: not sampling %s: %s\n", u.Name, u.Why)
	}
	if src := rec.Counters().Sources(); len(src) > 0 {
		memory += fmt.Sprintf(" + %s of counter samples", formatSize(rec.Counters().Bytes()))
	}
	fmt.Fprintf(os.Stderr, "rewind: recording %s on %d CPUs into %s per CPU%s; %s; pid %d: `kill -USR1 %d` writes a snapshot to %s, Ctrl-C stops\n",
		strings.Join(rec.Events(), ","), rec.CPUs(), formatSize(rec.BufferBytes()), describeCounters(rec), memory, os.Getpid(), os.Getpid(), cfg.output)

	var timeout <-chan time.Time
	if cfg.duration > 0 {
		timeout = time.After(cfg.duration)
	}
	start, estimate := rec.Progress(), time.After(time.Second)
	for {
		select {
		case <-estimate:
			printEstimate(rec, rec.Estimate(start, rec.Progress()))
		case <-timeout:
			return finish(rec, cfg, snapshot.Trigger{Kind: snapshot.TriggerDuration, Detail: cfg.duration.String()})
		case s := <-sigs:
			name := signalName(s)
			if s == syscall.SIGUSR1 {
				if err := takeSnapshot(rec, cfg, snapshot.Trigger{Kind: snapshot.TriggerSignal, Signal: name}); err != nil {
					fmt.Fprintln(os.Stderr, "rewind: snapshot:", err)
				}
				continue
			}
			if !cfg.final {
				err := printHistory(rec, cfg)
				if cerr := rec.Close(); err == nil {
					err = cerr
				}
				return err
			}
			return finish(rec, cfg, snapshot.Trigger{Kind: snapshot.TriggerExit, Signal: name})
		}
	}
}

// describeCounters says which counters are sampled, how often and for how
// long, or nothing when none are.
func describeCounters(rec *record.Recorder) string {
	src := rec.Counters().Sources()
	if len(src) == 0 {
		return ""
	}
	byRate := map[float64][]string{}
	for name, hz := range src {
		byRate[hz] = append(byRate[hz], name)
	}
	var parts []string
	for _, hz := range sortedRates(byRate) {
		names := byRate[hz]
		sort.Strings(names)
		parts = append(parts, fmt.Sprintf("%s at %g Hz", strings.Join(names, ","), hz))
	}
	return fmt.Sprintf(", sampling counters %s, kept %v", strings.Join(parts, "; "), rec.Counters().Keep())
}

func sortedRates(m map[float64][]string) []float64 {
	out := make([]float64, 0, len(m))
	for hz := range m {
		out = append(out, hz)
	}
	sort.Float64s(out)
	return out
}

// printEstimate says how much history the configuration holds at the
// rate of the first second.
func printEstimate(rec *record.Recorder, e record.Estimate) {
	if e.Rate == 0 {
		fmt.Fprintln(os.Stderr, "rewind: no events in the first second; history depends on the rate to come")
		return
	}
	msg := fmt.Sprintf("rewind: at %.0f events/s (busiest CPU %.0f/s) the kernel rings hold %s of history", e.Rate, e.BusiestRate, roundDuration(e.Kernel))
	if _, ok := rec.History(); ok {
		if e.BytesPerEvent > 0 {
			msg += fmt.Sprintf("; the compressed tier holds %s more at %.2f bytes/event", roundDuration(e.Tier), e.BytesPerEvent)
		} else {
			msg += "; the compressed tier has drained nothing yet"
		}
	}
	fmt.Fprintln(os.Stderr, msg)
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d > time.Hour:
		return d.Round(time.Minute)
	case d > time.Minute:
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

func finish(rec *record.Recorder, cfg *recordConfig, trig snapshot.Trigger) error {
	err := takeSnapshot(rec, cfg, trig)
	if herr := printHistory(rec, cfg); err == nil {
		err = herr
	}
	if cerr := rec.Close(); err == nil {
		err = cerr
	}
	return err
}

// historyJSON is the last line of `rewind record --json` with a compressed
// tier (docs/JSON.md).
type historyJSON struct {
	History struct {
		DrainedEvents uint64  `json:"drained_events"`
		LostEvents    uint64  `json:"lost_events"`
		HeldEvents    uint64  `json:"held_events"`
		HeldBytes     uint64  `json:"held_bytes"`
		EvictedEvents uint64  `json:"evicted_events"`
		DrainCPUNS    int64   `json:"drain_cpu_ns"`
		CPUNSPerEvent float64 `json:"cpu_ns_per_event"`
		BytesPerEvent float64 `json:"bytes_per_event"`
		Drains        int     `json:"drains"`
	} `json:"history"`
}

// printHistory reports what the compressed tier did, when there is one.
func printHistory(rec *record.Recorder, cfg *recordConfig) error {
	h, ok := rec.History()
	if !ok {
		return nil
	}
	if h.Err != nil {
		fmt.Fprintf(os.Stderr, "rewind: warning: the compressed tier's last drain failed: %v\n", h.Err)
	}
	var out historyJSON
	o := &out.History
	o.DrainedEvents, o.LostEvents, o.HeldEvents, o.HeldBytes = h.Drained, h.Lost, h.Held.Events, h.Held.Bytes
	o.EvictedEvents, o.DrainCPUNS, o.Drains = h.Evicted.Events, h.CPU.Nanoseconds(), h.Drains
	if h.Drained > 0 {
		o.CPUNSPerEvent = float64(h.CPU.Nanoseconds()) / float64(h.Drained)
	}
	if h.Held.Events > 0 {
		o.BytesPerEvent = float64(h.Held.Bytes) / float64(h.Held.Events)
	}
	if cfg.json {
		return json.NewEncoder(os.Stdout).Encode(out)
	}
	fmt.Fprintf(os.Stderr, "rewind: compressed tier: drained %d events (%d lost before a drain reached them) in %v of CPU, %.0f ns/event; holds %d events in %s, %.2f bytes/event; dropped the oldest %d to fit\n",
		h.Drained, h.Lost, h.CPU.Round(time.Millisecond), o.CPUNSPerEvent, h.Held.Events, formatSize(h.Held.Bytes), o.BytesPerEvent, h.Evicted.Events)
	return nil
}

func takeSnapshot(rec *record.Recorder, cfg *recordConfig, trig snapshot.Trigger) error {
	res, err := rec.SnapshotTo(cfg.output, trig)
	if err != nil {
		return err
	}
	if cfg.json {
		return json.NewEncoder(os.Stdout).Encode(snapshotJSON{
			Path: res.Path, Bytes: res.Bytes, Events: res.Events, Lost: res.Lost, Samples: res.Samples, Trigger: trig,
			ReadMS: ms(res.ReadTime), EncodeMS: ms(res.EncodeTime), CommitMS: ms(res.CommitTime), TotalMS: ms(res.Total),
		})
	}
	fmt.Printf("snapshot %s: %d events, %d lost, %d counter samples, %s, written in %v (%s)\n",
		res.Path, res.Events, res.Lost, res.Samples, formatSize(uint64(res.Bytes)), res.Total.Round(time.Millisecond), trig.Kind)
	return nil
}

// snapshotJSON is a line of `rewind record --json` (docs/JSON.md).
type snapshotJSON struct {
	Path     string           `json:"path"`
	Bytes    int64            `json:"bytes"`
	Events   uint64           `json:"events"`
	Lost     uint64           `json:"lost"`
	Samples  uint64           `json:"counter_samples"`
	Trigger  snapshot.Trigger `json:"trigger"`
	ReadMS   float64          `json:"read_ms"`
	EncodeMS float64          `json:"encode_ms"`
	CommitMS float64          `json:"commit_ms"`
	TotalMS  float64          `json:"total_ms"`
}

func ms(d time.Duration) float64 { return d.Seconds() * 1e3 }

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGUSR1:
		return "SIGUSR1"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
