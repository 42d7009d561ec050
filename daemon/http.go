package daemon

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/snapshot"
)

type peerKey struct{}

// peer is who is on the other end of a connection, from SO_PEERCRED.
type peer struct {
	cred *unix.Ucred
	err  error
}

// withPeer reads the connecting process's credentials into the context.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	p := peer{err: errors.New("not a unix socket connection")}
	if uc, ok := c.(*net.UnixConn); ok {
		raw, err := uc.SyscallConn()
		if err == nil {
			cerr := raw.Control(func(fd uintptr) { p.cred, p.err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
			if cerr != nil {
				p.err = cerr
			}
		} else {
			p.err = err
		}
	}
	return context.WithValue(ctx, peerKey{}, p)
}

// authorize allows, on the unix socket, root and members of the daemon's
// group, and tells anyone else why not; on TCP, whoever presents the
// bearer token.
func (d *Daemon) authorize(r *http.Request) error {
	if r.Context().Value(tcpKey{}) != nil {
		return d.checkToken(r)
	}
	p, _ := r.Context().Value(peerKey{}).(peer)
	if p.cred == nil {
		return failf(http.StatusForbidden, "cannot tell who is asking: %v", p.err)
	}
	if p.cred.Uid == 0 {
		return nil
	}
	who := "uid " + strconv.Itoa(int(p.cred.Uid))
	if u, err := user.LookupId(strconv.Itoa(int(p.cred.Uid))); err == nil {
		who = fmt.Sprintf("%s (uid %d)", u.Username, p.cred.Uid)
	}
	if d.gid < 0 {
		return failf(http.StatusForbidden, "%s may not use the rewind daemon: only root may, as there is no %s group to admit others", who, d.cfg.Group)
	}
	if inGroup(p.cred, d.gid) {
		return nil
	}
	return failf(http.StatusForbidden, "%s may not use the rewind daemon: only root and members of group %s may (an administrator can add you: usermod -aG %s USER)", who, d.cfg.Group, d.cfg.Group)
}

type tcpKey struct{}

// withTCP marks a connection as one from the TCP listener.
func withTCP(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, tcpKey{}, true)
}

// checkToken wants "Authorization: Bearer TOKEN".
func (d *Daemon) checkToken(r *http.Request) error {
	if d.token == "" {
		return failf(http.StatusUnauthorized, "control over HTTP needs a token, and this daemon has none: set token_file in its config (or use the unix socket)")
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(d.token)) != 1 {
		return failf(http.StatusUnauthorized, "control over HTTP needs the daemon's bearer token (Authorization: Bearer TOKEN)")
	}
	return nil
}

// inGroup says whether the peer's process has gid as its group or among
// its supplementary groups (/proc/PID/status, as the kernel holds them for
// the process that connected).
func inGroup(c *unix.Ucred, gid int) bool {
	if int(c.Gid) == gid {
		return true
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.Pid))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Groups:"); ok {
			for _, g := range strings.Fields(v) {
				if g == strconv.Itoa(gid) {
					return true
				}
			}
			return false
		}
	}
	return false
}

// routes is the v1 API.
func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	v := "/" + api.Version
	mux.HandleFunc("GET "+v+"/status", d.handle(func(r *http.Request) (any, error) {
		return api.Status{Version: d.cfg.Version, Protocol: api.Version, PID: os.Getpid(), Started: d.started, Sessions: len(d.m.list())}, nil
	}))
	mux.HandleFunc("GET "+v+"/sessions", d.handle(func(r *http.Request) (any, error) {
		out := api.Sessions{Sessions: []api.Session{}}
		for _, s := range d.m.list() {
			st, err := s.state()
			if err != nil {
				continue // destroyed meanwhile
			}
			out.Sessions = append(out.Sessions, st)
		}
		return out, nil
	}))
	mux.HandleFunc("POST "+v+"/sessions", d.handle(func(r *http.Request) (any, error) {
		var req api.CreateRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		if err := d.mayWriteTo(r, req.Output); err != nil {
			return nil, err
		}
		s, err := d.m.create(req)
		if err != nil {
			return nil, err
		}
		return s.state()
	}))
	mux.HandleFunc("GET "+v+"/sessions/{name}", d.session(func(s *session, r *http.Request) error { return nil }))
	mux.HandleFunc("DELETE "+v+"/sessions/{name}", d.handle(func(r *http.Request) (any, error) {
		return struct{}{}, d.m.destroy(r.PathValue("name"))
	}))
	mux.HandleFunc("POST "+v+"/sessions/{name}/enable-event", d.session(func(s *session, r *http.Request) error {
		var req api.EventsRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		return s.enable(req.Events)
	}))
	mux.HandleFunc("POST "+v+"/sessions/{name}/disable-event", d.session(func(s *session, r *http.Request) error {
		var req api.EventsRequest
		if err := decode(r, &req); err != nil {
			return err
		}
		return s.disable(req.Events)
	}))
	for action, remove := range map[string]bool{"track": false, "untrack": true} {
		mux.HandleFunc("POST "+v+"/sessions/{name}/"+action, d.session(func(s *session, r *http.Request) error {
			var req api.TrackRequest
			if err := decode(r, &req); err != nil {
				return err
			}
			if req.All && !remove {
				return failf(http.StatusBadRequest, "track: all applies to untrack only")
			}
			return s.track(req, remove)
		}))
	}
	for action, remove := range map[string]bool{"enable-counter": false, "disable-counter": true} {
		mux.HandleFunc("POST "+v+"/sessions/{name}/"+action, d.session(func(s *session, r *http.Request) error {
			var req api.CountersRequest
			if err := decode(r, &req); err != nil {
				return err
			}
			return s.counters(req.Counters, remove)
		}))
	}
	mux.HandleFunc("POST "+v+"/sessions/{name}/start", d.session(func(s *session, r *http.Request) error {
		if err := decodeNothing(r); err != nil {
			return err
		}
		return s.start()
	}))
	mux.HandleFunc("POST "+v+"/sessions/{name}/stop", d.session(func(s *session, r *http.Request) error {
		if err := decodeNothing(r); err != nil {
			return err
		}
		return s.stop()
	}))
	mux.HandleFunc("POST "+v+"/sessions/{name}/snapshot", d.snapshot)
	mux.HandleFunc("GET "+v+"/sessions/{name}/definition", d.handle(func(r *http.Request) (any, error) {
		s, err := d.m.get(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		return s.definition()
	}))
	mux.HandleFunc("POST "+v+"/sessions/{name}/save", d.handle(func(r *http.Request) (any, error) {
		if err := decodeNothing(r); err != nil {
			return nil, err
		}
		s, err := d.m.get(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		path, err := d.m.save(s)
		return api.SaveReply{Path: path}, err
	}))
	mux.HandleFunc("POST "+v+"/load", d.handle(func(r *http.Request) (any, error) {
		var def api.Definition
		if err := decode(r, &def); err != nil {
			return nil, err
		}
		if err := d.mayWriteTo(r, def.Output); err != nil {
			return nil, err
		}
		s, err := d.m.load(def)
		if err != nil {
			return nil, err
		}
		return s.state()
	}))
	d.triggerRoutes(mux, v)
	d.alertmanagerRoutes(mux, v)
	d.crashRoutes(mux, v)
	// Open to scrapers on TCP; on the socket, to whoever may use it.
	metrics := promhttp.HandlerFor(d.met.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(tcpKey{}) == nil {
			if err := d.authorize(r); err != nil {
				writeError(w, err)
				return
			}
		}
		metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if err := d.authorize(r); err != nil {
			writeError(w, err)
			return
		}
		writeError(w, failf(http.StatusNotFound, "no such request: %s %s (docs/CONTROL.md lists them)", r.Method, r.URL.Path))
	})
	return mux
}

