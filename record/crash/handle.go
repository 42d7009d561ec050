package crash

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/daemon/client"
	"github.com/rewindtrace/rewind/internal/sysx"
)

// Bound is how long the handler waits for the daemon's snapshots; with
// reading /proc and writing the record, everything but streaming the core
// takes at most about this long.
const Bound = 5 * time.Second

// Storm limits: at most StormCores cores are saved in any StormWindow;
// crashes past it get a record without a core, saying why.
const (
	StormCores  = 10
	StormWindow = time.Minute
)

// Record is a crash record's metadata (meta.json).
type Record struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"` // from the kernel (%t)
	PID    int       `json:"pid"`
	TID    int       `json:"tid"`
	Signal int       `json:"signal"`
	// SignalName is the signal's name (SIGSEGV).
	SignalName string `json:"signal_name"`
	UID        int    `json:"uid"`
	GID        int    `json:"gid"`
	// DumpMode is the kernel's %d (1: normal, 2: suid_dumpable).
	DumpMode int `json:"dump_mode"`
	// CoreLimit is the process's RLIMIT_CORE (%c): 0 disables its core.
	CoreLimit uint64   `json:"core_limit"`
	Exe       string   `json:"exe"`
	Comm      string   `json:"comm,omitempty"`
	Cmdline   []string `json:"cmdline,omitempty"`
	Cwd       string   `json:"cwd,omitempty"`
	// Proc lists the files of /proc/PID saved in the record's proc/.
	Proc []string `json:"proc,omitempty"`
	Core Core     `json:"core"`
	// Chain is what the previous handler got, when chained.
	Chain *Chain `json:"chain,omitempty"`
	// Snapshots are the sessions' snapshots in the record; Daemon says
	// why there are none (no daemon, no session recording).
	Snapshots []string `json:"snapshots,omitempty"`
	Daemon    string   `json:"daemon,omitempty"`
	// Errors are what failed while handling (the record holds the rest).
	Errors    []string `json:"errors,omitempty"`
	HandledNS int64    `json:"handled_ns"` // the handler's run, core included
}

// Core says what became of the core.
type Core struct {
	File string `json:"file,omitempty"` // core.zst, when saved
	// Bytes is the core's size as the kernel wrote it; Saved how much of
	// it the file holds (Truncated when less, at the record's max_core).
	Bytes     uint64 `json:"bytes"`
	Saved     uint64 `json:"saved"`
	Truncated bool   `json:"truncated,omitempty"`
	MaxCore   uint64 `json:"max_core"`
	// Dropped says why no core was saved.
	Dropped string `json:"dropped,omitempty"`
}

// Chain is the core passed on to the previous pattern.
type Chain struct {
	Target string `json:"target"`
	Bytes  uint64 `json:"bytes"`
	Error  string `json:"error,omitempty"`
}

// Args are the kernel's specifiers (Specifiers), parsed.
type Args struct {
	PID, TID, Signal, UID, GID, DumpMode int
	Time                                 time.Time
	CoreLimit                            uint64
	Exe                                  string
}

// ParseArgs reads the kernel's specifiers, in Specifiers' order.
func ParseArgs(args []string) (Args, error) {
	var a Args
	if len(args) != 9 {
		return a, fmt.Errorf("crash handle: %d arguments, want the kernel's %s", len(args), Specifiers)
	}
	ints := []*int{&a.PID, &a.TID, &a.Signal}
	for i, p := range ints {
		n, err := strconv.Atoi(args[i])
		if err != nil {
			return a, fmt.Errorf("crash handle: argument %d %q: %w", i+1, args[i], err)
		}
		*p = n
	}
	t, err := strconv.ParseInt(args[3], 10, 64)
	if err != nil {
		return a, fmt.Errorf("crash handle: time %q: %w", args[3], err)
	}
	a.Time = time.Unix(t, 0).UTC()
	for i, p := range []*int{&a.UID, &a.GID, &a.DumpMode} {
		n, err := strconv.Atoi(args[4+i])
		if err != nil {
			return a, fmt.Errorf("crash handle: argument %d %q: %w", 5+i, args[4+i], err)
		}
		*p = n
	}
	if a.CoreLimit, err = strconv.ParseUint(args[7], 10, 64); err != nil {
		return a, fmt.Errorf("crash handle: core limit %q: %w", args[7], err)
	}
	a.Exe = strings.ReplaceAll(args[8], "!", "/")
	return a, nil
}

