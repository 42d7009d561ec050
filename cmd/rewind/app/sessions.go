package app

// The session commands drive sessions that live in the rewind daemon, the
// way LTTng's do: create, enable-event, track, enable-counter, start,
// snapshot record, stop, destroy, status. Each is a client of the control
// protocol (daemon/api, docs/CONTROL.md) through daemon/client; commands
// not told a session use the user's default, kept in ~/.rewindrc.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/daemon/client"
	"github.com/rewindtrace/rewind/internal/atomicfile"
	"github.com/rewindtrace/rewind/internal/units"
	"github.com/rewindtrace/rewind/record"
	"github.com/rewindtrace/rewind/record/counters"
)

const sessionCategory = "sessions (in the daemon, docs/CONTROL.md)"

var socketFlag = &cli.StringFlag{Name: "socket", EnvVars: []string{"REWIND_SOCKET"}, Value: api.DefaultSocket, Usage: "the daemon's control socket at `PATH`"}

var sessionFlag = &cli.StringFlag{Name: "session", Aliases: []string{"s"}, Usage: "the session `NAME` (default: the last one created, from ~/.rewindrc)"}

func createCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Category:  sessionCategory,
		Usage:     "create a session in the daemon and make it your default; it records once started",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			socketFlag,
			&cli.StringFlag{Name: "buffer-size", Aliases: []string{"b"}, Usage: "kernel ring size per CPU (default: the daemon's)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "directory for the session's snapshots (default: the daemon's output directory, then the session's name)"},
			&cli.DurationFlag{Name: "history", Usage: "keep this much history in a compressed tier beyond the kernel rings"},
			&cli.StringFlag{Name: "memory", Usage: "cap the compressed tier at this much memory, oldest history dropped first"},
			&cli.IntFlag{Name: "max-files", Usage: "retention: keep at most `N` snapshots in the output directory, deleting the oldest (default: the daemon's caps)"},
			&cli.StringFlag{Name: "max-bytes", Usage: "retention: keep at most `SIZE` of snapshots in the output directory"},
			&cli.DurationFlag{Name: "max-age", Usage: "retention: delete snapshots older than this"},
		},
		Action: runCreate,
	}
}

// parseCreate checks create's flags before anything reaches the daemon.
func parseCreate(cliContext *cli.Context) (api.CreateRequest, error) {
	var req api.CreateRequest
	args, err := arguments(cliContext)
	if err != nil {
		return req, err
	}
	if len(args) != 1 {
		return req, fmt.Errorf("create: want one session name, got %d arguments", len(args))
	}
	req.Name = args[0]
	if err := api.CheckName("session", req.Name); err != nil {
		return req, err
	}
	if s := cliContext.String("buffer-size"); s != "" {
		if req.BufferSize, err = units.ParseSize(s); err != nil {
			return req, fmt.Errorf("--buffer-size: %w", err)
		}
		if req.BufferSize < 4<<10 || req.BufferSize > 1<<30 {
			return req, fmt.Errorf("--buffer-size %s: want between 4KiB and 1GiB per CPU", s)
		}
	}
	if out := cliContext.String("output"); out != "" {
		// The daemon has a working directory of its own.
		if req.Output, err = filepath.Abs(out); err != nil {
			return req, fmt.Errorf("--output %s: %w", out, err)
		}
	}
	if d := cliContext.Duration("history"); d < 0 {
		return req, fmt.Errorf("--history %v: must not be negative", d)
	}
	req.History = api.Duration(cliContext.Duration("history"))
	if m := cliContext.String("memory"); m != "" {
		if req.Memory, err = units.ParseSize(m); err != nil {
			return req, fmt.Errorf("--memory: %w", err)
		}
		if req.Memory < 1<<20 {
			return req, fmt.Errorf("--memory %s: want at least 1MiB", m)
		}
	}
	if cliContext.IsSet("max-files") || cliContext.IsSet("max-bytes") || cliContext.IsSet("max-age") {
		r := &api.Retention{MaxFiles: cliContext.Int("max-files"), MaxAge: api.Duration(cliContext.Duration("max-age"))}
		if r.MaxFiles < 0 {
			return req, fmt.Errorf("--max-files %d: must not be negative", r.MaxFiles)
		}
		if r.MaxAge < 0 {
			return req, fmt.Errorf("--max-age %v: must not be negative", r.MaxAge.D())
		}
		if b := cliContext.String("max-bytes"); b != "" {
			if r.MaxBytes, err = units.ParseSize(b); err != nil {
				return req, fmt.Errorf("--max-bytes: %w", err)
			}
		}
		req.Retention = r
	}
	return req, nil
}

