package app

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/formats/info"
	"github.com/rewindtrace/rewind/snapshot"
)

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:      "info",
		Usage:     "show what a snapshot holds: host, kernel, CPUs, time span, trigger, events per CPU and per type, losses",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON (docs/JSON.md)"},
			strictFlag,
		},
		Action: runInfo,
	}
}

func runInfo(cliContext *cli.Context) error {
	r, path, err := openSnapshot(cliContext)
	if err != nil {
		return err
	}
	defer r.Close()
	sum, err := snapshot.Summarize(r)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := reportDamage(r, path, cliContext.Bool("strict")); err != nil {
		return err
	}
	inf := info.Build(r, path, sum)
	if cliContext.Bool("json") {
		enc := json.NewEncoder(cliContext.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(inf)
	}
	return info.Text(cliContext.App.Writer, inf, r.Meta())
}
