package app

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/formats/view"
)

func viewCommand() *cli.Command {
	return &cli.Command{
		Name:      "view",
		Usage:     "print a snapshot's events one per line, in time order",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per line (docs/JSON.md)"},
			&cli.UintFlag{Name: "pid", Usage: "only events of this process"},
			&cli.UintFlag{Name: "tid", Usage: "only events of this thread"},
			&cli.IntFlag{Name: "cpu", Value: -1, Usage: "only events of this CPU"},
			&cli.StringFlag{Name: "event", Usage: "only these events, comma-separated (none: counter samples only)"},
			&cli.StringFlag{Name: "from", Usage: "start this long after the first event (1.5s), or before the last (-2s)"},
			&cli.StringFlag{Name: "to", Usage: "stop this long after the first event, or before the last"},
			aroundFlag(),
			&cli.IntFlag{Name: "limit", Usage: "print at most this many events"},
			&cli.StringFlag{Name: "counters", Usage: "also print the samples of these counter sources, comma-separated, or all"},
			strictFlag,
		},
		Action: runView,
	}
}

func runView(cliContext *cli.Context) error {
	r, path, err := openSnapshot(cliContext)
	if err != nil {
		return err
	}
	defer r.Close()
	if cliContext.Int("limit") < 0 || cliContext.Int("cpu") < -1 {
		return fmt.Errorf("view: --limit and --cpu must not be negative")
	}
	if err := aroundConflict(cliContext, "from", "to"); err != nil {
		return err
	}
	rng, err := timeRange(cliContext, r, path, cliContext.String("from"), cliContext.String("to"))
	if err != nil {
		return err
	}
	opts := view.Options{
		JSON:     cliContext.Bool("json"),
		PID:      uint32(cliContext.Uint("pid")),
		TID:      uint32(cliContext.Uint("tid")),
		CPU:      cliContext.Int("cpu"),
		Events:   splitList(cliContext.String("event")),
		Counters: splitList(cliContext.String("counters")),
		Range:    rng,
		Limit:    cliContext.Int("limit"),
	}
	if len(opts.Events) == 1 && opts.Events[0] == "none" {
		opts.Events, opts.NoEvents = nil, true
	}
	if err := view.Write(cliContext.App.Writer, r, opts); err != nil {
		var nf *view.NotFoundError
		if errors.As(err, &nf) {
			return fmt.Errorf("--%s %q: %s", nf.What, nf.Name, nf.Reason())
		}
		return err
	}
	return reportDamage(r, path, cliContext.Bool("strict"))
}
