package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/daemon/client"
	"github.com/rewindtrace/rewind/internal/testchild"
	"github.com/rewindtrace/rewind/internal/testkernel"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/snaptest"
)

// The test binary doubles as the workload (REWIND_TEST_CHILD=step: a line
// "N" makes N getppid calls, numbered from 0 by their first argument, then
// prints the count so far) and as a client run as another user
// (REWIND_TEST_CHILD=client: asks the daemon on REWIND_TEST_SOCKET for its
// status and prints the error or "ok").
func TestMain(m *testing.M) {
	switch os.Getenv("REWIND_TEST_CHILD") {
	case "":
		os.Exit(m.Run())
	case "step":
		if err := testchild.Pin(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		sc := bufio.NewScanner(os.Stdin)
		n := 0
		for sc.Scan() {
			k, _ := strconv.Atoi(sc.Text())
			for i := 0; i < k; i++ {
				syscall.RawSyscall(syscall.SYS_GETPPID, uintptr(n), 0, 0)
				n++
			}
			fmt.Println(n)
		}
		os.Exit(0)
	case "sleep":
		sleeper()
	case "hog":
		// Spin for REWIND_TEST_SPIN on a pinned thread of its own (not
		// the main one: a filter on its id then matches it alone), and
		// print its thread id.
		runtime.LockOSThread()
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := testchild.Pin(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			d, _ := time.ParseDuration(os.Getenv("REWIND_TEST_SPIN"))
			fmt.Println(syscall.Gettid())
			for start := time.Now(); time.Since(start) < d; {
			}
		}()
		<-done
		os.Exit(0)
	case "client":
		c := client.New(os.Getenv("REWIND_TEST_SOCKET"))
		var err error
		if os.Getenv("REWIND_TEST_OUTPUT") != "" {
			_, err = c.Create(context.Background(), api.CreateRequest{Name: "theirs", Output: os.Getenv("REWIND_TEST_OUTPUT")})
		} else {
			_, err = c.Status(context.Background())
		}
		if err != nil {
			fmt.Println(err)
		} else {
			fmt.Println("ok")
		}
		os.Exit(0)
	}
}

// stepper drives a "step" child.
type stepper struct {
	*testchild.Child
	next int
}

func startStepper(t *testing.T) *stepper {
	return &stepper{Child: testchild.Start(t, "step", nil)}
}

// step makes the child call getppid n times and waits until it has.
func (s *stepper) step(t *testing.T, n int) (from, to int) {
	t.Helper()
	if _, err := fmt.Fprintln(s.Stdin, n); err != nil {
		t.Fatal(err)
	}
	if got := int(s.Int(t)); got != s.next+n {
		t.Fatalf("child made %d calls, want %d", got, s.next+n)
	}
	from, to = s.next, s.next+n
	s.next = to
	return from, to
}

// startDaemon runs a daemon on a socket in a temporary directory, with
// snapshots under another; it is closed when the test ends.
func startDaemon(t *testing.T, cfg Config) (*Daemon, *client.Client) {
	t.Helper()
	testkernel.Require(t)
	dir := t.TempDir()
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(dir, "run", "rewind.sock")
	}
	if cfg.OutputRoot == "" {
		cfg.OutputRoot = filepath.Join(dir, "out")
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = 4 << 20
	}
	cfg.Version = "test"
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
		if _, err := os.Stat(cfg.Socket); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket %s left behind (%v)", cfg.Socket, err)
		}
	})
	return d, client.New(cfg.Socket)
}

// must ends the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func create(t *testing.T, c *client.Client, req api.CreateRequest) *api.Session {
	t.Helper()
	s, err := c.Create(context.Background(), req)
	must(t, err)
	return s
}

func act(t *testing.T, c *client.Client, name, action string, body any) *api.Session {
	t.Helper()
	s, err := c.Action(context.Background(), name, action, body)
	must(t, err)
	return s
}

func snap(t *testing.T, c *client.Client, name string, req api.SnapshotRequest) *api.SnapshotReply {
	t.Helper()
	r, err := c.Snapshot(context.Background(), name, req)
	must(t, err)
	return r
}

func getSession(t *testing.T, c *client.Client, name string) *api.Session {
	t.Helper()
	s, err := c.Session(context.Background(), name)
	must(t, err)
	return s
}

