package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/internal/units"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Category:  sessionCategory,
		Usage:     "show a session (default: your default session, or every session when you have none)",
		ArgsUsage: "[NAME]",
		Flags: []cli.Flag{
			socketFlag, sessionFlag,
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "show the daemon and every session in it, whatever your default"},
			&cli.BoolFlag{Name: "json", Usage: "print the session, or {\"sessions\": [...]}, as the daemon replies (docs/CONTROL.md)"},
		},
		Action: runStatus,
	}
}

func runStatus(cliContext *cli.Context) error {
	args, err := arguments(cliContext)
	if err != nil {
		return err
	}
	var t target
	if cliContext.Bool("all") {
		if len(args) > 0 || cliContext.String("session") != "" {
			return fmt.Errorf("status: --all or a session name, not both")
		}
	} else if t, err = sessionOf(cliContext, args); err != nil && !errors.Is(err, errNoSession) {
		return err
	}
	c := dial(cliContext)
	w := cliContext.App.Writer
	if t.name != "" {
		s, err := c.Session(cliContext.Context, t.name)
		if err != nil {
			return t.explain(err)
		}
		if cliContext.Bool("json") {
			return writeJSON(w, s)
		}
		return writeStatus(w, s)
	}
	sessions, err := c.Sessions(cliContext.Context)
	if err != nil {
		return err
	}
	if cliContext.Bool("json") {
		return writeJSON(w, api.Sessions{Sessions: sessions})
	}
	st, err := c.Status(cliContext.Context)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "daemon pid %d, rewind %s, protocol %s, up %s: %s\n", st.PID, st.Version, st.Protocol,
		time.Since(st.Started).Round(time.Second), plural(len(sessions), "session", "no sessions (rewind create NAME)"))
	for _, s := range sessions {
		fmt.Fprintln(w)
		if err := writeStatus(w, &s); err != nil {
			return err
		}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeStatus shows a session: its settings, then the recorder's figures.
func writeStatus(w io.Writer, s *api.Session) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(key, format string, a ...any) { fmt.Fprintf(tw, "  %s\t%s\n", key, fmt.Sprintf(format, a...)) }
	fmt.Fprintf(tw, "session %s: %s\n", s.Name, s.State)
	row("output", "%s", s.Output)
	if r := s.Retention; r != nil {
		row("retention", "%s", retentionText(r))
	}
	row("buffer", "%s per CPU", units.FormatSize(s.BufferSize))
	if s.History > 0 || s.Memory > 0 {
		row("history", "%s", historyLimits(s))
	}
	row("events", "%s", countedList(s.Events, "event", "none (rewind enable-event -s "+s.Name+" default)"))
	for _, name := range slices.Sorted(maps.Keys(s.Unavailable)) {
		row("unavailable", "%s: %s", name, s.Unavailable[name])
	}
	row("tracking", "%s", trackedText(s.Tracked))
	row("counters", "%s", countedList(s.Counters, "source", "none"))
	if len(s.Triggers) > 0 {
		row("triggers", "%s (rewind list-triggers -s %s)", strings.Join(s.Triggers, ", "), s.Name)
	}
	if len(s.Histograms) > 0 {
		row("histograms", "%s, live on the daemon's /metrics", strings.Join(s.Histograms, ", "))
	}
	st := s.Stats
	if st == nil {
		return tw.Flush()
	}
	row("memory", "%s in use", units.FormatSize(st.MemoryBytes))
	row("dropped", "%d records the programs could not write", st.Dropped)
	if h := st.History; h != nil {
		row("history held", "%d events in %s; %d evicted, %d drained", h.Held.Events, units.FormatSize(h.Held.Bytes), h.Evicted.Events, h.Drained)
		row("lost", "%d events the rings overwrote before the history tier drained them", st.Lost)
	}
	if cs := st.Counters; len(cs.Sources) > 0 {
		row("samples", "%s of counter samples kept %s, %d missed", units.FormatSize(cs.Bytes), cs.Keep, cs.Missed)
		for _, u := range cs.Unavailable {
			row("unavailable", "%s: %s", u.Name, u.Why)
		}
		if cs.Err != "" {
			row("sampler", "%s", cs.Err)
		}
	}
	row("snapshots", "%d taken, %d failed", st.Snapshots.Taken, st.Snapshots.Failed)
	if l := st.Snapshots.Last; l != nil {
		where := l.Path
		if where == "" {
			where = "streamed to a client"
		}
		row("last", "%s: %d events, %d lost, %s", where, l.Events, l.Lost, units.FormatSize(uint64(l.Bytes)))
	}
	if e := st.Snapshots.LastError; e != "" {
		row("last failure", "%s", e)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.CPUs) == 0 {
		return nil
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  cpu\tslots written\tfill\tdropped\tlost\t")
	for _, c := range st.CPUs {
		fmt.Fprintf(tw, "  %d\t%d\t%.0f%%\t%d\t%d\t\n", c.CPU, c.Slots, 100*c.Fill, c.Dropped, c.Lost)
	}
	return tw.Flush()
}

func historyLimits(s *api.Session) string {
	var parts []string
	if s.History > 0 {
		parts = append(parts, "up to "+time.Duration(s.History).String())
	}
	if s.Memory > 0 {
		parts = append(parts, "at most "+units.FormatSize(s.Memory))
	}
	return strings.Join(parts, ", ")
}

// trackedText says what a session's filter lets through.
func trackedText(t api.TrackRequest) string {
	var parts []string
	if len(t.PIDs) > 0 {
		pids := make([]string, len(t.PIDs))
		for i, p := range t.PIDs {
			pids[i] = strconv.FormatUint(uint64(p), 10)
		}
		parts = append(parts, "pids "+strings.Join(pids, ", "))
	}
	if len(t.Comms) > 0 {
		parts = append(parts, "comms "+strings.Join(t.Comms, ", "))
	}
	if len(t.Cgroups) > 0 {
		parts = append(parts, "cgroups "+strings.Join(t.Cgroups, ", "))
	}
	if len(parts) == 0 {
		return "every task"
	}
	return strings.Join(parts, "; ")
}

// countedList is "3 events: a, b, c", or none when the list is empty.
func countedList(list []string, noun, none string) string {
	if len(list) == 0 {
		return none
	}
	return plural(len(list), noun, none) + ": " + strings.Join(list, ", ")
}

func plural(n int, noun, none string) string {
	switch n {
	case 0:
		return none
	case 1:
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// retentionText renders a session's retention caps.
func retentionText(r *api.Retention) string {
	var caps []string
	if r.MaxFiles > 0 {
		caps = append(caps, fmt.Sprintf("at most %d snapshots", r.MaxFiles))
	}
	if r.MaxBytes > 0 {
		caps = append(caps, "at most "+units.FormatSize(r.MaxBytes))
	}
	if r.MaxAge > 0 {
		caps = append(caps, "none older than "+r.MaxAge.D().String())
	}
	return strings.Join(caps, ", ") + ", oldest deleted first"
}
