package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/daemon/client"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/snaptest"
)

// webhookPayload is a payload as Alertmanager 0.25 posts it, every field
// included: rewind reads a few and must let the others through.
func webhookPayload(alerts ...string) string {
	return `{"receiver": "rewind", "status": "firing", "alerts": [` + strings.Join(alerts, ",") + `],
		"groupLabels": {"alertname": "HighLatency"}, "commonLabels": {"alertname": "HighLatency"},
		"commonAnnotations": {}, "externalURL": "http://am:9093", "version": "4",
		"groupKey": "{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0}`
}

// webhookAlert is one alert of a payload; an empty fingerprint is left out.
func webhookAlert(status, fingerprint string, labels map[string]string) string {
	l, _ := json.Marshal(labels)
	fp := ""
	if fingerprint != "" {
		fp = `, "fingerprint": "` + fingerprint + `"`
	}
	return `{"status": "` + status + `", "labels": ` + string(l) + `, "annotations": {"summary": "p99 over 1s"},
		"startsAt": "2026-12-02T02:24:16.539Z", "endsAt": "0001-01-01T00:00:00Z",
		"generatorURL": "http://prometheus:9090/graph"` + fp + `}`
}

// postAlerts posts a payload to the webhook on the socket and decodes the
// reply.
func postAlerts(t *testing.T, d *Daemon, payload string) alertmanagerReply {
	t.Helper()
	status, body := rawClient(d.cfg.Socket)(t, "POST", "/v1/alertmanager", payload)
	if status != http.StatusOK {
		t.Fatalf("POST /v1/alertmanager: %d %s", status, body)
	}
	var rep alertmanagerReply
	must(t, json.Unmarshal([]byte(body), &rep))
	return rep
}

// recordingSession creates a session recording syscalls and starts it.
func recordingSession(t *testing.T, c *client.Client, name string) {
	t.Helper()
	create(t, c, api.CreateRequest{Name: name})
	act(t, c, name, "enable-event", api.EventsRequest{Events: []string{"syscalls"}})
	act(t, c, name, "start", nil)
}

// snapshotFiles lists the snapshots in a session's directory.
func snapshotFiles(t *testing.T, d *Daemon, session string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(d.cfg.OutputRoot, session, "*.rwd"))
	must(t, err)
	return files
}

// checkFiring wants the snapshot's trigger to be the alert's firing.
func checkFiring(t *testing.T, path, alertname string, labels map[string]string, from, to uint64) {
	t.Helper()
	trig := snaptest.Open(t, path).Meta().Trigger
	f := trig.Firing
	if trig.Kind != snapshot.TriggerCondition || trig.Detail != "alertmanager alert "+alertname || f == nil {
		t.Fatalf("%s: trigger %+v, want the alert %s's firing", path, trig, alertname)
	}
	if f.Trigger != "alertmanager" || f.Condition != alertname || f.CPU != -1 || f.TS < from || f.TS > to || !maps.Equal(f.Labels, labels) {
		t.Errorf("%s: firing %+v, want alertmanager's %s at boot time %d..%d, labels %v", path, *f, alertname, from, to, labels)
	}
}