func runCreate(cliContext *cli.Context) error {
	req, err := parseCreate(cliContext)
	if err != nil {
		return err
	}
	s, err := dial(cliContext).Create(cliContext.Context, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(cliContext.App.Writer, "session %s created: snapshots go to %s\n", s.Name, s.Output)
	if err := writeDefault(s.Name); err != nil {
		return fmt.Errorf("session %s created, but not made your default: %w", s.Name, err)
	}
	return nil
}

func destroyCommand() *cli.Command {
	return &cli.Command{
		Name:      "destroy",
		Category:  sessionCategory,
		Usage:     "stop a session and free what it holds (its snapshots stay)",
		ArgsUsage: "[NAME]",
		Flags: []cli.Flag{
			socketFlag, sessionFlag,
			&cli.BoolFlag{Name: "all", Usage: "destroy every session in the daemon"},
		},
		Action: runDestroy,
	}
}

func runDestroy(cliContext *cli.Context) error {
	args, err := arguments(cliContext)
	if err != nil {
		return err
	}
	if cliContext.Bool("all") {
		if len(args) > 0 || cliContext.String("session") != "" {
			return fmt.Errorf("destroy: --all or a session name, not both")
		}
		return destroyAll(cliContext)
	}
	t, err := sessionOf(cliContext, args)
	if err != nil {
		return err
	}
	err = dial(cliContext).Destroy(cliContext.Context, t.name)
	if err != nil && !isNotFound(err) {
		return err
	}
	// A default the daemon does not know is of no use either.
	cerr := clearDefault(t.name)
	switch {
	case err != nil && t.rc != "" && cerr == nil:
		return fmt.Errorf("%w; no longer your default session (%s)", err, t.rc)
	case err != nil:
		return err
	}
	fmt.Fprintf(cliContext.App.Writer, "session %s destroyed\n", t.name)
	if cerr != nil {
		return fmt.Errorf("session %s destroyed, but still your default: %w", t.name, cerr)
	}
	return nil
}

// destroyAll destroys every session it can, and says which it could not.
func destroyAll(cliContext *cli.Context) error {
	c := dial(cliContext)
	sessions, err := c.Sessions(cliContext.Context)
	if err != nil {
		return err
	}
	if len(sessions) == 0 {
		fmt.Fprintln(cliContext.App.Writer, "no sessions to destroy")
		return nil
	}
	def, _ := readDefault() // a bad ~/.rewindrc must not stop this
	var errs []error
	for _, s := range sessions {
		if err := c.Destroy(cliContext.Context, s.Name); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("destroy %s: %w", s.Name, err))
			continue
		}
		fmt.Fprintf(cliContext.App.Writer, "session %s destroyed\n", s.Name)
		if s.Name == def {
			if err := clearDefault(def); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func eventCommand(action string) *cli.Command {
	usage := "record these events and groups too"
	if action == "disable-event" {
		usage = "stop recording these events and groups"
	}
	return &cli.Command{
		Name:      action,
		Category:  sessionCategory,
		Usage:     usage + " (as rewind record --events: sched, syscalls, process, default, all, or event names)",
		ArgsUsage: "EVENT[,EVENT...]...",
		Flags:     []cli.Flag{socketFlag, sessionFlag},
		Action: func(cliContext *cli.Context) error {
			t, req, err := parseEvents(cliContext)
			if err != nil {
				return err
			}
			s, err := dial(cliContext).Action(cliContext.Context, t.name, action, req)
			if err != nil {
				return t.explain(err)
			}
			fmt.Fprintf(cliContext.App.Writer, "session %s records %s\n", s.Name, countedList(s.Events, "event", "no events"))
			if action == "enable-event" {
				for _, name := range slices.Sorted(maps.Keys(s.Unavailable)) {
					fmt.Fprintf(cliContext.App.ErrWriter, "rewind: warning: not recording %s: %s\n", name, s.Unavailable[name])
				}
			}
			return nil
		},
	}
}

// parseEvents reads the events and groups named, checked against the
// catalogue this binary was built with.
func parseEvents(cliContext *cli.Context) (target, api.EventsRequest, error) {
	var req api.EventsRequest
	args, err := arguments(cliContext)
	if err != nil {
		return target{}, req, err
	}
	if req.Events = splitList(strings.Join(args, ",")); len(req.Events) == 0 {
		return target{}, req, fmt.Errorf("%s: name the events or groups (see rewind list --events)", cliContext.Command.Name)
	}
	if _, _, err := record.SelectEvents(req.Events); err != nil {
		return target{}, req, fmt.Errorf("%s: %w", cliContext.Command.Name, err)
	}
	t, err := sessionOf(cliContext, nil)
	return t, req, err
}

func trackCommand(action string) *cli.Command {
	flags := []cli.Flag{
		socketFlag, sessionFlag,
		&cli.StringSliceFlag{Name: "pid", Aliases: []string{"p"}, Usage: "processes or threads by `PID` (repeat or comma-separate)"},
		&cli.StringSliceFlag{Name: "comm", Aliases: []string{"c"}, Usage: "tasks named `COMM` (repeat or comma-separate)"},
		&cli.StringSliceFlag{Name: "cgroup", Usage: "tasks in the cgroup v2 directory `PATH`, absolute or relative to the cgroup2 mount (repeat or comma-separate)"},
	}
	usage := "record only these processes, task names and cgroups (added to those tracked already)"
	if action == "untrack" {
		usage = "stop tracking these processes, task names and cgroups; with --all, record every task again"
		flags = append(flags, &cli.BoolFlag{Name: "all", Usage: "lift the filter: record every task"})
	}
	return &cli.Command{
		Name:      action,
		Category:  sessionCategory,
		Usage:     usage,
		ArgsUsage: " ",
		Flags:     flags,
		Action: func(cliContext *cli.Context) error {
			req, err := parseTrack(cliContext)
			if err != nil {
				return err
			}
			t, err := sessionOf(cliContext, nil)
			if err != nil {
				return err
			}
			s, err := dial(cliContext).Action(cliContext.Context, t.name, action, req)
			if err != nil {
				return t.explain(err)
			}
			fmt.Fprintf(cliContext.App.Writer, "session %s tracks %s\n", s.Name, trackedText(s.Tracked))
			return nil
		},
	}
}

// parseTrack reads track's and untrack's flags, of which one is needed.
func parseTrack(cliContext *cli.Context) (api.TrackRequest, error) {
	var req api.TrackRequest
	name := cliContext.Command.Name
	if cliContext.NArg() != 0 {
		return req, fmt.Errorf("%s takes no arguments, got %q: give --pid, --comm or --cgroup", name, cliContext.Args().Slice())
	}
	var err error
	if req.PIDs, err = parsePIDs(cliContext.StringSlice("pid")); err != nil {
		return req, err
	}
	if req.Comms, err = parseComms(cliContext.StringSlice("comm")); err != nil {
		return req, err
	}
	req.Cgroups = splitList(strings.Join(cliContext.StringSlice("cgroup"), ","))
	req.All = cliContext.Bool("all")
	some := len(req.PIDs)+len(req.Comms)+len(req.Cgroups) > 0
	switch {
	case req.All && some:
		return req, fmt.Errorf("untrack: --all untracks everything; give it alone")
	case !req.All && !some && name == "untrack":
		return req, fmt.Errorf("untrack: say what to untrack: --pid, --comm, --cgroup or --all")
	case !some && name == "track":
		return req, fmt.Errorf("track: say what to track: --pid, --comm or --cgroup")
	}
	return req, nil
}

func parsePIDs(flags []string) ([]uint32, error) {
	var pids []uint32
	for _, p := range splitList(strings.Join(flags, ",")) {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("--pid %q: want a process or thread id", p)
		}
		pids = append(pids, uint32(n))
	}
	return pids, nil
}

func parseComms(flags []string) ([]string, error) {
	comms := splitList(strings.Join(flags, ","))
	for _, name := range comms {
		if len(name) > 15 {
			return nil, fmt.Errorf("--comm %q: task names are at most 15 bytes", name)
		}
	}
	return comms, nil
}

func counterCommand(action string) *cli.Command {
	usage := "sample these counter sources too"
	if action == "disable-counter" {
		usage = "stop sampling these counter sources"
	}
	return &cli.Command{
		Name:      action,
		Category:  sessionCategory,
		Usage:     usage + ": " + strings.Join(counters.Names, ", ") + ", cgroup:PATH, default, all; NAME@HZ for a rate of its own",
		ArgsUsage: "SOURCE[,SOURCE...]...",
		Flags:     []cli.Flag{socketFlag, sessionFlag},
		Action: func(cliContext *cli.Context) error {
			t, req, err := parseCounters(cliContext)
			if err != nil {
				return err
			}
			s, err := dial(cliContext).Action(cliContext.Context, t.name, action, req)
			if err != nil {
				return t.explain(err)
			}
			fmt.Fprintf(cliContext.App.Writer, "session %s samples %s\n", s.Name, countedList(s.Counters, "counter source", "no counters"))
			if action == "enable-counter" && s.Stats != nil {
				for _, u := range s.Stats.Counters.Unavailable {
					fmt.Fprintf(cliContext.App.ErrWriter, "rewind: warning: not sampling %s: %s\n", u.Name, u.Why)
				}
			}
			return nil
		},
	}
}

func parseCounters(cliContext *cli.Context) (target, api.CountersRequest, error) {
	var req api.CountersRequest
	args, err := arguments(cliContext)
	if err != nil {
		return target{}, req, err
	}
	req.Counters = splitList(strings.Join(args, ","))
	names, _, _, err := counters.ParseSources(req.Counters)
	if err != nil {
		return target{}, req, fmt.Errorf("%s: %w", cliContext.Command.Name, err)
	}
	if len(req.Counters) == 0 || len(names) == 0 {
		return target{}, req, fmt.Errorf("%s: name the counter sources: %s, cgroup:PATH, default, all", cliContext.Command.Name, strings.Join(counters.Names, ", "))
	}
	t, err := sessionOf(cliContext, nil)
	return t, req, err
}

func stateCommand(action string) *cli.Command {
	usage := "start recording (again: the rings keep what they hold)"
	if action == "stop" {
		usage = "stop recording; the rings keep what they hold, and snapshots still read it"
	}
	return &cli.Command{
		Name:      action,
		Category:  sessionCategory,
		Usage:     usage,
		ArgsUsage: "[NAME]",
		Flags:     []cli.Flag{socketFlag, sessionFlag},
		Action: func(cliContext *cli.Context) error {
			args, err := arguments(cliContext)
			if err != nil {
				return err
			}
			t, err := sessionOf(cliContext, args)
			if err != nil {
				return err
			}
			s, err := dial(cliContext).Action(cliContext.Context, t.name, action, nil)
			if err != nil {
				return t.explain(err)
			}
			fmt.Fprintf(cliContext.App.Writer, "session %s %s: snapshots go to %s\n", s.Name, s.State, s.Output)
			return nil
		},
	}
}

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:     "snapshot",
		Category: sessionCategory,
		Usage:    "snapshots of a session",
		Subcommands: []*cli.Command{{
			Name:      "record",
			Usage:     "write what the session holds now to a snapshot, in its output directory or in FILE",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				socketFlag, sessionFlag,
				&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "receive the snapshot from the daemon and write it to `FILE`, as you"},
				&cli.StringFlag{Name: "name", Usage: "the snapshot's file name, `FILENAME`, in the session's output directory (default: host and time)"},
			},
			Action: runSnapshotRecord,
		}},
	}
}