// handle authorizes a request and writes fn's reply or error as JSON.
func (d *Daemon) handle(fn func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := d.authorize(r); err != nil {
			writeError(w, err)
			return
		}
		out, err := fn(r)
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	}
}

// session handles a request about one session and replies with its state.
func (d *Daemon) session(fn func(*session, *http.Request) error) http.HandlerFunc {
	return d.handle(func(r *http.Request) (any, error) {
		s, err := d.m.get(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		if err := fn(s, r); err != nil {
			return nil, err
		}
		return s.state()
	})
}

// snapshot takes a snapshot into the session's directory, or streams it.
func (d *Daemon) snapshot(w http.ResponseWriter, r *http.Request) {
	if err := d.authorize(r); err != nil {
		writeError(w, err)
		return
	}
	s, err := d.m.get(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	var req api.SnapshotRequest
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	trig := snapshot.Trigger{Kind: snapshot.TriggerManual, Detail: "rewind snapshot record"}
	if !req.Stream {
		rep, err := s.snapshot(r.Context(), req, trig, nil)
		if err == nil {
			err = d.private(rep.Path)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rep)
		return
	}
	// Streamed: the status line goes out with the first bytes, so an
	// error after them can only be told in the trailer.
	w.Header().Set("Trailer", api.SnapshotTrailer)
	w.Header().Set("Content-Type", "application/octet-stream")
	sw := &snapshotWriter{w: w}
	rep, err := s.snapshot(r.Context(), req, trig, sw)
	if err != nil && !sw.wrote {
		writeError(w, err)
		return
	}
	if rep == nil {
		rep = &api.SnapshotReply{Session: s.name}
	}
	if err != nil {
		rep.Error = err.Error()
	}
	b, _ := json.Marshal(rep)
	w.Header().Set(api.SnapshotTrailer, string(b))
}

// snapshotWriter is the response body a streamed snapshot is encoded to.
type snapshotWriter struct {
	w     http.ResponseWriter
	wrote bool
}

func (s *snapshotWriter) Write(p []byte) (int, error) {
	s.wrote = true
	return s.w.Write(p)
}

// mayWriteTo refuses an output directory outside the daemon's output root
// unless root asks on the socket: the daemon writes there as root.
func (d *Daemon) mayWriteTo(r *http.Request, output string) error {
	if output == "" || strings.HasPrefix(filepath.Clean(output), filepath.Clean(d.cfg.OutputRoot)+"/") {
		return nil
	}
	if p, _ := r.Context().Value(peerKey{}).(peer); p.cred != nil && p.cred.Uid == 0 {
		return nil
	}
	return failf(http.StatusForbidden, "only root may choose a session's output directory outside %s", d.cfg.OutputRoot)
}

// decode reads a request body, or refuses it with a 400 naming the
// problem.
func decode[T any](r *http.Request, v *T) error {
	if err := api.Decode(r.Body, v); err != nil {
		return failf(http.StatusBadRequest, "%s %s: %v", r.Method, r.URL.Path, err)
	}
	return nil
}

// decodeNothing accepts an empty body or an empty object.
func decodeNothing(r *http.Request) error {
	if r.ContentLength == 0 {
		return nil
	}
	var none struct{}
	return decode(r, &none)
}

// writeError replies with the error's status (500 for one without) and
// message.
func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var se *statusError
	if errors.As(err, &se) {
		status = se.status
	}
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rewind"`)
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Error{Error: err.Error()})
}