// Handle is `rewind crash handle`: the kernel runs it as root with the
// core on core, and it writes a crash record under the state's directory.
// It never waits on anything but the core and the bounded steps; it
// returns the record's path.
func Handle(stateFile string, args []string, core io.Reader) (string, error) {
	start := time.Now()
	st, err := LoadState(stateFile)
	if err != nil {
		return "", err
	}
	a, err := ParseArgs(args)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(st.Dir, 0o750); err != nil {
		return "", err
	}
	rec := &Record{Time: a.Time, PID: a.PID, TID: a.TID, Signal: a.Signal, SignalName: sysx.SignalName(a.Signal), UID: a.UID, GID: a.GID,
		DumpMode: a.DumpMode, CoreLimit: a.CoreLimit, Exe: a.Exe}
	tmp, err := begin(st.Dir, rec)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // after the rename, nothing is there
	fail := func(err error) { rec.Errors = append(rec.Errors, err.Error()) }

	// /proc/PID first: it lasts only while the core is being read. The
	// snapshots too, while the process is still there to be named.
	readProc(a.PID, tmp, rec, fail)

	rec.Core.MaxCore = st.MaxCore
	why, reason := "", "saved"
	switch {
	case a.CoreLimit == 0:
		why, reason = "the process's core size limit (RLIMIT_CORE) is 0", "rlimit"
	default:
		if n, err := stormCount(st.Dir, time.Now()); err != nil {
			fail(fmt.Errorf("storm limit: %w", err))
		} else if n > StormCores {
			why, reason = fmt.Sprintf("crash storm: %d cores in the last %v, at most %d are saved", n, StormWindow, StormCores), "storm"
		}
	}
	if st.Socket != "" {
		askDaemon(st.Socket, a, tmp, reason, rec, fail)
	}
	var chain io.WriteCloser
	var chainDone func() error
	if st.Chain && st.Previous != "" {
		rec.Chain = &Chain{Target: st.Previous}
		chain, chainDone, err = startChain(st.Previous, a)
		if err != nil {
			rec.Chain.Error = err.Error()
		}
	}
	if why != "" && chain == nil {
		// Nothing wants the core: leave it unread, and the kernel stops
		// writing when the handler exits.
		rec.Core.Dropped = why
	} else {
		if why != "" {
			rec.Core.Dropped = why
		}
		if err := saveCore(tmp, core, why == "", st.MaxCore, chain, rec); err != nil {
			fail(err)
		}
		if chainDone != nil {
			if err := chainDone(); err != nil && rec.Chain.Error == "" {
				rec.Chain.Error = err.Error()
			}
		}
	}
	rec.HandledNS = int64(time.Since(start))
	return commit(st.Dir, tmp, rec)
}

// begin names a record and makes the temporary directory it is written
// in, under dir.
func begin(dir string, rec *Record) (string, error) {
	name := cmp.Or(rec.Comm, "unknown")
	if rec.Exe != "" {
		name = filepath.Base(rec.Exe)
	}
	rec.ID = fmt.Sprintf("%s-%d-%s", rec.Time.Format("20060102T150405Z"), rec.PID, sanitize(name))
	tmp, err := os.MkdirTemp(dir, "."+rec.ID+".")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o750); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return tmp, nil
}

// commit writes the record's metadata into tmp, gives it to the rewind
// group, and renames it into place: a record is whole or absent.
func commit(dir, tmp string, rec *Record) (string, error) {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeSynced(filepath.Join(tmp, "meta.json"), append(b, '\n')); err != nil {
		return "", err
	}
	final := filepath.Join(dir, rec.ID)
	if _, err := os.Stat(final); err == nil {
		final += fmt.Sprintf("-%d", rec.TID)
		rec.ID = filepath.Base(final)
	}
	// The rewind group may read crash records, as it does snapshots.
	if gid := sysx.GroupID("rewind"); gid >= 0 {
		filepath.WalkDir(tmp, func(path string, _ os.DirEntry, err error) error {
			if err == nil {
				os.Chown(path, 0, gid)
			}
			return nil
		})
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return final, nil
}

// Pending is a coreless crash record being made: for a crash the kernel
// ran no handler for (a process that is not dumpable, or core_pattern not
// rewind's), which the daemon's crash trigger action writes. Not safe for
// concurrent use.
type Pending struct {
	dir, tmp string
	rec      *Record
}

// Begin starts a coreless record at once, reading /proc/PID while the
// process may still be there;
// comm is the task's name as the kernel reported it, should /proc be
// gone already.
func Begin(dir string, pid, tid, signal int, comm string) (*Pending, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	rec := &Record{Time: time.Now().UTC(), PID: pid, TID: tid, Signal: signal, SignalName: sysx.SignalName(signal), Comm: comm}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		rec.Exe = exe
	}
	tmp, err := begin(dir, rec)
	if err != nil {
		return nil, err
	}
	readProc(pid, tmp, rec, func(err error) { rec.Errors = append(rec.Errors, err.Error()) })
	return &Pending{dir: dir, tmp: tmp, rec: rec}, nil
}