// getppids returns, for pid, the numbers (first argument) of the getppid
// calls whose entry the snapshot holds, how many exits it holds, and every
// event type in it.
func getppids(t *testing.T, path string, pid int) (calls map[uint64]int, exits int, types map[string]int) {
	t.Helper()
	r := snaptest.Open(t, path)
	s := r.Schema()
	enter, exit := s.ByName("sys_enter"), s.ByName("sys_exit")
	calls, types = map[uint64]int{}, map[string]int{}
	var c snapshot.Chunk
	for _, sec := range r.Chunks() {
		if err := r.ReadChunk(sec, &c); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < c.Len(); i++ {
			types[s.ByID(c.Type[i]).Name]++
			if c.PID[i] != uint32(pid) {
				continue
			}
			row := int(c.Row[i])
			switch {
			case enter != nil && c.Type[i] == enter.ID && c.Column(enter.ID, enter.Field("id")).Int(row) == syscall.SYS_GETPPID:
				calls[c.Column(enter.ID, enter.Field("args")).UintAt(row, 0)]++
			case exit != nil && c.Type[i] == exit.ID && c.Column(exit.ID, exit.Field("id")).Int(row) == syscall.SYS_GETPPID:
				exits++
			}
		}
	}
	return calls, exits, types
}

// checkCalls wants exactly the calls numbered [from, to), once each.
func checkCalls(t *testing.T, path string, pid, from, to int) {
	t.Helper()
	calls, exits, _ := getppids(t, path, pid)
	for n := from; n < to; n++ {
		if calls[uint64(n)] != 1 {
			t.Fatalf("%s: getppid call %d of child %d recorded %d times, want once (calls %d to %d)", path, n, pid, calls[uint64(n)], from, to-1)
		}
	}
	if len(calls) != to-from || exits != to-from {
		t.Fatalf("%s: %d getppid entries and %d exits of child %d, want %d each", path, len(calls), exits, pid, to-from)
	}
}

// TestSessionCycle runs the LTTng cycle: create, enable-event, track,
// start, snapshot, stop, start again, snapshot, destroy. Each snapshot
// holds the child's calls made while the session recorded, and only them.
func TestSessionCycle(t *testing.T) {
	_, c := startDaemon(t, Config{})
	ctx := context.Background()
	child := startStepper(t)
	s := create(t, c, api.CreateRequest{Name: "cycle"})
	if s.State != "created" || len(s.Events) != 0 {
		t.Fatalf("new session: state %s, events %v; want created with none", s.State, s.Events)
	}
	if _, err := c.Action(ctx, "cycle", "start", nil); err == nil || !strings.Contains(err.Error(), "no events enabled") {
		t.Fatalf("start with no events: %v, want a refusal naming enable-event", err)
	}
	act(t, c, "cycle", "enable-event", api.EventsRequest{Events: []string{"syscalls"}})
	act(t, c, "cycle", "track", api.TrackRequest{PIDs: []uint32{uint32(child.Pid())}})
	if _, err := c.Snapshot(ctx, "cycle", api.SnapshotRequest{}); err == nil {
		t.Fatal("a session never started took a snapshot")
	}
	child.step(t, 100) // before start: not recorded
	s = act(t, c, "cycle", "start", nil)
	if s.State != "recording" {
		t.Fatalf("after start: %s", s.State)
	}
	from, to := child.step(t, 1000)
	first := snap(t, c, "cycle", api.SnapshotRequest{Name: "first.rwd"})
	checkCalls(t, first.Path, child.Pid(), from, to)
	act(t, c, "cycle", "stop", nil)
	child.step(t, 100) // stopped: not recorded
	act(t, c, "cycle", "start", nil)
	_, to2 := child.step(t, 500)
	second := snap(t, c, "cycle", api.SnapshotRequest{})
	// The rings keep what they held across stop and start.
	calls, _, _ := getppids(t, second.Path, child.Pid())
	for n := from; n < to; n++ {
		if calls[uint64(n)] != 1 {
			t.Fatalf("second snapshot: call %d of the first run recorded %d times", n, calls[uint64(n)])
		}
	}
	for n := to2 - 500; n < to2; n++ {
		if calls[uint64(n)] != 1 {
			t.Fatalf("second snapshot: call %d of the second run recorded %d times", n, calls[uint64(n)])
		}
	}
	if len(calls) != 1500 {
		t.Fatalf("second snapshot: %d calls, want the 1500 made while recording", len(calls))
	}
	for _, p := range []string{first.Path, second.Path} {
		st, err := os.Stat(p)
		must(t, err)
		if st.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v, want 0640", p, st.Mode().Perm())
		}
	}
	if st, err := os.Stat(filepath.Dir(first.Path)); err != nil || st.Mode().Perm() != 0o750 {
		t.Errorf("%s: mode %v, want 0750", filepath.Dir(first.Path), st.Mode().Perm())
	}
	// A streamed snapshot holds the same calls.
	f, err := os.Create(filepath.Join(t.TempDir(), "streamed.rwd"))
	must(t, err)
	rep, err := c.SnapshotTo(ctx, "cycle", f)
	must(t, err)
	f.Close()
	if rep.Events == 0 {
		t.Fatalf("streamed snapshot: %+v", rep)
	}
	calls, _, _ = getppids(t, f.Name(), child.Pid())
	if len(calls) != 1500 {
		t.Fatalf("streamed snapshot: %d calls, want 1500", len(calls))
	}
	must(t, c.Destroy(ctx, "cycle"))
	if _, err := c.Session(ctx, "cycle"); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("destroyed session: %v, want 404", err)
	}
	if _, err := os.Stat(first.Path); err != nil {
		t.Fatalf("destroy removed a snapshot: %v", err)
	}
}