// TestAlertmanagerWebhook posts payloads as Alertmanager would: a firing
// alert snapshots the sessions it names with its labels in the trigger, and
// resolved alerts, repeats, unknown sessions and bad payloads take nothing.
func TestAlertmanagerWebhook(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(token, []byte("0123456789abcdef0123456789abcdef\n"), 0o600))
	d, c := startDaemon(t, Config{Listen: "127.0.0.1:0", TokenFile: token})
	recordingSession(t, c, "a")
	recordingSession(t, c, "b")
	create(t, c, api.CreateRequest{Name: "idle"})

	// A firing alert naming a: one snapshot there, carrying the labels.
	high := map[string]string{"alertname": "HighLatency", "severity": "page", "rewind_session": "a"}
	from := sysx.BootNow()
	rep := postAlerts(t, d, webhookPayload(webhookAlert("firing", "f1", high)))
	to := sysx.BootNow()
	if len(rep.Alerts) != 1 || rep.Alerts[0].Result != "snapshot" || rep.Alerts[0].Alertname != "HighLatency" ||
		len(rep.Alerts[0].Sessions) != 1 || rep.Alerts[0].Sessions[0].Session != "a" {
		t.Fatalf("firing alert for a: %+v", rep)
	}
	path := rep.Alerts[0].Sessions[0].Path
	if files := snapshotFiles(t, d, "a"); len(files) != 1 || files[0] != path {
		t.Fatalf("session a's snapshots: %v, want %s", files, path)
	}
	checkFiring(t, path, "HighLatency", high, from, to)
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("snapshot %s: %v, want mode 0640", st.Mode(), err)
	}

	// Alertmanager sends a group's firing alerts again when the group
	// changes: the repeat takes nothing, its resolution neither.
	rep = postAlerts(t, d, webhookPayload(webhookAlert("firing", "f1", high), webhookAlert("resolved", "f0", map[string]string{"alertname": "Old", "rewind_session": "a"})))
	if len(rep.Alerts) != 2 || rep.Alerts[0].Result != "cooldown" || !strings.Contains(rep.Alerts[0].Reason, "cooldown") || rep.Alerts[1].Result != "resolved" {
		t.Errorf("repeat and resolved: %+v", rep)
	}
	rep = postAlerts(t, d, webhookPayload(webhookAlert("resolved", "f1", high)))
	if len(rep.Alerts) != 1 || rep.Alerts[0].Result != "resolved" || len(rep.Alerts[0].Sessions) != 0 {
		t.Errorf("resolved: %+v", rep)
	}
	// Without a fingerprint, the label set tells a repeat.
	disk := map[string]string{"alertname": "DiskFull", "rewind_session": "b", "device": "sda"}
	for i, want := range []string{"snapshot", "cooldown"} {
		rep = postAlerts(t, d, webhookPayload(webhookAlert("firing", "", disk)))
		if len(rep.Alerts) != 1 || rep.Alerts[0].Result != want {
			t.Errorf("post %d of an alert without a fingerprint: %+v, want %s", i+1, rep, want)
		}
	}
	if files := snapshotFiles(t, d, "a"); len(files) != 1 {
		t.Errorf("session a has %d snapshots after a repeat and a resolution, want 1", len(files))
	}
	if files := snapshotFiles(t, d, "b"); len(files) != 1 {
		t.Errorf("session b has %d snapshots, want 1", len(files))
	}

	// A session that does not exist, or never started, is reported; the
	// others named are still snapshot.
	mixed := map[string]string{"alertname": "Mixed", "rewind_session": "nosuch, b,idle"}
	rep = postAlerts(t, d, webhookPayload(webhookAlert("firing", "f2", mixed)))
	got := map[string]alertSession{}
	for _, s := range rep.Alerts[0].Sessions {
		got[s.Session] = s
	}
	if rep.Alerts[0].Result != "snapshot" || len(got) != 3 || got["b"].Result != "snapshot" ||
		got["nosuch"].Result != "no_session" || !strings.Contains(got["nosuch"].Error, `no session "nosuch"`) ||
		got["idle"].Result != "no_session" || !strings.Contains(got["idle"].Error, "never been started") {
		t.Errorf("alert naming nosuch, b and idle: %+v", rep)
	}
	rep = postAlerts(t, d, webhookPayload(webhookAlert("firing", "f3", map[string]string{"alertname": "Lost", "rewind_session": "nosuch"})))
	if rep.Alerts[0].Result != "no_session" || !strings.Contains(rep.Alerts[0].Reason, "no session") {
		t.Errorf("alert naming only nosuch: %+v", rep)
	}

	// No label: alertmanager_sessions, by default every started session.
	rep = postAlerts(t, d, webhookPayload(webhookAlert("firing", "f4", map[string]string{"alertname": "Everywhere"})))
	var names []string
	for _, s := range rep.Alerts[0].Sessions {
		names = append(names, s.Session)
		checkFiring(t, s.Path, "Everywhere", map[string]string{"alertname": "Everywhere"}, to, sysx.BootNow())
	}
	if rep.Alerts[0].Result != "snapshot" || !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("alert with no session label: %+v, want a and b snapshot", rep)
	}

	status, body := rawClient(d.cfg.Socket)(t, "GET", "/metrics", "")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	// snapshot: a, b, b (Mixed), a and b (Everywhere); no_session: nosuch
	// and idle (Mixed), nosuch (Lost).
	for result, want := range map[string]int{"snapshot": 5, "resolved": 2, "cooldown": 2, "no_session": 3, "error": 0} {
		m := regexp.MustCompile(`(?m)^rewind_alertmanager_alerts_total\{result="` + result + `"\} (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Errorf("no rewind_alertmanager_alerts_total{result=%q} in /metrics", result)
		} else if n, _ := strconv.Atoi(m[1]); n != want {
			t.Errorf("rewind_alertmanager_alerts_total{result=%q} = %s, want %d", result, m[1], want)
		}
	}

	// Bad payloads: 400 naming the problem, nothing taken.
	raw := rawClient(d.cfg.Socket)
	for _, tc := range []struct{ body, says string }{
		{``, "empty request body"},
		{`{"alerts": [`, "webhook payload"},
		{`[]`, "webhook payload"},
		{`{"version": "4", "status": "firing"}`, "no alerts array"},
		{`{"alerts": "many"}`, "webhook payload"},
		{webhookPayload(webhookAlert("pending", "f9", high)), "want firing or resolved"},
		{webhookPayload(`{"status": "firing"}`), "alert 0 has no labels"},
		{webhookPayload() + ` {}`, "more than one JSON value"},
		{`{"alerts": [], "x": "` + strings.Repeat("x", maxAlertmanagerPayload) + `"}`, "over 8388608 bytes"},
	} {
		status, body := raw(t, "POST", "/v1/alertmanager", tc.body)
		if status != http.StatusBadRequest || !strings.Contains(body, tc.says) {
			t.Errorf("payload %.60q: %d %s; want 400 saying %q", tc.body, status, body, tc.says)
		}
	}
	if n := len(snapshotFiles(t, d, "a")) + len(snapshotFiles(t, d, "b")); n != 5 {
		t.Errorf("%d snapshots after the bad payloads, want 5", n)
	}

	// On TCP the webhook wants the bearer token, as the rest of the API.
	resp, err := http.Post("http://"+d.HTTPAddr()+"/v1/alertmanager", "application/json", strings.NewReader(webhookPayload(webhookAlert("firing", "f5", high))))
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("webhook on TCP without the token: %d, want 401", resp.StatusCode)
	}
}

// TestAlertmanagerConfigured: alertmanager_sessions picks the sessions of
// an alert without a label, and a cooldown of none lets every repeat snapshot.
func TestAlertmanagerConfigured(t *testing.T) {
	d, c := startDaemon(t, Config{AlertmanagerSessions: "b", AlertmanagerCooldown: -1})
	recordingSession(t, c, "a")
	recordingSession(t, c, "b")
	for i := 0; i < 2; i++ {
		rep := postAlerts(t, d, webhookPayload(webhookAlert("firing", "f1", map[string]string{"alertname": "Again"})))
		if len(rep.Alerts) != 1 || rep.Alerts[0].Result != "snapshot" || len(rep.Alerts[0].Sessions) != 1 || rep.Alerts[0].Sessions[0].Session != "b" {
			t.Errorf("post %d: %+v, want a snapshot of b", i+1, rep)
		}
	}
	if a, b := snapshotFiles(t, d, "a"), snapshotFiles(t, d, "b"); len(a) != 0 || len(b) != 2 {
		t.Errorf("snapshots: a %v, b %v; want none and two", a, b)
	}
}

// TestAlertmanagerPostsWebhook runs Debian's Alertmanager with a webhook
// receiver pointing at the daemon's HTTP listener, sends it an alert
// through its API, and waits for the snapshot carrying the alert's labels.
func TestAlertmanagerPostsWebhook(t *testing.T) {
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		if bin, err = exec.LookPath("alertmanager"); err != nil {
			if os.Getenv("REWIND_REQUIRE_KERNEL") == "1" {
				t.Fatal("prometheus-alertmanager not found; `make test` installs it (scripts/deps.sh test)")
			}
			t.Skip("no prometheus-alertmanager")
		}
	}
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	must(t, os.WriteFile(token, []byte("0123456789abcdef0123456789abcdef\n"), 0o600))
	d, c := startDaemon(t, Config{Listen: "127.0.0.1:0", TokenFile: token})
	recordingSession(t, c, "fleet")

	cfg := fmt.Sprintf(`route:
  receiver: rewind
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: rewind
    webhook_configs:
      - url: http://%s/v1/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials_file: %s
`, d.HTTPAddr(), token)
	must(t, os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(cfg), 0o644))
	logFile := filepath.Join(dir, "alertmanager.log")
	logw, err := os.Create(logFile)
	must(t, err)
	defer logw.Close()
	addr := freePort(t)
	am := exec.Command(bin, "--config.file="+filepath.Join(dir, "alertmanager.yml"), "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	am.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	am.Stdout, am.Stderr = logw, logw
	must(t, am.Start())
	t.Cleanup(func() { am.Process.Kill(); am.Wait() })
	amLog := func() string { b, _ := os.ReadFile(logFile); return string(b) }

	labels := map[string]string{"alertname": "RewindWebhookTest", "rewind_session": "fleet", "severity": "page"}
	alert, err := json.Marshal([]map[string]any{{"labels": labels, "annotations": map[string]string{"summary": "sent by the test"}}})
	must(t, err)
	// Post the alert once Alertmanager answers; then wait for the snapshot.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Post("http://"+addr+"/api/v2/alerts", "application/json", bytes.NewReader(alert))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Alertmanager took no alert on %s in 60s (last: %v); its log:\n%s", addr, err, amLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		for _, path := range snapshotFiles(t, d, "fleet") {
			r, err := snapshot.Open(path)
			if err != nil {
				continue
			}
			trig := r.Meta().Trigger
			r.Close()
			if trig.Firing != nil && maps.Equal(trig.Firing.Labels, labels) && trig.Firing.Condition == "RewindWebhookTest" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot of session fleet carrying the alert's labels %v in 60s; snapshots %v; Alertmanager's log:\n%s",
				labels, snapshotFiles(t, d, "fleet"), amLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