// Commit says why there is no core, lets snap write snapshots into the
// record (returning their file names), and puts the record in place.
func (p *Pending) Commit(why string, snap func(dir string) ([]string, error)) (string, error) {
	defer os.RemoveAll(p.tmp)
	p.rec.Core.Dropped = why
	if snap != nil {
		files, err := snap(p.tmp)
		if err != nil {
			p.rec.Errors = append(p.rec.Errors, err.Error())
		}
		p.rec.Snapshots = files
	}
	return commit(p.dir, p.tmp, p.rec)
}

// Discard drops the record: the kernel's handler made one.
func (p *Pending) Discard() error { return os.RemoveAll(p.tmp) }

// askDaemon has the daemon snapshot its recording sessions into the
// record, within Bound. No daemon is not an error: the record says so.
func askDaemon(socket string, a Args, dir, core string, rec *Record, fail func(error)) {
	if _, err := os.Stat(socket); err != nil {
		rec.Daemon = "no daemon: " + err.Error()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), Bound)
	defer cancel()
	rep, err := client.New(socket).Crash(ctx, api.CrashRequest{PID: a.PID, TID: a.TID, Signal: a.Signal, Exe: a.Exe, Comm: rec.Comm, Dir: dir, Core: core})
	if err != nil {
		fail(fmt.Errorf("daemon at %s: %w", socket, err))
		return
	}
	for _, s := range rep.Snapshots {
		if s.Error != "" {
			fail(fmt.Errorf("session %s's snapshot: %s", s.Session, s.Error))
			continue
		}
		rec.Snapshots = append(rec.Snapshots, filepath.Base(s.Path))
	}
	if len(rep.Snapshots) == 0 {
		rec.Daemon = "no session was recording"
	}
}

// readProc saves what /proc holds of the crashing process: its command
// line, status, maps, limits, cgroup, and the list of its open files
// (never the environment).
func readProc(pid int, dir string, rec *Record, fail func(error)) {
	base := fmt.Sprintf("/proc/%d", pid)
	if b, err := os.ReadFile(base + "/cmdline"); err == nil {
		rec.Cmdline = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	} else {
		fail(err)
	}
	if b, err := os.ReadFile(base + "/comm"); err == nil {
		rec.Comm = strings.TrimSpace(string(b))
	}
	if cwd, err := os.Readlink(base + "/cwd"); err == nil {
		rec.Cwd = cwd
	}
	if err := os.Mkdir(filepath.Join(dir, "proc"), 0o750); err != nil {
		fail(err)
		return
	}
	for _, name := range []string{"status", "maps", "limits", "cgroup"} {
		b, err := os.ReadFile(base + "/" + name)
		if err != nil {
			fail(err)
			continue
		}
		if err := writeSynced(filepath.Join(dir, "proc", name), b); err != nil {
			fail(err)
			continue
		}
		rec.Proc = append(rec.Proc, name)
	}
	fds, err := os.ReadDir(base + "/fd")
	if err != nil {
		fail(err)
		return
	}
	var list strings.Builder
	for _, fd := range fds {
		target, err := os.Readlink(base + "/fd/" + fd.Name())
		if err != nil {
			continue
		}
		fmt.Fprintf(&list, "%s %s\n", fd.Name(), target)
	}
	if err := writeSynced(filepath.Join(dir, "proc", "fd"), []byte(list.String())); err != nil {
		fail(err)
		return
	}
	rec.Proc = append(rec.Proc, "fd")
}