func isStatus(err error, status int) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Status == status
}

// TestTwoSessions records two sessions at once with different events and
// filters: each snapshot holds only its own session's events.
func TestTwoSessions(t *testing.T) {
	_, c := startDaemon(t, Config{})
	ctx := context.Background()
	a, b := startStepper(t), startStepper(t)
	create(t, c, api.CreateRequest{Name: "a"})
	create(t, c, api.CreateRequest{Name: "b", BufferSize: 2 << 20})
	act(t, c, "a", "enable-event", api.EventsRequest{Events: []string{"sys_enter", "sys_exit"}})
	act(t, c, "a", "track", api.TrackRequest{PIDs: []uint32{uint32(a.Pid())}})
	act(t, c, "b", "enable-event", api.EventsRequest{Events: []string{"sys_enter", "sys_exit", "sched_process_exit"}})
	act(t, c, "b", "track", api.TrackRequest{PIDs: []uint32{uint32(b.Pid())}})
	act(t, c, "a", "start", nil)
	act(t, c, "b", "start", nil)
	fromA, toA := a.step(t, 700)
	fromB, toB := b.step(t, 300)
	snapA := snap(t, c, "a", api.SnapshotRequest{})
	snapB := snap(t, c, "b", api.SnapshotRequest{})
	checkCalls(t, snapA.Path, a.Pid(), fromA, toA)
	checkCalls(t, snapB.Path, b.Pid(), fromB, toB)
	if calls, _, _ := getppids(t, snapA.Path, b.Pid()); len(calls) != 0 {
		t.Errorf("session a holds %d calls of b's child", len(calls))
	}
	if calls, _, _ := getppids(t, snapB.Path, a.Pid()); len(calls) != 0 {
		t.Errorf("session b holds %d calls of a's child", len(calls))
	}
	sa := getSession(t, c, "a")
	sb := getSession(t, c, "b")
	if sa.BufferSize != 4<<20 || sb.BufferSize != 2<<20 {
		t.Errorf("buffer sizes %d and %d, want 4 MiB and 2 MiB", sa.BufferSize, sb.BufferSize)
	}
	list, err := c.Sessions(ctx)
	must(t, err)
	if len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" {
		t.Errorf("sessions: %+v", list)
	}
}

