package app

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/internal/atomicfile"
)

func saveCommand() *cli.Command {
	return &cli.Command{
		Name:      "save",
		Category:  sessionCategory,
		Usage:     "save a session: among the daemon's saved sessions, loaded (and started, if it records) when the daemon starts, or into -o FILE for rewind load",
		ArgsUsage: "[NAME]",
		Flags: []cli.Flag{socketFlag, sessionFlag,
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the session's definition to `FILE` instead"}},
		Action: func(cliContext *cli.Context) error {
			args, err := arguments(cliContext)
			if err != nil {
				return err
			}
			t, err := sessionOf(cliContext, args)
			if err != nil {
				return err
			}
			c := dial(cliContext)
			file := cliContext.String("output")
			if file == "" {
				r, err := c.Save(cliContext.Context, t.name)
				if err != nil {
					return t.explain(err)
				}
				fmt.Fprintf(cliContext.App.Writer, "session %s saved to %s: the daemon loads it when it starts\n", t.name, r.Path)
				return nil
			}
			def, err := c.Definition(cliContext.Context, t.name)
			if err != nil {
				return t.explain(err)
			}
			b, err := json.MarshalIndent(def, "", "  ")
			if err != nil {
				return err
			}
			if err := atomicfile.WriteBytes(file, append(b, '\n'), 0o640); err != nil {
				return fmt.Errorf("save %s: %w", file, err)
			}
			fmt.Fprintf(cliContext.App.Writer, "session %s saved to %s: rewind load %s recreates it\n", t.name, file, file)
			return nil
		},
	}
}

func loadCommand() *cli.Command {
	return &cli.Command{
		Name:      "load",
		Category:  sessionCategory,
		Usage:     "recreate a saved session (rewind save -o FILE) in the daemon, started if it was recording; it becomes your default",
		ArgsUsage: "FILE",
		Flags:     []cli.Flag{socketFlag},
		Action: func(cliContext *cli.Context) error {
			args, err := arguments(cliContext)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return fmt.Errorf("load: want one saved session file, got %d arguments", len(args))
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			var def api.Definition
			if err := api.Decode(f, &def); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			s, err := dial(cliContext).Load(cliContext.Context, def)
			if err != nil {
				return fmt.Errorf("load %s: %w", args[0], err)
			}
			if err := writeDefault(s.Name); err != nil {
				return err
			}
			fmt.Fprintf(cliContext.App.Writer, "session %s loaded: %s, %d events, snapshots go to %s\n", s.Name, s.State, len(s.Events), s.Output)
			return nil
		},
	}
}