// saveCore reads the whole core, writing at most max bytes of it into
// core.zst when keep is set, and all of it to chain.
func saveCore(dir string, core io.Reader, keep bool, max uint64, chain io.Writer, rec *Record) error {
	var enc *zstd.Encoder
	var f *os.File
	if keep {
		var err error
		f, err = os.OpenFile(filepath.Join(dir, "core.zst"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			return err
		}
		defer f.Close()
		if enc, err = zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1)); err != nil {
			return err
		}
	}
	buf := make([]byte, 1<<20)
	var chainErr error
	for {
		n, err := core.Read(buf)
		if n > 0 {
			b := buf[:n]
			if chain != nil && chainErr == nil {
				if _, werr := chain.Write(b); werr != nil {
					chainErr = werr
				} else {
					rec.Chain.Bytes += uint64(n)
				}
			}
			if enc != nil && rec.Core.Saved < max {
				w := b[:min(uint64(len(b)), max-rec.Core.Saved)]
				if _, werr := enc.Write(w); werr != nil {
					return fmt.Errorf("write the core: %w", werr)
				}
				rec.Core.Saved += uint64(len(w))
			}
			rec.Core.Bytes += uint64(n)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read the core: %w", err)
		}
	}
	if chainErr != nil && rec.Chain != nil {
		rec.Chain.Error = chainErr.Error()
	}
	if enc == nil {
		return nil
	}
	rec.Core.Truncated = rec.Core.Saved < rec.Core.Bytes
	if err := enc.Close(); err != nil {
		return fmt.Errorf("compress the core: %w", err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	rec.Core.File = "core.zst"
	return nil
}

// startChain runs the previous pattern's pipe handler with its specifiers
// expanded, or opens the file a file pattern names; the returned writer
// takes the core, and done waits for the handler.
func startChain(previous string, a Args) (io.WriteCloser, func() error, error) {
	if cmdline, ok := strings.CutPrefix(previous, "|"); ok {
		f := strings.Fields(cmdline)
		if len(f) == 0 {
			return nil, nil, fmt.Errorf("the previous pattern %q runs nothing", previous)
		}
		for i := range f {
			f[i] = expand(f[i], a)
		}
		cmd := exec.Command(f[0], f[1:]...)
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, nil, fmt.Errorf("start the previous handler %s: %w", f[0], err)
		}
		return in, func() error {
			in.Close()
			return cmd.Wait()
		}, nil
	}
	path := expand(previous, a)
	if !filepath.IsAbs(path) {
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", a.PID))
		if err != nil {
			return nil, nil, fmt.Errorf("the previous pattern %q is relative to the process's directory: %w", previous, err)
		}
		path = filepath.Join(cwd, path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

// expand fills the core(5) specifiers of a pattern the handler chains to.
func expand(p string, a Args) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+1 == len(p) {
			b.WriteByte(p[i])
			continue
		}
		i++
		switch p[i] {
		case '%':
			b.WriteByte('%')
		case 'p', 'P':
			b.WriteString(strconv.Itoa(a.PID))
		case 'i', 'I':
			b.WriteString(strconv.Itoa(a.TID))
		case 'u':
			b.WriteString(strconv.Itoa(a.UID))
		case 'g':
			b.WriteString(strconv.Itoa(a.GID))
		case 's':
			b.WriteString(strconv.Itoa(a.Signal))
		case 't':
			b.WriteString(strconv.FormatInt(a.Time.Unix(), 10))
		case 'h':
			h, _ := os.Hostname()
			b.WriteString(h)
		case 'e':
			b.WriteString(filepath.Base(a.Exe))
		case 'E':
			b.WriteString(strings.ReplaceAll(a.Exe, "/", "!"))
		case 'c':
			b.WriteString(strconv.FormatUint(a.CoreLimit, 10))
		case 'd':
			b.WriteString(strconv.Itoa(a.DumpMode))
		}
	}
	return b.String()
}

// stormCount notes this crash in the directory's storm file and returns
// how many crashes it holds in the last StormWindow, this one included.
// Handlers of simultaneous crashes take turns on its lock.
func stormCount(dir string, now time.Time) (int, error) {
	path := filepath.Join(dir, ".storm")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return 0, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return 0, err
	}
	var keep []string
	for _, line := range strings.Fields(string(b)) {
		ns, err := strconv.ParseInt(line, 10, 64)
		if err == nil && now.Sub(time.Unix(0, ns)) < StormWindow {
			keep = append(keep, line)
		}
	}
	keep = append(keep, strconv.FormatInt(now.UnixNano(), 10))
	if err := f.Truncate(0); err != nil {
		return 0, err
	}
	if _, err := f.WriteAt([]byte(strings.Join(keep, "\n")+"\n"), 0); err != nil {
		return 0, err
	}
	return len(keep), nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sanitize keeps a name safe in a file name.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 || r == ' ' || r == '%' {
			return '_'
		}
		return r
	}, s)
}

// Log writes a line to the kernel's log, where an operator of a machine
// whose handler failed looks (the handler has no terminal).
func Log(format string, args ...any) {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "<3>rewind-crash[%d]: %s\n", os.Getpid(), fmt.Sprintf(format, args...))
}
