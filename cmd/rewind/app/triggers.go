package app

// The trigger commands: add-trigger, list-triggers, remove-trigger, and
// the live histograms (enable-histogram, disable-histogram).

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/formats/info"
	"github.com/rewindtrace/rewind/record/trigger"
)

func addTriggerCommand() *cli.Command {
	return &cli.Command{
		Name:     "add-trigger",
		Category: sessionCategory,
		Usage:    "snapshot the session (or notify) when a condition holds, evaluated in the kernel for events",
		Description: `Conditions (--condition):
   syscall > 50ms [syscall=NAME] [pid=P] [comm=C] [cgroup=PATH] [cpu=N]
   runq > 5ms [pid=P] [comm=C] [cgroup=PATH] [cpu=N]     waiting to run
   block > 100ms [dev=MAJOR:MINOR]                       block I/O issue to completion
   signal [SIGSEGV,SIGABRT,...] [pid=P] [comm=C]          a signal delivered (default: the crash signals)
   exit [signaled] [pid=P] [comm=C]                       a process exiting non-zero or by a signal
   oom                                                    the OOM killer chose a victim
   counter SOURCE:FIELD[{LABEL=V,...}] OP VALUE          a counter crossing a threshold, e.g.
           counter pressure:avg10{resource=cpu,kind=some} > 40
           counter memory:MemAvailable < 512MiB           (the session must sample the source)
   lost [> N]                                             events lost (checked each second)`,
		Flags: []cli.Flag{
			socketFlag, sessionFlag,
			&cli.StringFlag{Name: "name", Usage: "the trigger's `NAME` (default: trigger1, trigger2, ...)"},
			&cli.StringFlag{Name: "condition", Aliases: []string{"c"}, Required: true, Usage: "when to fire (see above)"},
			&cli.StringSliceFlag{Name: "action", Aliases: []string{"a"}, Usage: "snapshot (default), notify (a log line, a metric, --post), crash (signal conditions: a crash record without a core when the kernel's crash handler does not report the crash)"},
			&cli.DurationFlag{Name: "delay", Usage: "keep recording this long after the firing before the snapshot"},
			&cli.StringFlag{Name: "post", Usage: "notify: POST each firing as JSON to this `URL`"},
			&cli.StringFlag{Name: "policy", Usage: "every:N (every Nth match) or once-after:N (the Nth match, once)"},
			&cli.DurationFlag{Name: "cooldown", Usage: "pass matches this soon after a firing"},
			&cli.IntFlag{Name: "max-per-hour", Usage: "fire at most N times in any hour"},
		},
		Action: runAddTrigger,
	}
}

// parseAddTrigger checks add-trigger's flags before anything reaches the
// daemon.
func parseAddTrigger(cliContext *cli.Context) (target, api.TriggerRequest, error) {
	req := api.TriggerRequest{Name: cliContext.String("name"), Condition: cliContext.String("condition"), Post: cliContext.String("post"),
		Rate: cliContext.String("policy"), Delay: api.Duration(cliContext.Duration("delay")), Cooldown: api.Duration(cliContext.Duration("cooldown")),
		MaxPerHour: cliContext.Int("max-per-hour")}
	args, err := arguments(cliContext)
	if err != nil {
		return target{}, req, err
	}
	if len(args) > 0 {
		return target{}, req, fmt.Errorf("add-trigger: unexpected arguments %q (quote the condition: --condition 'syscall > 50ms')", args)
	}
	if _, err := trigger.Parse(req.Condition); err != nil {
		return target{}, req, fmt.Errorf("--condition: %w", err)
	}
	for _, a := range cliContext.StringSlice("action") {
		req.Actions = append(req.Actions, splitList(a)...)
	}
	var p trigger.Policy
	if err := p.ParseRate(req.Rate); err != nil {
		return target{}, req, fmt.Errorf("--policy: %w", err)
	}
	for flag, d := range map[string]time.Duration{"delay": req.Delay.D(), "cooldown": req.Cooldown.D()} {
		if d < 0 {
			return target{}, req, fmt.Errorf("--%s %v: must not be negative", flag, d)
		}
	}
	if req.MaxPerHour < 0 {
		return target{}, req, fmt.Errorf("--max-per-hour %d: must not be negative", req.MaxPerHour)
	}
	t, err := sessionOf(cliContext, nil)
	return t, req, err
}

func runAddTrigger(cliContext *cli.Context) error {
	t, req, err := parseAddTrigger(cliContext)
	if err != nil {
		return err
	}
	out, err := dial(cliContext).AddTrigger(cliContext.Context, t.name, req)
	if err != nil {
		return t.explain(err)
	}
	name := req.Name
	if name == "" && len(out.Triggers) > 0 {
		name = out.Triggers[len(out.Triggers)-1].Name
	}
	fmt.Fprintf(cliContext.App.Writer, "session %s: trigger %s added: %s\n", t.name, name, req.Condition)
	return nil
}

