package app

// rewind crash: capture crashes through the kernel's core_pattern
// (record/crash).

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/internal/units"
	"github.com/rewindtrace/rewind/record/crash"
)

var crashStateFlag = &cli.StringFlag{Name: "state", Value: crash.DefaultState, Usage: "the handler's state `FILE`, where install remembers the previous pattern"}

func crashCommand() *cli.Command {
	return &cli.Command{
		Name:  "crash",
		Usage: "capture crashes: the core, the process's state and the seconds before (core_pattern)",
		Subcommands: []*cli.Command{
			{
				Name:  "install",
				Usage: "point the kernel's core_pattern at rewind's handler, remembering the previous pattern",
				Flags: []cli.Flag{
					crashStateFlag,
					&cli.StringFlag{Name: "dir", Value: crash.DefaultDir, Usage: "crash records go to `DIR`"},
					&cli.StringFlag{Name: "max-core", Value: "4GiB", Usage: "save at most `SIZE` of a core (before compression); a larger one is cut, and its record says so"},
					&cli.BoolFlag{Name: "chain", Usage: "pass each core on to the previous pattern too (a pipe handler such as systemd-coredump or apport, or the file it named)"},
					&cli.StringFlag{Name: "socket", Value: api.DefaultSocket, Usage: "ask the daemon at `PATH` for its recording sessions' snapshots into each record (\"\": none)"},
				},
				Action: runCrashInstall,
			},
			{
				Name:   "uninstall",
				Usage:  "put back the pattern install replaced, byte for byte",
				Flags:  []cli.Flag{crashStateFlag, &cli.BoolFlag{Name: "force", Usage: "put it back even when someone changed the pattern since install"}},
				Action: runCrashUninstall,
			},
			{
				Name:   "status",
				Usage:  "what core_pattern holds, and what install remembered",
				Flags:  []cli.Flag{crashStateFlag},
				Action: runCrashStatus,
			},
			{
				Name:      "handle",
				Usage:     "the handler the kernel runs, the core on standard input (not for use by hand)",
				ArgsUsage: crash.Specifiers,
				Flags:     []cli.Flag{crashStateFlag},
				Hidden:    true,
				Action: func(cliContext *cli.Context) error {
					path, err := crash.Handle(cliContext.String("state"), cliContext.Args().Slice(), os.Stdin)
					if err != nil {
						// No terminal here: the kernel's log is where an
						// operator looks.
						crash.Log("%v", err)
						return err
					}
					crash.Log("crash record %s", path)
					return nil
				},
			},
			{
				Name:      "show",
				Usage:     "what a crash record holds: the process, the signal, the fault address, the crashing function, and how to open the core",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{crashStateFlag, &cli.StringFlag{Name: "dir", Usage: "the records' `DIR` (default: the installed handler's, else " + crash.DefaultDir + ")"}},
				Action:    runCrashShow,
			},
			{
				Name:   "list",
				Usage:  "the crash records, oldest first",
				Flags:  []cli.Flag{crashStateFlag, &cli.StringFlag{Name: "dir", Usage: "the records' `DIR` (default: the installed handler's, else " + crash.DefaultDir + ")"}, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: runCrashList,
			},
		},
	}
}

func runCrashInstall(cliContext *cli.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return err
	}
	max, err := units.ParseSize(cliContext.String("max-core"))
	if err != nil {
		return fmt.Errorf("--max-core: %w", err)
	}
	dir, err := filepath.Abs(cliContext.String("dir"))
	if err != nil {
		return err
	}
	st, err := crash.Install(crash.Options{Rewind: self, State: cliContext.String("state"), Dir: dir, MaxCore: max, Chain: cliContext.Bool("chain"),
		Socket: cliContext.String("socket")})
	if err != nil {
		return err
	}
	fmt.Fprintf(cliContext.App.Writer, "core_pattern: %s\nwas:          %s\nrecords go to %s (cores up to %s)\n", st.Pattern, st.Previous, st.Dir, units.FormatSize(st.MaxCore))
	return nil
}

func runCrashUninstall(cliContext *cli.Context) error {
	st, err := crash.Uninstall(cliContext.String("state"), "", cliContext.Bool("force"))
	if err != nil {
		return err
	}
	fmt.Fprintf(cliContext.App.Writer, "core_pattern: %s (as before install)\n", st.Previous)
	return nil
}

func runCrashStatus(cliContext *cli.Context) error {
	w := cliContext.App.Writer
	cur, err := crash.ReadPattern(crash.PatternFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "core_pattern: %s\n", cur)
	st, err := crash.LoadState(cliContext.String("state"))
	if err != nil {
		fmt.Fprintf(w, "rewind's handler: not installed\n")
		return nil
	}
	installed := "installed"
	if cur != st.Pattern {
		installed = "installed, but core_pattern was changed since: crashes do not reach it"
	}
	fmt.Fprintf(w, "rewind's handler: %s %s\nprevious:     %s\nrecords:      %s (cores up to %s)\n", installed, st.Installed.Format("2006-01-02 15:04:05"),
		st.Previous, st.Dir, units.FormatSize(st.MaxCore))
	if st.Chain {
		fmt.Fprintf(w, "chained to:   %s\n", st.Previous)
	}
	return nil
}

// crashDir is --dir, else the installed handler's directory, else the
// default.
func crashDir(cliContext *cli.Context) string {
	if dir := cliContext.String("dir"); dir != "" {
		return dir
	}
	if st, err := crash.LoadState(cliContext.String("state")); err == nil {
		return st.Dir
	}
	return crash.DefaultDir
}

func runCrashShow(cliContext *cli.Context) error {
	if cliContext.NArg() != 1 {
		return fmt.Errorf("crash show: want one record ID (rewind crash list), got %d arguments", cliContext.NArg())
	}
	dir := crashDir(cliContext)
	r, err := crash.Load(dir, cliContext.Args().First())
	if err != nil {
		return err
	}
	return crash.Show(cliContext.App.Writer, dir, r)
}

func runCrashList(cliContext *cli.Context) error {
	dir := crashDir(cliContext)
	recs, err := crash.List(dir)
	if cliContext.Bool("json") {
		if recs == nil {
			recs = []*crash.Record{}
		}
		if werr := writeJSON(cliContext.App.Writer, recs); werr != nil {
			return werr
		}
		return err
	}
	if len(recs) == 0 && err == nil {
		fmt.Fprintf(cliContext.App.Writer, "no crash records in %s\n", dir)
		return nil
	}
	writeCrashList(cliContext.App.Writer, recs)
	return err
}

func writeCrashList(w io.Writer, recs []*crash.Record) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tPID\tSIGNAL\tEXE\tCORE")
	for _, r := range recs {
		core := units.FormatSize(r.Core.Saved)
		switch {
		case r.Core.File == "":
			core = "none: " + r.Core.Dropped
		case r.Core.Truncated:
			core += " of " + units.FormatSize(r.Core.Bytes) + " (cut)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.Time.Format("2006-01-02 15:04:05"), r.PID, r.SignalName, r.Exe, core)
	}
	tw.Flush()
}
