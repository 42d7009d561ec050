// Package app builds rewind's command-line interface; each command's flags
// and action live in a file of their own.
package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/snapshot"
)

// Version is set at build time (-ldflags "-X .../app.Version=...").
var Version = "0.1.0-dev"

// New returns the rewind application.
func New() *cli.App {
	return &cli.App{
		Name:                 "rewind",
		Usage:                "a Linux flight recorder: keep the last seconds of kernel events, snapshot them when something goes wrong",
		Version:              Version,
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			recordCommand(),
			infoCommand(),
			viewCommand(),
			analyzeCommand(),
			diffCommand(),
			listCommand(),
			createCommand(),
			destroyCommand(),
			eventCommand("enable-event"),
			eventCommand("disable-event"),
			trackCommand("track"),
			trackCommand("untrack"),
			counterCommand("enable-counter"),
			counterCommand("disable-counter"),
			histogramCommand("enable-histogram"),
			histogramCommand("disable-histogram"),
			addTriggerCommand(),
			listTriggersCommand(),
			removeTriggerCommand(),
			stateCommand("start"),
			stateCommand("stop"),
			snapshotCommand(),
			statusCommand(),
			saveCommand(),
			loadCommand(),
			daemonCommand(),
			crashCommand(),
		},
		// Errors are printed once, by main.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(cliContext *cli.Context, err error, _ bool) error {
			return fmt.Errorf("%s: %w (see rewind %s --help)", cliContext.Command.Name, err, cliContext.Command.Name)
		},
	}
}

// openSnapshot opens the snapshot named by the command's only argument.
func openSnapshot(cliContext *cli.Context) (*snapshot.Reader, string, error) {
	if cliContext.NArg() != 1 {
		return nil, "", fmt.Errorf("%s: want one snapshot file, got %d arguments", cliContext.Command.Name, cliContext.NArg())
	}
	path := cliContext.Args().First()
	r, err := openFile(path)
	return r, path, err
}

// openFile opens a snapshot; its errors name the file once.
func openFile(path string) (*snapshot.Reader, error) {
	r, err := snapshot.Open(path)
	var pathErr *fs.PathError
	if err != nil && !errors.As(err, &pathErr) {
		err = fmt.Errorf("open %s: %w", path, err)
	}
	return r, err
}

// reportDamage warns on stderr about every damaged byte range, or, with
// --strict, turns the first into the command's error.
func reportDamage(r *snapshot.Reader, path string, strict bool) error {
	damage := r.Damage()
	if len(damage) > 0 && strict {
		return fmt.Errorf("%s: %w (--strict)", path, damage[0])
	}
	for _, d := range damage {
		fmt.Fprintf(os.Stderr, "rewind: warning: %s: %v\n", path, d)
	}
	return nil
}

var strictFlag = &cli.BoolFlag{Name: "strict", Usage: "fail on a damaged or truncated snapshot instead of reading what is intact"}

// rangeFlagError names the flag (--from, --to) a time range error is about.
func rangeFlagError(err error) error {
	var re *snapshot.RangeError
	if errors.As(err, &re) {
		return fmt.Errorf("--%s %q: %w", re.Bound, re.Value, re.Err)
	}
	return err
}
