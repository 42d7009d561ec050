// Package client speaks the daemon's control protocol (daemon/api) over
// its unix socket: what the session commands (rewind create, start,
// snapshot record, ...) call. A Client is safe for concurrent use.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/rewindtrace/rewind/daemon/api"
)

// Client talks to one daemon.
type Client struct {
	socket string
	http   *http.Client
}

// New returns a client of the daemon listening on socket (empty:
// api.DefaultSocket).
func New(socket string) *Client {
	if socket == "" {
		socket = api.DefaultSocket
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Error is a request the daemon refused or failed: its HTTP status and
// its message.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// do sends a request with body (nil: none) and decodes the reply into out
// (nil: ignored).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("daemon's reply to %s %s: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a successful reply, or the daemon's
// error.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://rewind/"+api.Version+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.dialError(err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e api.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
		}
		return nil, &Error{Status: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

// dialError says plainly that no daemon listens, or that the socket is not
// the user's to open.
func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no rewind daemon listens on %s (start one with `rewind daemon`, or give its socket with --socket): %w", c.socket, err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("cannot open %s: only root and the daemon's group (rewind unless it was started with --group) may talk to the daemon: %w", c.socket, err)
	}
	return fmt.Errorf("talk to the daemon on %s: %w", c.socket, err)
}

func sessionPath(name string, rest ...string) string {
	p := "/sessions/" + url.PathEscape(name)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// Status asks about the daemon itself.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var s api.Status
	return &s, c.do(ctx, http.MethodGet, "/status", nil, &s)
}

// Create creates a session.
func (c *Client) Create(ctx context.Context, req api.CreateRequest) (*api.Session, error) {
	var s api.Session
	return &s, c.do(ctx, http.MethodPost, "/sessions", req, &s)
}

// Destroy stops a session and frees everything it holds; its snapshots
// stay.
func (c *Client) Destroy(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, sessionPath(name), nil, nil)
}

// Session returns one session's state.
func (c *Client) Session(ctx context.Context, name string) (*api.Session, error) {
	var s api.Session
	return &s, c.do(ctx, http.MethodGet, sessionPath(name), nil, &s)
}

// Sessions lists every session.
func (c *Client) Sessions(ctx context.Context) ([]api.Session, error) {
	var s api.Sessions
	return s.Sessions, c.do(ctx, http.MethodGet, "/sessions", nil, &s)
}

// Action sends one of the requests that change a session (enable-event,
// disable-event, track, untrack, enable-counter, disable-counter, start,
// stop) and returns the session as it is after it.
func (c *Client) Action(ctx context.Context, name, action string, body any) (*api.Session, error) {
	var s api.Session
	if body == nil {
		body = struct{}{}
	}
	return &s, c.do(ctx, http.MethodPost, sessionPath(name, action), body, &s)
}

// Definition returns what recreates a session (rewind save -o FILE).
func (c *Client) Definition(ctx context.Context, name string) (*api.Definition, error) {
	var d api.Definition
	return &d, c.do(ctx, http.MethodGet, sessionPath(name, "definition"), nil, &d)
}

// Save has the daemon save a session among the sessions it loads at start.
func (c *Client) Save(ctx context.Context, name string) (*api.SaveReply, error) {
	var r api.SaveReply
	return &r, c.do(ctx, http.MethodPost, sessionPath(name, "save"), struct{}{}, &r)
}

// Load recreates a saved session.
func (c *Client) Load(ctx context.Context, def api.Definition) (*api.Session, error) {
	var s api.Session
	return &s, c.do(ctx, http.MethodPost, "/load", def, &s)
}

// Snapshot takes a snapshot the daemon writes into the session's output
// directory.
func (c *Client) Snapshot(ctx context.Context, name string, req api.SnapshotRequest) (*api.SnapshotReply, error) {
	req.Stream = false
	var r api.SnapshotReply
	return &r, c.do(ctx, http.MethodPost, sessionPath(name, "snapshot"), req, &r)
}

// SnapshotTo takes a snapshot streamed to w, and returns what the daemon
// said of it once written.
func (c *Client) SnapshotTo(ctx context.Context, name string, w io.Writer) (*api.SnapshotReply, error) {
	resp, err := c.send(ctx, http.MethodPost, sessionPath(name, "snapshot"), api.SnapshotRequest{Stream: true})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return nil, fmt.Errorf("read the snapshot from the daemon: %w", err)
	}
	var r api.SnapshotReply
	t := resp.Trailer.Get(api.SnapshotTrailer)
	if t == "" {
		return nil, errors.New("the daemon's snapshot ended without its trailer: it is incomplete")
	}
	if err := json.Unmarshal([]byte(t), &r); err != nil {
		return nil, fmt.Errorf("snapshot trailer: %w", err)
	}
	if r.Error != "" {
		return &r, fmt.Errorf("snapshot: %s", r.Error)
	}
	return &r, nil
}

// AddTrigger adds a trigger to a session and returns its triggers.
func (c *Client) AddTrigger(ctx context.Context, session string, req api.TriggerRequest) (*api.Triggers, error) {
	var out api.Triggers
	err := c.do(ctx, http.MethodPost, sessionPath(session, "triggers"), req, &out)
	return &out, err
}

// Triggers lists a session's triggers and what they did.
func (c *Client) Triggers(ctx context.Context, session string) (*api.Triggers, error) {
	var out api.Triggers
	err := c.do(ctx, http.MethodGet, sessionPath(session, "triggers"), nil, &out)
	return &out, err
}

// RemoveTrigger removes a session's trigger.
func (c *Client) RemoveTrigger(ctx context.Context, session, name string) (*api.Triggers, error) {
	var out api.Triggers
	err := c.do(ctx, http.MethodDelete, sessionPath(session, "triggers", name), nil, &out)
	return &out, err
}

// Crash asks for every recording session's snapshot for a crash.
func (c *Client) Crash(ctx context.Context, req api.CrashRequest) (*api.CrashReply, error) {
	var out api.CrashReply
	err := c.do(ctx, http.MethodPost, "/crash", req, &out)
	return &out, err
}
