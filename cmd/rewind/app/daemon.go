package app

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/daemon"
	"github.com/rewindtrace/rewind/internal/units"
	"github.com/rewindtrace/rewind/record/crash"
	"github.com/rewindtrace/rewind/snapshot"
)

func daemonCommand() *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "hold recording sessions that the session commands (create, enable-event, start, snapshot record, ...) drive over a unix socket; SIGUSR1 snapshots every session, SIGTERM stops them and exits",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "configuration `FILE` (default " + daemon.DefaultConfigFile + " when it exists; rewind daemon --print-config shows the keys)"},
			&cli.BoolFlag{Name: "check-config", Usage: "check the configuration, print what it sets, and exit"},
			&cli.BoolFlag{Name: "print-config", Usage: "print the built-in configuration, every key with its default, and exit"},
			&cli.StringFlag{Name: "socket", EnvVars: []string{"REWIND_SOCKET"}, Usage: "control socket (mode 0660, root and --group; config: socket)"},
			&cli.StringFlag{Name: "output-root", Usage: "directory holding each session's snapshot directory, unless create names one (config: output_root)"},
			&cli.StringFlag{Name: "sessions-dir", Usage: "saved sessions (rewind save), loaded at start and started if they were recording (config: sessions_dir)"},
			&cli.StringFlag{Name: "buffer-size", Usage: "a session's kernel ring per CPU unless create names one (config: buffer_size)"},
			&cli.StringFlag{Name: "group", Usage: "group allowed on the socket besides root, and owning the snapshots (config: group)"},
			&cli.StringFlag{Name: "listen", Usage: "HOST:PORT for the HTTP control API, which needs the token of token_file, or none (config: listen)"},
		},
		Action: runDaemon,
	}
}

// daemonConfig is the configuration file over the built-in defaults, with
// the flags given over both.
func daemonConfig(cliContext *cli.Context) (daemon.Config, error) {
	cfg, err := daemon.LoadConfig(cliContext.String("config"))
	if err != nil {
		return cfg, err
	}
	for flag, dst := range map[string]*string{"socket": &cfg.Socket, "output-root": &cfg.OutputRoot,
		"sessions-dir": &cfg.SessionsDir, "group": &cfg.Group, "listen": &cfg.Listen} {
		if cliContext.IsSet(flag) {
			*dst = cliContext.String(flag)
		}
	}
	if cliContext.IsSet("buffer-size") {
		if cfg.BufferSize, err = units.ParseSize(cliContext.String("buffer-size")); err != nil {
			return cfg, fmt.Errorf("--buffer-size: %w", err)
		}
	}
	cfg.Version = Version
	return cfg, nil
}

func runDaemon(cliContext *cli.Context) error {
	if cliContext.NArg() > 0 {
		return fmt.Errorf("daemon: unexpected arguments %v", cliContext.Args().Slice())
	}
	if cliContext.Bool("print-config") {
		fmt.Fprint(cliContext.App.Writer, daemon.DefaultConfigText)
		return nil
	}
	cfg, err := daemonConfig(cliContext)
	if err != nil {
		return err
	}
	if cliContext.Bool("check-config") {
		w := cliContext.App.Writer
		fmt.Fprintf(w, "socket = %s\ngroup = %s\noutput_root = %s\nsessions_dir = %s\nbuffer_size = %s\nlisten = %s\ntoken_file = %s\n",
			cfg.Socket, cfg.Group, cfg.OutputRoot, cfg.SessionsDir, units.FormatSize(cfg.BufferSize), cfg.Listen, cfg.TokenFile)
		cooldown := cmp.Or(cfg.AlertmanagerCooldown, daemon.DefaultAlertmanagerCooldown)
		if cooldown < 0 { // none
			cooldown = 0
		}
		fmt.Fprintf(w, "alertmanager_sessions = %s\nalertmanager_cooldown = %s\n", cmp.Or(cfg.AlertmanagerSessions, "all"), cooldown)
		fmt.Fprintf(w, "retention_max_files = %d\nretention_max_bytes = %s\nretention_max_age = %s\n",
			cfg.Retention.MaxFiles, units.FormatSize(cfg.Retention.MaxBytes), cfg.Retention.MaxAge)
		onOff := map[bool]string{true: "on", false: "off"}
		fmt.Fprintf(w, "crash_handler = %s\ncrash_dir = %s\ncrash_max_core = %s\ncrash_chain = %s\n", onOff[cfg.Crash.Install],
			cmp.Or(cfg.Crash.Dir, crash.DefaultDir), units.FormatSize(cmp.Or(cfg.Crash.MaxCore, crash.DefaultMaxCore)), onOff[cfg.Crash.Chain])
		return nil
	}
	// Signals first: a SIGTERM while the daemon starts still stops it
	// cleanly.
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(term)
	defer signal.Stop(usr1)
	d, err := daemon.New(cfg)
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
	fmt.Fprintf(os.Stderr, "rewind: daemon listening on %s (pid %d)\n", cfg.Socket, os.Getpid())
	if cfg.Listen != "" && cfg.Listen != "none" {
		fmt.Fprintf(os.Stderr, "rewind: daemon: HTTP control on %s (bearer token from %s)\n", cfg.Listen, cmp.Or(cfg.TokenFile, "nowhere: refused"))
	}
	return d.Serve(ctx)
}
