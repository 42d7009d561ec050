package app

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/analyze"
	"github.com/rewindtrace/rewind/analyze/hist"
	"github.com/rewindtrace/rewind/analyze/report"
	"github.com/rewindtrace/rewind/formats/openmetrics"
	"github.com/rewindtrace/rewind/snapshot"
)

// selectionFlags are what analyze and diff take to choose events.
func selectionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "only", Usage: "run only these analyses, comma-separated: " + strings.Join(analyze.All, ", ")},
		&cli.StringFlag{Name: "pid", Usage: "only these processes, comma-separated"},
		&cli.StringFlag{Name: "tid", Usage: "only these threads, comma-separated"},
		&cli.StringFlag{Name: "comm", Usage: "only tasks with these names, comma-separated"},
		&cli.StringFlag{Name: "cpu", Usage: "only these CPUs, comma-separated"},
		&cli.StringFlag{Name: "from", Usage: "start this long after the first event (1.5s), or before the last (-2s)"},
		&cli.StringFlag{Name: "to", Usage: "stop this long after the first event, or before the last"},
		&cli.DurationFlag{Name: "last", Usage: "only the last D of the snapshot (same as --from -D)"},
		aroundFlag(),
		&cli.Float64Flag{Name: "error", Value: 0.01, Usage: "largest relative error of the histograms' values"},
		&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "text", Usage: "text, json or openmetrics"},
		&cli.IntFlag{Name: "top", Value: 10, Usage: "rows per dimension in text output"},
		strictFlag,
	}
}

func analyzeCommand() *cli.Command {
	return &cli.Command{
		Name:      "analyze",
		Usage:     "histograms and percentiles of a snapshot: run-queue latency, off/on-CPU time, syscalls, block I/O, interrupts, faults, per-process summary",
		ArgsUsage: "FILE",
		Flags:     selectionFlags(),
		Action:    runAnalyze,
	}
}

// analysisRun is one snapshot analysed.
type analysisRun struct {
	path string
	r    *snapshot.Reader
	res  *analyze.Result
	snap report.Snapshot
}

func analyzeFile(cliContext *cli.Context, path string) (*analysisRun, error) {
	r, err := openFile(path)
	if err != nil {
		return nil, err
	}
	opts, err := analyzeOptions(cliContext, r, path)
	if err != nil {
		r.Close()
		return nil, err
	}
	res, err := analyze.Run(r, opts)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m := r.Meta()
	run := &analysisRun{path: path, r: r, res: res, snap: report.Snapshot{
		File: path, Host: m.Host, Kernel: m.Kernel.Release, CPUs: m.CPUs, FirstNS: res.FirstNS, LastNS: res.LastNS,
		Events: res.Events, Lost: res.Lost, Damaged: res.Damaged,
	}}
	if res.LastNS > res.FirstNS {
		run.snap.DurationNS = res.LastNS - res.FirstNS
	}
	return run, nil
}

func analyzeOptions(cliContext *cli.Context, r *snapshot.Reader, path string) (analyze.Options, error) {
	var opts analyze.Options
	var err error
	if top := cliContext.Int("top"); top < 1 {
		return opts, fmt.Errorf("--top %d: want at least 1", top)
	}
	opts.Only = splitList(cliContext.String("only"))
	if err := analyze.CheckNames(opts.Only); err != nil {
		return opts, fmt.Errorf("--only: %w", err)
	}
	opts.Error = cliContext.Float64("error")
	if _, err := hist.MBits(opts.Error); err != nil {
		return opts, fmt.Errorf("--error: %w", err)
	}
	if opts.PIDs, err = parseIDs("--pid", cliContext.String("pid")); err != nil {
		return opts, err
	}
	if opts.TIDs, err = parseIDs("--tid", cliContext.String("tid")); err != nil {
		return opts, err
	}
	opts.Comms = splitList(cliContext.String("comm"))
	for _, c := range splitList(cliContext.String("cpu")) {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 {
			return opts, fmt.Errorf("--cpu %q: want CPU numbers", c)
		}
		opts.CPUs = append(opts.CPUs, n)
	}
	if err := aroundConflict(cliContext, "from", "to", "last"); err != nil {
		return opts, err
	}
	from, to := cliContext.String("from"), cliContext.String("to")
	if last := cliContext.Duration("last"); last != 0 {
		if from != "" || last < 0 {
			return opts, fmt.Errorf("--last %v: give a positive duration, and not with --from", last)
		}
		from = "-" + last.String()
	}
	opts.Range, err = timeRange(cliContext, r, path, from, to)
	return opts, err
}