// TestRequestsRefused sends what a confused or hostile client might: each
// gets a 4xx naming the problem, and the daemon goes on serving.
func TestRequestsRefused(t *testing.T) {
	d, c := startDaemon(t, Config{})
	ctx := context.Background()
	create(t, c, api.CreateRequest{Name: "s"})
	raw := rawClient(d.cfg.Socket)
	for _, tc := range []struct {
		method, path, body string
		status             int
		says               string
	}{
		{"POST", "/v1/sessions", `{"name": "s"}`, 409, "exists already"},
		{"POST", "/v1/sessions", `{"name": "../etc"}`, 400, "session name"},
		{"POST", "/v1/sessions", `{"name": "x", "buffer_size": "big"}`, 400, "buffer_size"},
		{"POST", "/v1/sessions", `{"name": "x", "output": "relative/dir"}`, 400, "absolute"},
		{"POST", "/v1/sessions", `{"name": "x", "nme": "y"}`, 400, "unknown field"},
		{"POST", "/v1/sessions", `{"name": "x"} {"name": "y"}`, 400, "more than one"},
		{"POST", "/v1/sessions", ``, 400, "empty request body"},
		{"POST", "/v1/sessions", `[`, 400, "request body"},
		{"POST", "/v1/sessions", `{"name": "huge", "memory": 1125899906842624}`, 507, "does not fit in memory"},
		{"POST", "/v1/sessions/s/enable-event", `{"events": ["no_such_event"]}`, 400, "no_such_event"},
		{"POST", "/v1/sessions/s/enable-event", `{"events": []}`, 400, "no events"},
		{"POST", "/v1/sessions/s/track", `{}`, 400, "give pids"},
		{"POST", "/v1/sessions/s/track", `{"all": true}`, 400, "untrack only"},
		{"POST", "/v1/sessions/s/track", `{"comms": ["a-name-longer-than-15"]}`, 400, "15 bytes"},
		{"POST", "/v1/sessions/s/enable-counter", `{"counters": ["bogus"]}`, 400, "bogus"},
		{"POST", "/v1/sessions/s/start", `{"now": true}`, 400, "unknown field"},
		{"POST", "/v1/sessions/s/snapshot", `{"name": "../../etc/passwd"}`, 400, "snapshot name"},
		{"POST", "/v1/sessions/s/snapshot", `{}`, 409, "never been started"},
		{"POST", "/v1/sessions/nope/start", `{}`, 404, "no session"},
		{"GET", "/v1/nothing", ``, 404, "no such request"},
		{"PUT", "/v1/sessions/s", `{}`, 404, "no such request"},
	} {
		status, body := raw(t, tc.method, tc.path, tc.body)
		if status != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("%s %s %s: %d %s; want %d saying %q", tc.method, tc.path, tc.body, status, body, tc.status, tc.says)
		}
	}
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("daemon after the bad requests: %v", err)
	}
}

// rawClient sends raw requests on the socket.
func rawClient(socket string) func(t *testing.T, method, path, body string) (int, string) {
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	return func(t *testing.T, method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://rewind"+path, strings.NewReader(body))
		must(t, err)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		must(t, err)
		return resp.StatusCode, string(b)
	}
}

// TestPeerCredentials: a user neither root nor in the group is refused
// with a message saying why; a member of the group is let in.
func TestPeerCredentials(t *testing.T) {
	const nobody, nogroup = 65534, 65534
	grp := groupName(t, nogroup)
	d, _ := startDaemon(t, Config{Group: grp})
	// The socket's directory must let the child reach the socket.
	os.Chmod(filepath.Dir(d.cfg.Socket), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(d.cfg.Socket)), 0o755)
	// A copy of the test binary the other user can run.
	bin := filepath.Join(t.TempDir(), "daemon.test")
	b, err := os.ReadFile(os.Args[0])
	must(t, err)
	must(t, os.WriteFile(bin, b, 0o755))
	for dir := filepath.Dir(bin); dir != "/" && dir != os.TempDir(); dir = filepath.Dir(dir) {
		os.Chmod(dir, 0o755)
	}
	run := func(gid uint32, groups []uint32, env ...string) string {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(append(os.Environ(), "REWIND_TEST_CHILD=client", "REWIND_TEST_SOCKET="+d.cfg.Socket), env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: gid, Groups: groups}}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("client as uid %d gid %d: %v", nobody, gid, err)
		}
		return strings.TrimSpace(string(out))
	}
	// uid nobody with a group other than the daemon's (gid 1, daemon on
	// Debian): the socket's mode keeps it out, and the client says why.
	if got := run(1, nil); !strings.Contains(got, "only root and the daemon's group") {
		t.Errorf("outsider: %q, want a refusal", got)
	}
	// With the socket opened to all, the daemon's own check refuses it.
	must(t, os.Chmod(d.cfg.Socket, 0o666))
	if got := run(1, nil); !strings.Contains(got, "may not use the rewind daemon") || !strings.Contains(got, "group "+grp) {
		t.Errorf("outsider on an open socket: %q, want a refusal naming group %s", got, grp)
	}
	must(t, os.Chmod(d.cfg.Socket, 0o660))
	if got := run(nogroup, nil); got != "ok" {
		t.Errorf("member by primary group: %q, want ok", got)
	}
	if got := run(1, []uint32{nogroup}); got != "ok" {
		t.Errorf("member by supplementary group: %q, want ok", got)
	}
	// A member may not have the daemon write as root where it chooses.
	if got := run(nogroup, nil, "REWIND_TEST_OUTPUT=/etc"); !strings.Contains(got, "only root may choose") {
		t.Errorf("member naming an output directory: %q, want a refusal", got)
	}
}

