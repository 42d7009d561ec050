package api

import "github.com/rewindtrace/rewind/snapshot"

// Trigger actions.
const (
	ActionSnapshot = "snapshot" // snapshot the session, after the delay
	ActionNotify   = "notify"   // a line in the daemon's log, a metric, and a POST when Post is set
	// ActionCrash writes a crash record without a core (record/crash) for
	// a crash the kernel's handler does not see: for a signal condition,
	// when no handler reports the same process within a few seconds.
	ActionCrash = "crash"
)

// TriggerRequest adds a trigger to a session: POST
// /v1/sessions/NAME/triggers. Condition is what trigger.Parse reads
// ("syscall > 50ms comm=app", "signal SIGSEGV", "counter ...").
type TriggerRequest struct {
	// Name is unique in the session; empty: trigger1, trigger2, ...
	Name      string `json:"name,omitempty"`
	Condition string `json:"condition"`
	// Actions are ActionSnapshot and ActionNotify; empty: snapshot.
	Actions []string `json:"actions,omitempty"`
	// Delay keeps recording this long after the firing before the
	// snapshot, so that it shows the aftermath.
	Delay Duration `json:"delay,omitempty"`
	// Post is a URL the notify action POSTs each firing to, as JSON
	// (a TriggerFiring).
	Post string `json:"post,omitempty"`
	// Rate is LTTng's every:N or once-after:N; empty: every match.
	Rate string `json:"rate,omitempty"`
	// Cooldown passes matches this soon after a firing; MaxPerHour caps
	// the firings in any hour.
	Cooldown   Duration `json:"cooldown,omitempty"`
	MaxPerHour int      `json:"max_per_hour,omitempty"`
}

// Trigger is a trigger and what it has done: GET
// /v1/sessions/NAME/triggers lists them in Triggers.
type Trigger struct {
	TriggerRequest
	// Matches counts the condition's matches, Fired those the policy let
	// fire, Suppressed the others by reason (policy, cooldown,
	// max_per_hour).
	Matches    uint64            `json:"matches"`
	Fired      uint64            `json:"fired"`
	Suppressed map[string]uint64 `json:"suppressed,omitempty"`
	// Snapshots counts the snapshots taken; Errors the actions that
	// failed, LastError the latest's reason.
	Snapshots uint64 `json:"snapshots"`
	Errors    uint64 `json:"errors"`
	LastError string `json:"last_error,omitempty"`
	// CrashRecords counts the crash records the crash action wrote;
	// CrashesHandled the crashes it left to the kernel's handler, which
	// reported them.
	CrashRecords   uint64 `json:"crash_records,omitempty"`
	CrashesHandled uint64 `json:"crashes_handled,omitempty"`
	// Last is the latest firing; LastSnapshot the latest snapshot's path.
	Last         *snapshot.Firing `json:"last,omitempty"`
	LastSnapshot string           `json:"last_snapshot,omitempty"`
}

// Triggers is the reply of GET /v1/sessions/NAME/triggers.
type Triggers struct {
	Session  string    `json:"session"`
	Triggers []Trigger `json:"triggers"`
}

// TriggerFiring is the body the notify action POSTs.
type TriggerFiring struct {
	Host     string          `json:"host"`
	Session  string          `json:"session"`
	Firing   snapshot.Firing `json:"firing"`
	Snapshot string          `json:"snapshot,omitempty"`
}

// HistogramsRequest turns live histograms on or off: POST
// /v1/sessions/NAME/enable-histogram and disable-histogram. Names are
// syscall, runq, offcpu and block, or all.
type HistogramsRequest struct {
	Histograms []string `json:"histograms"`
}
