package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot"
)

// DefaultAlertmanagerCooldown is how long a repeat of an alert takes
// nothing unless the configuration says otherwise: Alertmanager sends a
// group's firing alerts again whenever the group changes and every
// repeat_interval, and each of those is the same alert.
const DefaultAlertmanagerCooldown = 5 * time.Minute

const (
	// alertSessionLabel names the sessions an alert snapshots.
	alertSessionLabel = "rewind_session"
	// maxAlertmanagerPayload bounds a webhook body: Alertmanager sends a
	// whole group, annotations and all, in one (webhook_config's
	// max_alerts caps it), so more than the API's MaxRequest is allowed.
	maxAlertmanagerPayload = 8 << 20
)

// What became of an alert: the values of rewind_alertmanager_alerts_total's
// result label, and of the reply's result fields.
const (
	alertSnapshot  = "snapshot"
	alertResolved  = "resolved"
	alertCooldown  = "cooldown"
	alertNoSession = "no_session"
	alertError     = "error"
)

// alertmanagerPayload is the part of Alertmanager's webhook payload
// (version 4; webhook_config in Alertmanager's documentation) that rewind
// reads. The rest (receiver, groupKey, commonLabels, externalURL, ...) is
// let through unread, as are fields later versions add.
type alertmanagerPayload struct {
	Version string              `json:"version"`
	Status  string              `json:"status"`
	Alerts  []alertmanagerAlert `json:"alerts"`
}

type alertmanagerAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Fingerprint string            `json:"fingerprint"`
}

// alertmanagerReply says what became of each alert, in the payload's
// order.
type alertmanagerReply struct {
	Alerts []alertReply `json:"alerts"`
}

