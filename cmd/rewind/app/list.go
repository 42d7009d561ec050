package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/internal/units"
	"github.com/rewindtrace/rewind/record"
)

func listCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the daemon's sessions (when one runs) and what rewind can record here",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "events", Usage: "only the events and groups, with whether this kernel supports each and why not"},
			&cli.BoolFlag{Name: "sessions", Usage: "only the daemon's sessions"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON (docs/JSON.md)"},
			&cli.StringFlag{Name: "btf", Usage: "BTF file for a kernel without /sys/kernel/btf/vmlinux"},
			socketFlag,
		},
		Action: runList,
	}
}

// listing is `rewind list --json` without --events or --sessions.
type listing struct {
	// Sessions are the daemon's; Daemon says why there are none to show
	// when no daemon answered.
	Sessions []api.Session     `json:"sessions"`
	Daemon   string            `json:"daemon,omitempty"`
	Events   *record.EventList `json:"events,omitempty"`
}

func runList(cliContext *cli.Context) error {
	if cliContext.NArg() != 0 {
		return fmt.Errorf("list takes no arguments, got %q", cliContext.Args().Slice())
	}
	events, sessions := cliContext.Bool("events"), cliContext.Bool("sessions")
	if !events && !sessions {
		events, sessions = true, true
	}
	var out listing
	if sessions {
		ctx, cancel := context.WithTimeout(cliContext.Context, 10*time.Second)
		list, err := dial(cliContext).Sessions(ctx)
		cancel()
		if err != nil && !events {
			return err
		}
		out.Sessions = list
		if err != nil {
			out.Daemon = err.Error()
		}
	}
	if events {
		l, err := record.List(cliContext.String("btf"))
		if err != nil {
			return err
		}
		out.Events = l
	}
	w := cliContext.App.Writer
	if cliContext.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		switch {
		case !sessions:
			return enc.Encode(out.Events)
		case !events:
			return enc.Encode(api.Sessions{Sessions: out.Sessions})
		}
		return enc.Encode(out)
	}
	if sessions {
		writeSessions(w, out)
		if events {
			fmt.Fprintln(w)
		}
	}
	if events {
		return out.Events.WriteText(w)
	}
	return nil
}

// writeSessions prints a line per session, or why there are none.
func writeSessions(w io.Writer, out listing) {
	switch {
	case out.Daemon != "":
		fmt.Fprintf(w, "sessions: none: %s\n", out.Daemon)
		return
	case len(out.Sessions) == 0:
		fmt.Fprintln(w, "sessions: none (rewind create NAME makes one)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tSTATE\tEVENTS\tBUFFER\tOUTPUT")
	for _, s := range out.Sessions {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s per CPU\t%s\n", s.Name, s.State, len(s.Events), units.FormatSize(s.BufferSize), s.Output)
	}
	tw.Flush()
}