func runSnapshotRecord(cliContext *cli.Context) error {
	if cliContext.NArg() != 0 {
		return fmt.Errorf("snapshot record takes no arguments, got %q", cliContext.Args().Slice())
	}
	file, fileName := cliContext.String("output"), cliContext.String("name")
	if file != "" && fileName != "" {
		return fmt.Errorf("snapshot record: --name is a file in the session's output directory, -o one of yours: give one")
	}
	if fileName != "" {
		if err := api.CheckName("--name", fileName); err != nil {
			return err
		}
	}
	t, err := sessionOf(cliContext, nil)
	if err != nil {
		return err
	}
	// Interrupted, a streamed snapshot removes its temporary file.
	ctx, stop := signal.NotifyContext(cliContext.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := dial(cliContext)
	var r *api.SnapshotReply
	if file == "" {
		r, err = c.Snapshot(ctx, t.name, api.SnapshotRequest{Name: fileName})
	} else {
		r, err = snapshotTo(ctx, c, t.name, file)
	}
	if err != nil {
		return t.explain(err)
	}
	if file != "" {
		r.Path = file
	}
	fmt.Fprintf(cliContext.App.Writer, "snapshot %s: %d events, %d lost, %s\n", r.Path, r.Events, r.Lost, units.FormatSize(uint64(r.Bytes)))
	return nil
}

// snapshotTo receives a snapshot into a temporary file beside file and
// renames it into place once the daemon's trailer says it is whole, so that
// file is never a partial snapshot. On any error the temporary file goes.
func snapshotTo(ctx context.Context, c *client.Client, session, file string) (*api.SnapshotReply, error) {
	if st, err := os.Stat(file); err == nil && st.IsDir() {
		return nil, fmt.Errorf("-o %s: a directory: give a file name", file)
	}
	var r *api.SnapshotReply
	err := atomicfile.Write(file, 0o640, func(tmp io.Writer) error {
		w := &countingWriter{w: tmp}
		got, err := c.SnapshotTo(ctx, session, w)
		if err != nil {
			return err
		}
		if w.n != got.Bytes {
			return fmt.Errorf("snapshot incomplete: received %d of the %d bytes the daemon sent", w.n, got.Bytes)
		}
		r = got
		return nil
	})
	return r, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

func dial(cliContext *cli.Context) *client.Client { return client.New(cliContext.String("socket")) }

// arguments returns the command's arguments, refusing a flag among them:
// flags after the first argument are not parsed, and would be taken for
// names.
func arguments(cliContext *cli.Context) ([]string, error) {
	args := cliContext.Args().Slice()
	for _, a := range args {
		if len(a) > 1 && a[0] == '-' {
			return nil, fmt.Errorf("%s: %q after the arguments: put flags before them", cliContext.Command.Name, a)
		}
	}
	return args, nil
}

// A target is the session a command is about, and the file it came from
// when it is the default rather than given.
type target struct {
	name string
	rc   string
}

var errNoSession = errors.New("no session given and no default session: rewind create NAME, or pass -s NAME")

// sessionOf is the session a command is about: -s NAME, or the one
// argument of the commands that take the session as NAME (args), or the
// default.
func sessionOf(cliContext *cli.Context, args []string) (target, error) {
	flag := cliContext.String("session")
	switch {
	case len(args) > 1:
		return target{}, fmt.Errorf("%s: want at most one session name, got %q", cliContext.Command.Name, args)
	case len(args) == 1 && flag != "":
		return target{}, fmt.Errorf("%s: give the session as NAME or as -s NAME, not both", cliContext.Command.Name)
	case len(args) == 1:
		return target{name: args[0]}, api.CheckName("session", args[0])
	case flag != "":
		return target{name: flag}, api.CheckName("-s", flag)
	}
	return defaultTarget()
}

func defaultTarget() (target, error) {
	name, err := readDefault()
	if err != nil {
		return target{}, err
	}
	if name == "" {
		return target{}, errNoSession
	}
	path, _ := rcPath()
	return target{name: name, rc: path}, nil
}

// explain adds, to the daemon's "no such session" about a default
// session, where that name came from.
func (t target) explain(err error) error {
	if t.rc != "" && isNotFound(err) {
		return fmt.Errorf("%w; %s names it as your default session (rewind create NAME, or pass -s NAME)", err, t.rc)
	}
	return err
}

func isNotFound(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Status == http.StatusNotFound
}

// The default session is the line "session=NAME" of ~/.rewindrc, as LTTng
// keeps it in ~/.lttngrc; other lines are kept as they are.
