// Package daemon is `rewind daemon`: one process per machine holding
// sessions (each a record.Recorder with its own rings, events, filters and
// counters) that the session commands create and drive over a unix socket
// (package daemon/api, docs/CONTROL.md).
package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/internal/retention"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/record"
	"github.com/rewindtrace/rewind/record/crash"
	"github.com/rewindtrace/rewind/snapshot"
)

// Config is how the daemon runs. Zero fields take the defaults.
type Config struct {
	// Socket is the control socket (api.DefaultSocket).
	Socket string
	// OutputRoot holds each session's snapshot directory unless its
	// create request names one (DefaultOutputRoot).
	OutputRoot string
	// BufferSize is a session's ring per CPU unless it names one.
	BufferSize uint64
	// Group may use the socket besides root, and owns the socket and the
	// snapshots (DefaultGroup; when no such group exists, only root).
	Group string
	// Listen is the TCP address of the HTTP listener ("none" or empty:
	// off); TokenFile holds the bearer token its control API requires.
	Listen    string
	TokenFile string
	// SessionsDir holds saved sessions (rewind save), loaded when the
	// daemon starts; empty: none are kept.
	SessionsDir string
	// AlertmanagerSessions are the sessions a firing alert without a
	// rewind_session label snapshots: names, comma-separated, or "all"
	// (empty: all). AlertmanagerCooldown is how long a repeat of the same
	// alert takes nothing (zero: DefaultAlertmanagerCooldown; negative:
	// no cooldown).
	AlertmanagerSessions string
	AlertmanagerCooldown time.Duration
	// Retention caps each session's snapshot directory unless its create
	// request sets caps of its own.
	Retention retention.Policy
	// Crash, when its Install is set, installs the crash handler when the
	// daemon starts and puts the previous core_pattern back when it stops
	// (unless the handler was installed already, by rewind crash install:
	// then it stays). Its Socket is the daemon's.
	Crash CrashConfig
	// Version names the recorder in snapshots.
	Version string
}

// CrashConfig is the crash handler the daemon installs (record/crash).
type CrashConfig struct {
	Install bool
	Dir     string // crash.DefaultDir when empty
	MaxCore uint64 // crash.DefaultMaxCore when 0
	Chain   bool
	// State and Rewind are the handler's state file and binary; empty:
	// crash.DefaultState and this executable.
	State, Rewind string
}

// Defaults.
const (
	DefaultOutputRoot  = "/var/lib/rewind"
	DefaultSessionsDir = "/var/lib/rewind/sessions"
	DefaultGroup       = "rewind"
)

// Daemon serves the control socket. Its methods are safe for concurrent
// use.
type Daemon struct {
	cfg     Config
	started time.Time
	m       *manager
	lock    *os.File
	ln      net.Listener
	srv     *http.Server
	gid     int // Group's id, -1 when it does not exist
	// The TCP listener (Config.Listen) and the token it wants.
	tcpLn  net.Listener
	tcpSrv *http.Server
	token  string
	met    *metrics
	am     *alertmanager
	// crashState is the state file of the crash handler the daemon
	// installed, to uninstall at Close; empty when it installed none.
	crashState string

	closeOnce sync.Once
	closeErr  error
}

