// Package api is the daemon's control protocol, version 1: JSON over HTTP,
// on the daemon's unix socket (docs/CONTROL.md). The daemon (package
// daemon) serves it and the session commands (package daemon/client) speak
// it; both take these types from here.
//
// Every request and reply body is one JSON object. A failed request gets
// an HTTP status of 400 (bad request), 403 (refused peer), 404 (no such
// session), 409 (conflict: the session exists, or is in the wrong state),
// 507 (does not fit in memory) or 500, and an Error body.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/rewindtrace/rewind/record"
)

// Version is the protocol version, the first element of every path.
const Version = "v1"

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/rewind/rewind.sock"

// Error is the body of every failed request.
type Error struct {
	Error string `json:"error"`
}

// CreateRequest creates a session: POST /v1/sessions. Zero fields take
// the daemon's defaults.
type CreateRequest struct {
	Name string `json:"name"`
	// BufferSize is the kernel ring per CPU, in bytes.
	BufferSize uint64 `json:"buffer_size,omitempty"`
	// Output is the directory snapshots are written to; empty: the
	// daemon's output directory for sessions, then the session's name.
	Output string `json:"output,omitempty"`
	// History keeps this long of compressed history beyond the rings;
	// Memory caps it in bytes.
	History Duration `json:"history,omitempty"`
	Memory  uint64   `json:"memory,omitempty"`
	// Retention caps the snapshots in Output after each one the session
	// writes, deleting the oldest first (only files rewind wrote); nil:
	// the daemon's caps.
	Retention *Retention `json:"retention,omitempty"`
}

// Retention caps the snapshots in a directory; a zero field sets no cap.
type Retention struct {
	MaxFiles int      `json:"max_files,omitempty"`
	MaxBytes uint64   `json:"max_bytes,omitempty"`
	MaxAge   Duration `json:"max_age,omitempty"`
}

// EventsRequest enables or disables events and groups:
// POST /v1/sessions/NAME/enable-event and disable-event.
type EventsRequest struct {
	Events []string `json:"events"`
}

// TrackRequest adds processes, task names and cgroups to the session's
// in-kernel filter, or removes them: POST /v1/sessions/NAME/track and
// untrack. Untrack with All set lifts the filter.
type TrackRequest struct {
	PIDs    []uint32 `json:"pids,omitempty"`
	Comms   []string `json:"comms,omitempty"`
	Cgroups []string `json:"cgroups,omitempty"`
	All     bool     `json:"all,omitempty"`
}

// CountersRequest enables or disables counter sources:
// POST /v1/sessions/NAME/enable-counter and disable-counter.
type CountersRequest struct {
	Counters []string `json:"counters"`
}

// SnapshotRequest takes a snapshot: POST /v1/sessions/NAME/snapshot. The
// daemon writes it into the session's output directory, named Name when
// given (a file name, no directories) and by host and time otherwise,
// and replies with a SnapshotReply. With Stream set it writes no file: the
// reply body is the snapshot itself (application/octet-stream), and the
// trailer Rewind-Snapshot carries the SnapshotReply as JSON.
type SnapshotRequest struct {
	Name   string `json:"name,omitempty"`
	Stream bool   `json:"stream,omitempty"`
}

// SnapshotTrailer is the trailer of a streamed snapshot.
const SnapshotTrailer = "Rewind-Snapshot"

// SnapshotReply describes a snapshot taken.
type SnapshotReply struct {
	Session string `json:"session"`
	Path    string `json:"path,omitempty"`
	Bytes   int64  `json:"bytes"`
	Events  uint64 `json:"events"`
	Lost    uint64 `json:"lost"`
	Samples uint64 `json:"samples"`
	// Error, in a streamed snapshot's trailer, says why it stopped short.
	Error string `json:"error,omitempty"`
	// Removed are the older snapshots retention deleted after this one.
	Removed []string `json:"removed,omitempty"`
}

// Session is a session's state: GET /v1/sessions/NAME, and the reply of
// every request that changes it.
type Session struct {
	Name       string   `json:"name"`
	State      string   `json:"state"` // "created" (never started), "recording", "stopped"
	Output     string   `json:"output"`
	BufferSize uint64   `json:"buffer_size"`
	History    Duration `json:"history,omitempty"`
	Memory     uint64   `json:"memory,omitempty"`
	Events     []string `json:"events"`
	// Unavailable are events a group brought in that this kernel cannot
	// record, with why.
	Unavailable map[string]string `json:"unavailable,omitempty"`
	Tracked     TrackRequest      `json:"tracked"`
	Counters    []string          `json:"counters"`
	// Retention is the caps on the session's snapshot directory (nil:
	// none).
	Retention *Retention `json:"retention,omitempty"`
	// Triggers are the session's trigger names; Histograms its live
	// histograms.
	Triggers   []string `json:"triggers,omitempty"`
	Histograms []string `json:"histograms,omitempty"`
	// Stats are the recorder's figures (record.Stats): events, losses and
	// ring fill per CPU, history, memory, snapshots.
	Stats *record.Stats `json:"stats,omitempty"`
}