type alertReply struct {
	Alertname   string `json:"alertname,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Status      string `json:"status"`
	// Result is snapshot (at least one written), resolved, cooldown,
	// no_session (no session to snapshot) or error (every snapshot
	// failed); Reason says why nothing was taken.
	Result   string         `json:"result"`
	Reason   string         `json:"reason,omitempty"`
	Sessions []alertSession `json:"sessions,omitempty"`
}

// alertSession is what a firing alert did to one session it named.
type alertSession struct {
	Session string `json:"session"`
	Result  string `json:"result"` // snapshot, no_session or error
	Path    string `json:"path,omitempty"`
	Error   string `json:"error,omitempty"`
}

// alertmanager serves Alertmanager's webhook. It is safe for concurrent
// use: mu guards the cooldown table.
type alertmanager struct {
	d        *Daemon
	sessions string        // Config.AlertmanagerSessions
	cooldown time.Duration // 0: none
	results  *prometheus.CounterVec

	mu sync.Mutex
	// last is when each alert (by alertKey) last took a snapshot, for as
	// long as that is within the cooldown.
	last map[string]time.Time
}

func newAlertmanager(d *Daemon) *alertmanager {
	am := &alertmanager{d: d, sessions: d.cfg.AlertmanagerSessions, cooldown: d.cfg.AlertmanagerCooldown, last: map[string]time.Time{}}
	switch {
	case am.cooldown == 0:
		am.cooldown = DefaultAlertmanagerCooldown
	case am.cooldown < 0:
		am.cooldown = 0
	}
	am.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rewind_alertmanager_alerts_total",
		Help: "Alerts Alertmanager posted to the webhook, by what became of them: resolved, cooldown, or, for each session a firing alert named, snapshot, no_session or error.",
	}, []string{"result"})
	for _, r := range []string{alertSnapshot, alertResolved, alertCooldown, alertNoSession, alertError} {
		am.results.WithLabelValues(r)
	}
	d.met.reg.MustRegister(am.results)
	return am
}

// alertmanagerRoutes serves Alertmanager's webhook.
func (d *Daemon) alertmanagerRoutes(mux *http.ServeMux, v string) {
	mux.HandleFunc("POST "+v+"/alertmanager", d.handle(d.am.serve))
}

// serve takes the snapshots a webhook post's firing alerts ask for. A
// payload it can read gets 200 whatever became of the alerts: another
// status would make Alertmanager send the whole group again.
func (am *alertmanager) serve(r *http.Request) (any, error) {
	p, err := decodeAlertmanager(r.Body)
	if err != nil {
		return nil, failf(http.StatusBadRequest, "%s %s: %v", r.Method, r.URL.Path, err)
	}
	// Once accepted, an alert's snapshots are taken even if Alertmanager
	// stops waiting: its retry then finds the alert in its cooldown.
	ctx := context.WithoutCancel(r.Context())
	out := alertmanagerReply{Alerts: make([]alertReply, 0, len(p.Alerts))}
	for _, a := range p.Alerts {
		out.Alerts = append(out.Alerts, am.alert(ctx, a))
	}
	return out, nil
}

// decodeAlertmanager reads a webhook payload: one JSON object with an
// alerts array, each alert firing or resolved and labelled.
func decodeAlertmanager(body io.Reader) (*alertmanagerPayload, error) {
	lr := &io.LimitedReader{R: body, N: maxAlertmanagerPayload + 1}
	dec := json.NewDecoder(lr)
	var p alertmanagerPayload
	err := dec.Decode(&p)
	if err == nil {
		if _, err = dec.Token(); errors.Is(err, io.EOF) {
			err = nil
		} else {
			err = errors.New("more than one JSON value")
		}
	}
	switch {
	case lr.N <= 0:
		return nil, fmt.Errorf("webhook payload over %d bytes (webhook_config's max_alerts limits what Alertmanager sends)", maxAlertmanagerPayload)
	case errors.Is(err, io.EOF):
		return nil, errors.New("empty request body: want Alertmanager's webhook payload")
	case err != nil:
		return nil, fmt.Errorf("webhook payload: %w", err)
	case p.Alerts == nil:
		return nil, errors.New("webhook payload has no alerts array: want Alertmanager's webhook payload (version 4)")
	}
	for i, a := range p.Alerts {
		if a.Status != "firing" && a.Status != "resolved" {
			return nil, fmt.Errorf("webhook payload: alert %d: status %q: want firing or resolved", i, a.Status)
		}
		if len(a.Labels) == 0 {
			return nil, fmt.Errorf("webhook payload: alert %d has no labels", i)
		}
	}
	return &p, nil
}

// alert snapshots the sessions a firing alert names, unless it is a
// repeat within the cooldown.
func (am *alertmanager) alert(ctx context.Context, a alertmanagerAlert) alertReply {
	name := a.Labels["alertname"]
	rep := alertReply{Alertname: name, Fingerprint: a.Fingerprint, Status: a.Status}
	if a.Status == "resolved" {
		rep.Result = alertResolved
		am.results.WithLabelValues(alertResolved).Inc()
		return rep
	}
	key := a.Fingerprint
	if key == "" {
		key = renderLabels(a.Labels)
	}
	now := time.Now()
	if prev, ok := am.reserve(key, now); !ok {
		rep.Result = alertCooldown
		rep.Reason = fmt.Sprintf("the same alert took a snapshot %s ago, within the cooldown of %s (alertmanager_cooldown)",
			now.Sub(prev).Round(time.Millisecond), am.cooldown)
		am.results.WithLabelValues(alertCooldown).Inc()
		return rep
	}
	condition := name
	if condition == "" {
		condition = renderLabels(a.Labels)
	}
	trig := snapshot.Trigger{Kind: snapshot.TriggerCondition, Detail: "alertmanager alert " + condition, Firing: &snapshot.Firing{
		Trigger: "alertmanager", Condition: condition, TS: sysx.BootNow(), CPU: -1, Labels: a.Labels,
	}}
	sessions, missing := am.pick(a.Labels)
	rep.Sessions = missing
	for _, s := range sessions {
		r, err := s.snapshot(ctx, api.SnapshotRequest{}, trig, nil)
		if err == nil {
			err = am.d.private(r.Path)
		}
		switch {
		case err == nil:
			rep.Sessions = append(rep.Sessions, alertSession{Session: s.name, Result: alertSnapshot, Path: r.Path})
		case isStatusError(err, http.StatusConflict):
			rep.Sessions = append(rep.Sessions, alertSession{Session: s.name, Result: alertNoSession, Error: err.Error()})
		default:
			es := alertSession{Session: s.name, Result: alertError, Error: err.Error()}
			if r != nil {
				es.Path = r.Path
			}
			rep.Sessions = append(rep.Sessions, es)
		}
	}
	rep.Result = alertNoSession
	for _, s := range rep.Sessions {
		am.results.WithLabelValues(s.Result).Inc()
		switch {
		case s.Result == alertSnapshot:
			rep.Result = alertSnapshot
		case s.Result == alertError && rep.Result == alertNoSession:
			rep.Result = alertError
		}
	}
	switch rep.Result {
	case alertNoSession:
		rep.Reason = "no session to snapshot: the alert's " + alertSessionLabel + " label, or alertmanager_sessions, names none that has been started"
		if len(rep.Sessions) == 0 {
			am.results.WithLabelValues(alertNoSession).Inc()
		}
	case alertError:
		rep.Reason = "every snapshot failed"
	}
	if rep.Result != alertSnapshot {
		am.release(key, now) // the next post of the alert may try again
	}
	return rep
}

// pick returns the sessions an alert names (its rewind_session label, else
// the configuration): every started one for "all". Names with no session
// come back as no_session results.
func (am *alertmanager) pick(labels map[string]string) ([]*session, []alertSession) {
	value := strings.TrimSpace(labels[alertSessionLabel])
	if value == "" {
		value = am.sessions
	}
	names, all := splitSessions(value)
	var out []*session
	if all {
		for _, s := range am.d.m.list() {
			s.mu.Lock()
			started := s.started
			s.mu.Unlock()
			if started {
				out = append(out, s)
			}
		}
		return out, nil
	}
	var missing []alertSession
	for _, name := range names {
		s, err := am.d.m.get(name)
		if err != nil {
			missing = append(missing, alertSession{Session: name, Result: alertNoSession, Error: err.Error()})
			continue
		}
		out = append(out, s)
	}
	return out, missing
}

// splitSessions reads "all" or comma-separated session names (empty:
// all), each name once.
func splitSessions(value string) (names []string, all bool) {
	if v := strings.TrimSpace(value); v == "" || v == "all" {
		return nil, true
	}
	for _, n := range strings.Split(value, ",") {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, true
	}
	return names, false
}

// reserve starts an alert's cooldown at now, unless it is in one since
// prev: then ok is false.
func (am *alertmanager) reserve(key string, now time.Time) (prev time.Time, ok bool) {
	if am.cooldown == 0 {
		return time.Time{}, true
	}
	am.mu.Lock()
	defer am.mu.Unlock()
	for k, t := range am.last {
		if now.Sub(t) >= am.cooldown {
			delete(am.last, k)
		}
	}
	if t, in := am.last[key]; in {
		return t, false
	}
	am.last[key] = now
	return now, true
}

// release ends the cooldown reserve started at at, when no snapshot came
// of it.
func (am *alertmanager) release(key string, at time.Time) {
	am.mu.Lock()
	defer am.mu.Unlock()
	if t, in := am.last[key]; in && t.Equal(at) {
		delete(am.last, key)
	}
}

// renderLabels writes a label set as Prometheus does, sorted by name:
// {alertname="HighLatency",severity="page"}.
func renderLabels(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n + "=" + strconv.Quote(labels[n]))
	}
	b.WriteByte('}')
	return b.String()
}

// isStatusError says whether err carries the API status.
func isStatusError(err error, status int) bool {
	var se *statusError
	return errors.As(err, &se) && se.status == status
}