func groupName(t *testing.T, gid int) string {
	t.Helper()
	b, err := os.ReadFile("/etc/group")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[2] == strconv.Itoa(gid) {
			return f[0]
		}
	}
	t.Skipf("no group with gid %d", gid)
	return ""
}

// TestSecondDaemonRefused: while one daemon runs on a socket, another is
// refused and leaves the first's socket alone.
func TestSecondDaemonRefused(t *testing.T) {
	d, c := startDaemon(t, Config{})
	_, err := New(Config{Socket: d.cfg.Socket, OutputRoot: d.cfg.OutputRoot})
	if err == nil || !strings.Contains(err.Error(), "another rewind daemon is running") {
		t.Fatalf("second daemon: %v, want a refusal", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("first daemon after the refusal: %v", err)
	}
}

// TestSaveRestartLoad: a saved session comes back, recording, when a
// daemon starts on the same saved sessions directory; a definition loads
// into another daemon as the same session.
func TestSaveRestartLoad(t *testing.T) {
	saved := filepath.Join(t.TempDir(), "sessions")
	socket := filepath.Join(t.TempDir(), "rewind.sock")
	cfg := Config{Socket: socket, SessionsDir: saved, BufferSize: 2 << 20, OutputRoot: filepath.Join(t.TempDir(), "out"), Version: "test"}
	testkernel.Require(t)
	d, err := New(cfg)
	must(t, err)
	ctx := context.Background()
	done := make(chan error, 1)
	ctx1, stop1 := context.WithCancel(ctx)
	go func() { done <- d.Serve(ctx1) }()
	c := client.New(socket)
	create(t, c, api.CreateRequest{Name: "boot", History: api.Duration(30 * time.Second)})
	act(t, c, "boot", "enable-event", api.EventsRequest{Events: []string{"syscalls", "sched_switch"}})
	act(t, c, "boot", "track", api.TrackRequest{PIDs: []uint32{1, 2}, Comms: []string{"sshd"}})
	act(t, c, "boot", "enable-counter", api.CountersRequest{Counters: []string{"cpu@50"}})
	act(t, c, "boot", "start", nil)
	create(t, c, api.CreateRequest{Name: "idle"})
	act(t, c, "idle", "enable-event", api.EventsRequest{Events: []string{"sys_enter"}})
	want, err := c.Definition(ctx, "boot")
	must(t, err)
	for _, name := range []string{"boot", "idle"} {
		if _, err := c.Save(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	stop1()
	must(t, <-done)

	d, err = New(cfg)
	must(t, err)
	loaded, err := d.LoadSaved()
	must(t, err)
	if strings.Join(loaded, ",") != "boot,idle" {
		t.Fatalf("loaded %v, want boot and idle", loaded)
	}
	ctx2, stop2 := context.WithCancel(ctx)
	go func() { done <- d.Serve(ctx2) }()
	defer func() { stop2(); <-done }()
	got, err := c.Definition(ctx, "boot")
	must(t, err)
	if !reflectEqualJSON(t, got, want) {
		t.Errorf("after restart: %+v\nwant %+v", got, want)
	}
	if s := getSession(t, c, "boot"); s.State != "recording" {
		t.Errorf("boot after restart: %s, want recording", s.State)
	}
	if s := getSession(t, c, "idle"); s.State != "created" || len(s.Events) != 1 {
		t.Errorf("idle after restart: %s with %v, want created with sys_enter", s.State, s.Events)
	}
	// The same definition into a daemon of its own.
	_, other := startDaemon(t, Config{})
	want.Output = ""
	s, err := other.Load(ctx, *want)
	must(t, err)
	if s.State != "recording" || strings.Join(s.Events, ",") != strings.Join(want.Events, ",") || len(s.Tracked.PIDs) != 2 {
		t.Errorf("loaded elsewhere: %+v", s)
	}
	if _, err := other.Load(ctx, api.Definition{Format: 99, Name: "x"}); !isStatus(err, http.StatusBadRequest) {
		t.Errorf("definition of an unknown format: %v, want 400", err)
	}
}

func reflectEqualJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	must(t, err)
	jb, err := json.Marshal(b)
	must(t, err)
	return string(ja) == string(jb)
}