// Definition is a session as `rewind save` keeps it and `rewind load`
// recreates it: GET /v1/sessions/NAME/definition, POST /v1/load. Start
// says the session was recording when saved, so load starts it again (a
// daemon loads its saved sessions when it starts: a machine records from
// boot).
type Definition struct {
	// Format is DefinitionFormat.
	Format     int          `json:"format"`
	Name       string       `json:"name"`
	BufferSize uint64       `json:"buffer_size,omitempty"`
	Output     string       `json:"output,omitempty"`
	History    Duration     `json:"history,omitempty"`
	Memory     uint64       `json:"memory,omitempty"`
	Retention  *Retention   `json:"retention,omitempty"`
	Events     []string     `json:"events"`
	Tracked    TrackRequest `json:"tracked"`
	// Counters are sources with their rates, as NAME@HZ.
	Counters []string `json:"counters"`
	// Triggers and Histograms (live) are set when the session loads.
	Triggers   []TriggerRequest `json:"triggers,omitempty"`
	Histograms []string         `json:"histograms,omitempty"`
	Start      bool             `json:"start"`
}

// DefinitionFormat is the version of saved session files.
const DefinitionFormat = 1

// SaveReply says where the daemon saved a session: POST
// /v1/sessions/NAME/save.
type SaveReply struct {
	Path string `json:"path"`
}

// Sessions is GET /v1/sessions.
type Sessions struct {
	Sessions []Session `json:"sessions"`
}

// Status is GET /v1/status: the daemon itself.
type Status struct {
	Version  string    `json:"version"` // rewind's
	Protocol string    `json:"protocol"`
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"`
	Sessions int       `json:"sessions"`
}

// Duration is a time.Duration written as a string ("1m30s") in JSON, and
// read from one or from a number of seconds.
type Duration time.Duration

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "1m30s" or 90.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration: want a string such as \"30s\" or a number of seconds, got %s", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// nameRE is what a session name may be: it names a directory and goes into
// paths and URLs.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// CheckName says what is wrong with a session or snapshot name, or nil.
func CheckName(what, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%s %q: want 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", what, name)
	}
	return nil
}

// MaxRequest bounds a request body.
const MaxRequest = 1 << 20

// Decode reads one JSON object of type T from r: unknown fields, trailing
// data and bodies over MaxRequest are errors naming what is wrong.
func Decode[T any](r io.Reader, v *T) error {
	lr := &limitReader{r: r, left: MaxRequest}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err = dec.Token(); !errors.Is(err, io.EOF) {
			err = errors.New("more than one JSON value")
		} else {
			err = nil
		}
	}
	switch {
	case lr.over:
		return fmt.Errorf("request body over %d bytes", MaxRequest)
	case errors.Is(err, io.EOF):
		return errors.New("empty request body: want a JSON object")
	case err != nil:
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

// limitReader reads at most left bytes and notes an attempt at more.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// CrashRequest asks for a snapshot of every recording session for a crash
// (`rewind crash handle`): POST /v1/crash. The snapshots are written into
// Dir, the crash record being made, as SESSION.rwd; only root may ask.
type CrashRequest struct {
	PID    int    `json:"pid"`
	TID    int    `json:"tid"`
	Signal int    `json:"signal"`
	Exe    string `json:"exe"`
	Comm   string `json:"comm,omitempty"`
	Dir    string `json:"dir"`
	// Core is what becomes of the core: saved, rlimit (RLIMIT_CORE is
	// 0) or storm (past the storm limit); the daemon counts it.
	Core string `json:"core,omitempty"`
}

// CrashReply lists the snapshots taken for a crash, or why one failed.
type CrashReply struct {
	Snapshots []CrashSnapshot `json:"snapshots"`
}

// CrashSnapshot is one session's snapshot for a crash.
type CrashSnapshot struct {
	Session string `json:"session"`
	Path    string `json:"path,omitempty"`
	Events  uint64 `json:"events,omitempty"`
	Lost    uint64 `json:"lost,omitempty"`
	Error   string `json:"error,omitempty"`
}
