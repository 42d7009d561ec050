package app

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/daemon"
	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/internal/units"
	"github.com/rewindtrace/rewind/record"
	"github.com/rewindtrace/rewind/snapshot"
)

func daemonCommand() *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "hold recording sessions that the session commands (create, enable-event, start, snapshot record, ...) drive over a unix socket; SIGUSR1 snapshots every session, SIGTERM stops them and exits",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Value: api.DefaultSocket, EnvVars: []string{"REWIND_SOCKET"}, Usage: "control socket (mode 0660, root and --group)"},
			&cli.StringFlag{Name: "output-root", Value: daemon.DefaultOutputRoot, Usage: "directory holding each session's snapshot directory, unless create names one"},
			&cli.StringFlag{Name: "buffer-size", Value: units.FormatSize(record.DefaultBufferSize), Usage: "a session's kernel ring per CPU unless create names one"},
			&cli.StringFlag{Name: "group", Value: daemon.DefaultGroup, Usage: "group allowed on the socket besides root, and owning the snapshots"},
			&cli.StringFlag{Name: "sessions-dir", Value: daemon.DefaultSessionsDir, Usage: "saved sessions (rewind save), loaded at start and started if they were recording; \"\" for none"},
		},
		Action: runDaemon,
	}
}

func runDaemon(cliContext *cli.Context) error {
	if cliContext.NArg() > 0 {
		return fmt.Errorf("daemon: unexpected arguments %v", cliContext.Args().Slice())
	}
	size, err := units.ParseSize(cliContext.String("buffer-size"))
	if err != nil {
		return fmt.Errorf("--buffer-size: %w", err)
	}
	// Signals first: a SIGTERM while the daemon starts still stops it
	// cleanly.
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(term)
	defer signal.Stop(usr1)
	d, err := daemon.New(daemon.Config{Socket: cliContext.String("socket"), OutputRoot: cliContext.String("output-root"),
		BufferSize: size, Group: cliContext.String("group"), SessionsDir: cliContext.String("sessions-dir"), Version: Version})
	if err != nil {
		return err
	}
	loaded, err := d.LoadSaved()
	if len(loaded) > 0 {
		fmt.Fprintf(os.Stderr, "rewind: daemon: loaded saved sessions %s\n", strings.Join(loaded, ", "))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rewind: daemon: warning: %v\n", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-term:
				fmt.Fprintf(os.Stderr, "rewind: daemon: %v: stopping every session\n", sig)
				cancel()
			case <-usr1:
				reps, err := d.SnapshotAll(ctx, snapshot.Trigger{Kind: snapshot.TriggerSignal, Signal: "SIGUSR1"})
				for _, r := range reps {
					fmt.Fprintf(os.Stderr, "rewind: daemon: session %s: snapshot %s: %d events, %d lost, %s\n", r.Session, r.Path, r.Events, r.Lost, units.FormatSize(uint64(r.Bytes)))
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, "rewind: daemon: SIGUSR1: %v\n", err)
				}
			}
		}
	}()
	fmt.Fprintf(os.Stderr, "rewind: daemon listening on %s (pid %d)\n", cliContext.String("socket"), os.Getpid())
	return d.Serve(ctx)
}