// aroundFlag is --around, which view, analyze and diff take instead of
// --from and --to.
func aroundFlag() cli.Flag {
	return &cli.StringFlag{Name: "around", Usage: "only events within D either side of the trigger's firing (trigger:200ms; " +
		"a snapshot without one uses when it was taken, and says so) or of when the snapshot was taken (taken:1s); not with --from or --to"}
}

// aroundConflict names --around and the first of flags given with it.
func aroundConflict(cliContext *cli.Context, flags ...string) error {
	if !cliContext.IsSet("around") {
		return nil
	}
	for _, f := range flags {
		if cliContext.IsSet(f) {
			return fmt.Errorf("--around and --%s: give one or the other", f)
		}
	}
	return nil
}

// timeRange resolves --around, or else the bounds from and to, against the
// span of the snapshot r read from path. When --around trigger:D finds no
// firing in the snapshot it says on stderr that it used the moment the
// snapshot was taken.
func timeRange(cliContext *cli.Context, r *snapshot.Reader, path, from, to string) (snapshot.Range, error) {
	first, last := r.Span()
	if !cliContext.IsSet("around") {
		rng, err := snapshot.ParseRange(from, to, first, last)
		return rng, rangeFlagError(err)
	}
	around := cliContext.String("around")
	rng, noFiring, err := snapshot.AroundRange(around, r.Meta(), first, last)
	if err != nil {
		return rng, rangeFlagError(err)
	}
	if noFiring {
		fmt.Fprintf(cliContext.App.ErrWriter, "rewind: note: %s records no trigger firing (trigger %s); --around %s is around the moment the snapshot was taken\n",
			path, r.Meta().Trigger.Kind, around)
	}
	return rng, nil
}

func parseIDs(flag, s string) ([]uint32, error) {
	var out []uint32
	for _, f := range splitList(s) {
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s %q: want numbers", flag, f)
		}
		out = append(out, uint32(n))
	}
	return out, nil
}

func runAnalyze(cliContext *cli.Context) error {
	if cliContext.NArg() != 1 {
		return fmt.Errorf("analyze: want one snapshot file, got %d arguments", cliContext.NArg())
	}
	format := cliContext.String("format")
	if format != "text" && format != "json" && format != "openmetrics" {
		return fmt.Errorf("--format %q: want text, json or openmetrics", format)
	}
	run, err := analyzeFile(cliContext, cliContext.Args().First())
	if err != nil {
		return err
	}
	defer run.r.Close()
	if err := reportDamage(run.r, run.path, cliContext.Bool("strict")); err != nil {
		return err
	}
	w := cliContext.App.Writer
	switch format {
	case "json":
		return report.WriteJSON(w, run.snap, run.res)
	case "openmetrics":
		return openmetrics.Write(w, run.res, wallSeconds(run.r.Meta(), run.res.LastNS), run.res.LostByCPU)
	}
	return report.WriteText(w, run.snap, run.res, report.TextOptions{Top: cliContext.Int("top")})
}

// wallSeconds is a boottime timestamp as seconds since the epoch.
func wallSeconds(m *snapshot.Meta, boot uint64) float64 {
	if ns, ok := m.WallNS(boot); ok {
		return float64(ns) / 1e9
	}
	return float64(time.Now().UnixNano()) / 1e9
}

func diffCommand() *cli.Command {
	flags := selectionFlags()
	return &cli.Command{
		Name:      "diff",
		Usage:     "the same analyses of two snapshots side by side, with the change in each percentile",
		ArgsUsage: "BEFORE AFTER",
		Flags:     flags,
		Action: func(cliContext *cli.Context) error {
			if cliContext.NArg() != 2 {
				return fmt.Errorf("diff: want two snapshot files, got %d arguments", cliContext.NArg())
			}
			format := cliContext.String("format")
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: diff writes text or json", format)
			}
			var runs [2]*analysisRun
			for i, path := range cliContext.Args().Slice() {
				run, err := analyzeFile(cliContext, path)
				if err != nil {
					return err
				}
				defer run.r.Close()
				if err := reportDamage(run.r, run.path, cliContext.Bool("strict")); err != nil {
					return err
				}
				runs[i] = run
			}
			d := report.Diff(runs[0].snap, runs[0].res, runs[1].snap, runs[1].res)
			if format == "json" {
				return report.WriteDiffJSON(os.Stdout, d)
			}
			return report.WriteDiffText(os.Stdout, d, cliContext.Int("top"))
		},
	}
}
