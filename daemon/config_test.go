package daemon

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBuiltInConfig(t *testing.T) {
	cfg, err := ParseConfig("built-in", strings.NewReader(DefaultConfigText), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Socket != "/run/rewind/rewind.sock" || cfg.Group != DefaultGroup || cfg.OutputRoot != DefaultOutputRoot ||
		cfg.SessionsDir != DefaultSessionsDir || cfg.BufferSize != 64<<20 || cfg.Listen != "none" || cfg.TokenFile != "" {
		t.Errorf("built-in configuration: %+v", cfg)
	}
}

// TestConfigErrors: each error names the file, the line and the key.
func TestConfigErrors(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ text, says string }{
		{"socket = relative/path", "f.conf:1: socket: \"relative/path\": want an absolute path"},
		{"# comment\n\nbuffer_size = lots", "f.conf:3: buffer_size:"},
		{"group =", "f.conf:1: group: want a group name"},
		{"listen = 9477", "f.conf:1: listen: \"9477\": want HOST:PORT or none"},
		{"listen = :9477\nlisten = :9478", "f.conf:2: listen: set again (first on line 1)"},
		{"colour = blue", "f.conf:1: colour: no such key"},
		{"just words", "f.conf:1: \"just words\": want key = value"},
		{"listen = 127.0.0.1:0\ntoken_file = " + token, "f.conf:2: token_file: token file " + token + " is mode 0644"},
	} {
		_, err := ParseConfig("f.conf", strings.NewReader(tc.text), Config{})
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: %v, want an error saying %q", tc.text, err, tc.says)
		}
	}
	os.Chmod(token, 0o600)
	cfg, err := ParseConfig("f.conf", strings.NewReader("listen = 127.0.0.1:0 # comment\ntoken_file = "+token), Config{Group: "g"})
	if err != nil || cfg.Listen != "127.0.0.1:0" || cfg.TokenFile != token || cfg.Group != "g" {
		t.Errorf("good file: %+v, %v", cfg, err)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.conf")); err == nil {
		t.Error("a named configuration file that does not exist was taken")
	}
}

// TestHTTPNeedsToken: over TCP the control API wants the bearer token.
func TestHTTPNeedsToken(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	const secret = "0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(token, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := startDaemon(t, Config{Listen: "127.0.0.1:0", TokenFile: token})
	url := "http://" + d.HTTPAddr() + "/v1/status"
	get := func(auth string) (int, string, string) {
		req, err := http.NewRequestWithContext(context.Background(), "GET", url, nil)
		must(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("WWW-Authenticate")
	}
	for _, auth := range []string{"", "Bearer wrong", "Basic " + secret, secret} {
		if code, body, challenge := get(auth); code != http.StatusUnauthorized || !strings.Contains(body, "bearer token") || challenge == "" {
			t.Errorf("Authorization %q: %d %s (WWW-Authenticate %q), want 401", auth, code, body, challenge)
		}
	}
	if code, body, _ := get("Bearer " + secret); code != http.StatusOK {
		t.Errorf("with the token: %d %s", code, body)
	}
	// Without a token file, HTTP control is refused outright.
	d2, _ := startDaemon(t, Config{Listen: "127.0.0.1:0"})
	resp, err := http.Get("http://" + d2.HTTPAddr() + "/v1/sessions")
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "token_file") {
		t.Errorf("no token configured: %d %s", resp.StatusCode, b)
	}
}

// TestConfigAlertmanager: the webhook's keys, their defaults and their
// errors.
func TestConfigAlertmanager(t *testing.T) {
	cfg, err := ParseConfig("built-in", strings.NewReader(DefaultConfigText), Config{})
	if err != nil || cfg.AlertmanagerSessions != "all" || cfg.AlertmanagerCooldown != DefaultAlertmanagerCooldown {
		t.Errorf("built-in: sessions %q, cooldown %v (%v); want all and %v", cfg.AlertmanagerSessions, cfg.AlertmanagerCooldown, err, DefaultAlertmanagerCooldown)
	}
	for _, tc := range []struct {
		text     string
		sessions string
		cooldown time.Duration
	}{
		{"alertmanager_sessions = web, db\nalertmanager_cooldown = 90s", "web, db", 90 * time.Second},
		{"alertmanager_cooldown = 0", "", -1}, // none
	} {
		cfg, err := ParseConfig("f.conf", strings.NewReader(tc.text), Config{})
		if err != nil || cfg.AlertmanagerSessions != tc.sessions || cfg.AlertmanagerCooldown != tc.cooldown {
			t.Errorf("%q: sessions %q, cooldown %v (%v); want %q and %v", tc.text, cfg.AlertmanagerSessions, cfg.AlertmanagerCooldown, err, tc.sessions, tc.cooldown)
		}
	}
	for _, tc := range []struct{ text, says string }{
		{"alertmanager_sessions =", `f.conf:1: alertmanager_sessions: "": want session names, comma-separated, or all`},
		{"alertmanager_sessions = web,../etc", `f.conf:1: alertmanager_sessions: session name "../etc"`},
		{"alertmanager_cooldown = soon", `f.conf:1: alertmanager_cooldown: "soon": want a duration`},
		{"alertmanager_cooldown = -1m", `f.conf:1: alertmanager_cooldown: "-1m": want a duration`},
	} {
		_, err := ParseConfig("f.conf", strings.NewReader(tc.text), Config{})
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: %v, want an error saying %q", tc.text, err, tc.says)
		}
	}
}
