package app

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/record"
)

func listCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list what rewind can record here",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "events", Usage: "list every event and group, with whether this kernel supports it and why not"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON (docs/JSON.md)"},
			&cli.StringFlag{Name: "btf", Usage: "BTF file for a kernel without /sys/kernel/btf/vmlinux"},
		},
		Action: runList,
	}
}

func runList(cliContext *cli.Context) error {
	if !cliContext.Bool("events") {
		return fmt.Errorf("list: say what to list: --events")
	}
	if cliContext.NArg() != 0 {
		return fmt.Errorf("list takes no arguments, got %q", cliContext.Args().Slice())
	}
	l, err := record.List(cliContext.String("btf"))
	if err != nil {
		return err
	}
	if cliContext.Bool("json") {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	}
	return l.WriteText(os.Stdout)
}