func listTriggersCommand() *cli.Command {
	return &cli.Command{
		Name:     "list-triggers",
		Category: sessionCategory,
		Usage:    "a session's triggers: condition, actions, policy, and what they did",
		Flags:    []cli.Flag{socketFlag, sessionFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON (docs/CONTROL.md)"}},
		Action: func(cliContext *cli.Context) error {
			args, err := arguments(cliContext)
			if err != nil {
				return err
			}
			t, err := sessionOf(cliContext, args)
			if err != nil {
				return err
			}
			out, err := dial(cliContext).Triggers(cliContext.Context, t.name)
			if err != nil {
				return t.explain(err)
			}
			if cliContext.Bool("json") {
				return writeJSON(cliContext.App.Writer, out)
			}
			return writeTriggers(cliContext.App.Writer, out)
		},
	}
}

func writeTriggers(w io.Writer, out *api.Triggers) error {
	if len(out.Triggers) == 0 {
		_, err := fmt.Fprintf(w, "session %s has no triggers (rewind add-trigger -s %s --condition ...)\n", out.Session, out.Session)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range out.Triggers {
		fmt.Fprintf(tw, "trigger %s: %s\n", t.Name, t.Condition)
		row := func(key, format string, a ...any) { fmt.Fprintf(tw, "  %s\t%s\n", key, fmt.Sprintf(format, a...)) }
		actions := t.Actions
		if len(actions) == 0 {
			actions = []string{api.ActionSnapshot}
		}
		act := strings.Join(actions, ", ")
		if t.Delay > 0 {
			act += fmt.Sprintf(" (after %v)", t.Delay.D())
		}
		if t.Post != "" {
			act += ", POST to " + t.Post
		}
		row("actions", "%s", act)
		var policy []string
		if t.Rate != "" {
			policy = append(policy, t.Rate)
		}
		if t.Cooldown > 0 {
			policy = append(policy, "cooldown "+t.Cooldown.D().String())
		}
		if t.MaxPerHour > 0 {
			policy = append(policy, fmt.Sprintf("at most %d per hour", t.MaxPerHour))
		}
		if len(policy) == 0 {
			policy = []string{"every match"}
		}
		row("policy", "%s", strings.Join(policy, ", "))
		var supp []string
		for _, k := range sortedKeys(t.Suppressed) {
			supp = append(supp, fmt.Sprintf("%d by %s", t.Suppressed[k], k))
		}
		line := fmt.Sprintf("%d matches, %d fired, %d snapshots", t.Matches, t.Fired, t.Snapshots)
		if len(supp) > 0 {
			line += "; passed: " + strings.Join(supp, ", ")
		}
		row("done", "%s", line)
		if t.Errors > 0 {
			row("errors", "%d, the last: %s", t.Errors, t.LastError)
		}
		if f := t.Last; f != nil {
			task := fmt.Sprintf("tid %d pid %d %s", f.TID, f.PID, f.Comm)
			if f.TID == 0 && f.PID == 0 {
				task = "no task"
			}
			if f.CPU >= 0 {
				task += fmt.Sprintf(" on cpu %d", f.CPU)
			}
			row("last", "%s: %s", info.FiringValue(f), task)
		}
		if t.LastSnapshot != "" {
			row("snapshot", "%s", t.LastSnapshot)
		}
	}
	return tw.Flush()
}

func sortedKeys(m map[string]uint64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func removeTriggerCommand() *cli.Command {
	return &cli.Command{
		Name:      "remove-trigger",
		Category:  sessionCategory,
		Usage:     "remove a session's trigger",
		ArgsUsage: "NAME",
		Flags:     []cli.Flag{socketFlag, sessionFlag},
		Action: func(cliContext *cli.Context) error {
			args, err := arguments(cliContext)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return fmt.Errorf("remove-trigger: want one trigger name, got %d arguments", len(args))
			}
			t, err := sessionOf(cliContext, nil)
			if err != nil {
				return err
			}
			if _, err := dial(cliContext).RemoveTrigger(cliContext.Context, t.name, args[0]); err != nil {
				return t.explain(err)
			}
			fmt.Fprintf(cliContext.App.Writer, "session %s: trigger %s removed\n", t.name, args[0])
			return nil
		},
	}
}

func histogramCommand(action string) *cli.Command {
	usage := "keep live latency histograms in the kernel, exported on the daemon's /metrics"
	if action == "disable-histogram" {
		usage = "stop keeping these live histograms"
	}
	return &cli.Command{
		Name:      action,
		Category:  sessionCategory,
		Usage:     usage + " (syscall, runq, offcpu, block, all)",
		ArgsUsage: "HISTOGRAM[,HISTOGRAM...]...",
		Flags:     []cli.Flag{socketFlag, sessionFlag},
		Action: func(cliContext *cli.Context) error {
			args, err := arguments(cliContext)
			if err != nil {
				return err
			}
			req := api.HistogramsRequest{Histograms: splitList(strings.Join(args, ","))}
			if len(req.Histograms) == 0 {
				return fmt.Errorf("%s: name the histograms: syscall, runq, offcpu, block, all", action)
			}
			t, err := sessionOf(cliContext, nil)
			if err != nil {
				return err
			}
			s, err := dial(cliContext).Action(cliContext.Context, t.name, action, req)
			if err != nil {
				return t.explain(err)
			}
			fmt.Fprintf(cliContext.App.Writer, "session %s keeps %s\n", s.Name, countedList(s.Histograms, "live histogram", "no live histograms"))
			return nil
		},
	}
}