// New takes the daemon's lock (a second daemon is refused), and listens
// on the socket: mode 0660, owned by root and Group.
func New(cfg Config) (_ *Daemon, err error) {
	if cfg.Socket == "" {
		cfg.Socket = api.DefaultSocket
	}
	if cfg.OutputRoot == "" {
		cfg.OutputRoot = DefaultOutputRoot
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = record.DefaultBufferSize
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	d := &Daemon{cfg: cfg, started: time.Now(), m: newManager(cfg), gid: sysx.GroupID(cfg.Group)}
	d.met = newMetrics(d)
	d.m.observe = d.met.observe
	d.am = newAlertmanager(d)
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	dir := filepath.Dir(cfg.Socket)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	// The group must reach the socket; /run/rewind is the daemon's own
	// (systemd's RuntimeDirectory makes it root's), another directory its
	// owner's.
	if cfg.Socket == api.DefaultSocket {
		if err := ownDir(dir, d.gid); err != nil {
			return nil, err
		}
	}
	if cfg.OutputRoot == DefaultOutputRoot {
		if err := os.MkdirAll(cfg.OutputRoot, 0o750); err != nil {
			return nil, fmt.Errorf("output directory: %w", err)
		}
		if err := ownDir(cfg.OutputRoot, d.gid); err != nil {
			return nil, err
		}
	}
	if err := d.takeLock(cfg.Socket + ".lock"); err != nil {
		return nil, err
	}
	// Holding the lock, a socket left by a daemon that died is stale.
	if err := os.Remove(cfg.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	old := unix.Umask(0o117)
	d.ln, err = net.Listen("unix", cfg.Socket)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Socket, err)
	}
	d.ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(cfg.Socket, 0o660); err != nil {
		return nil, err
	}
	if d.gid >= 0 {
		if err := os.Chown(cfg.Socket, 0, d.gid); err != nil {
			return nil, fmt.Errorf("give the socket to group %s: %w", cfg.Group, err)
		}
	}
	d.srv = &http.Server{Handler: d.routes(), ConnContext: withPeer, ReadHeaderTimeout: 10 * time.Second}
	if cfg.Listen != "" && cfg.Listen != "none" {
		if cfg.TokenFile != "" {
			if d.token, err = readToken(cfg.TokenFile); err != nil {
				return nil, err
			}
		}
		if d.tcpLn, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
		d.tcpSrv = &http.Server{Handler: d.routes(), ConnContext: withTCP, ReadHeaderTimeout: 10 * time.Second}
	}
	if cfg.Crash.Install {
		if err := d.installCrash(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// installCrash installs the crash handler, unless it is installed already.
func (d *Daemon) installCrash() error {
	c := d.cfg.Crash
	cur, err := crash.ReadPattern(crash.PatternFile)
	if err != nil {
		return err
	}
	if crash.IsOurs(cur) {
		logf("crash handler installed already (%s): left as it is", cur)
		return nil
	}
	if c.Rewind == "" {
		if c.Rewind, err = os.Executable(); err != nil {
			return err
		}
	}
	st, err := crash.Install(crash.Options{Rewind: c.Rewind, State: c.State, Dir: c.Dir, MaxCore: c.MaxCore, Chain: c.Chain, Socket: d.cfg.Socket})
	if err != nil {
		return err
	}
	d.crashState = cmp.Or(c.State, crash.DefaultState)
	logf("crash handler installed: core_pattern %s (was %s)", st.Pattern, st.Previous)
	return nil
}

// takeLock holds an exclusive lock on path for the daemon's life.
func (d *Daemon) takeLock(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("daemon lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("another rewind daemon is running (pid %s, lock %s); stop it first", string(b), path)
		}
		return fmt.Errorf("daemon lock %s: %w", path, err)
	}
	f.Truncate(0)
	f.WriteString(strconv.Itoa(os.Getpid()))
	d.lock = f
	return nil
}

// HTTPAddr is the address the HTTP listener listens on, "" without one.
func (d *Daemon) HTTPAddr() string {
	if d.tcpLn == nil {
		return ""
	}
	return d.tcpLn.Addr().String()
}

// LoadSaved loads the saved sessions (Config.SessionsDir), starting those
// that were recording; it returns the ones loaded, and what failed.
func (d *Daemon) LoadSaved() ([]string, error) { return d.m.loadSaved() }

// Serve answers requests until ctx ends, then closes the daemon: every
// session stopped and closed, the socket removed.
func (d *Daemon) Serve(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- d.srv.Serve(d.ln) }()
	if d.tcpSrv != nil {
		go func() { errc <- d.tcpSrv.Serve(d.tcpLn) }()
	}
	ageCtx, stopAge := context.WithCancel(ctx)
	defer stopAge()
	go d.m.retainByAge(ageCtx)
	select {
	case <-ctx.Done():
		return d.Close()
	case err := <-errc:
		return errors.Join(err, d.Close())
	}
}

// SnapshotAll snapshots every session that has recorded into its output
// directory (SIGUSR1).
func (d *Daemon) SnapshotAll(ctx context.Context, trig snapshot.Trigger) ([]*api.SnapshotReply, error) {
	var out []*api.SnapshotReply
	var errs []error
	for _, s := range d.m.list() {
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if !started {
			continue
		}
		r, err := s.snapshot(ctx, api.SnapshotRequest{}, trig, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("session %s: %w", s.name, err))
			continue
		}
		if err := d.private(r.Path); err != nil {
			errs = append(errs, err)
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// Close stops serving, closes every session and removes the socket and the
// lock. It is safe to call more than once.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		var errs []error
		for _, s := range []struct {
			srv *http.Server
			ln  net.Listener
		}{{d.srv, d.ln}, {d.tcpSrv, d.tcpLn}} {
			if s.srv != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				errs = append(errs, ignoreClosed(s.srv.Shutdown(ctx)))
				cancel()
			} else if s.ln != nil {
				errs = append(errs, ignoreClosed(s.ln.Close()))
			}
		}
		errs = append(errs, d.m.closeAll())
		if d.crashState != "" {
			if st, err := crash.Uninstall(d.crashState, "", false); err != nil {
				errs = append(errs, err)
			} else {
				logf("crash handler removed: core_pattern %s again", st.Previous)
			}
		}
		if d.lock != nil {
			errs = append(errs, os.Remove(d.lock.Name()), d.lock.Close())
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// private makes a snapshot file readable by root and the group only.
func (d *Daemon) private(path string) error {
	if path == "" {
		return nil
	}
	if err := os.Chmod(path, 0o640); err != nil {
		return err
	}
	if d.gid >= 0 {
		return os.Chown(path, 0, d.gid)
	}
	return nil
}

// outputDir makes a session's snapshot directory: created readable by
// root and group only (mode 0750), whatever the umask. A directory that
// exists is used as it is: its mode and owner are its owner's business.
func outputDir(dir, group string) error {
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return ownDir(dir, sysx.GroupID(group))
}

// ownDir gives a directory of the daemon's to root and the group (when it
// exists), mode 0750: the socket's directory and the output root, which a
// service manager may have made root's alone.
func ownDir(dir string, gid int) error {
	if err := os.Chmod(dir, 0o750); err != nil {
		return err
	}
	if gid >= 0 {
		if err := os.Chown(dir, 0, gid); err != nil {
			return fmt.Errorf("give %s to the group: %w", dir, err)
		}
	}
	return nil
}
