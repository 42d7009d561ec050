package daemon

import (
	"bufio"
	_ "embed"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/internal/units"
)

// DefaultConfigText is the configuration built in: every key, with its
// default and what it means.
//
//go:embed rewind.conf
var DefaultConfigText string

// DefaultConfigFile is read when it exists and no other is named.
const DefaultConfigFile = "/etc/rewind/rewind.conf"

// ConfigError names the file, line and key of a configuration error.
type ConfigError struct {
	File string
	Line int
	Key  string
	Err  error
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: %s: %v", e.File, e.Line, e.Key, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// ParseConfig reads `key = value` lines over base: the keys given replace
// base's values. name is the file's name in errors.
func ParseConfig(name string, r io.Reader, base Config) (Config, error) {
	cfg := base
	sc := bufio.NewScanner(r)
	seen := map[string]int{}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		fail := func(err error) error { return &ConfigError{File: name, Line: n, Key: key, Err: err} }
		if !ok {
			return cfg, &ConfigError{File: name, Line: n, Err: fmt.Errorf("%q: want key = value", line)}
		}
		if prev, dup := seen[key]; dup {
			return cfg, fail(fmt.Errorf("set again (first on line %d)", prev))
		}
		seen[key] = n
		switch key {
		case "socket", "output_root", "sessions_dir":
			if value != "" && !filepath.IsAbs(value) {
				return cfg, fail(fmt.Errorf("%q: want an absolute path", value))
			}
			if value == "" && key != "sessions_dir" {
				return cfg, fail(fmt.Errorf("want a path"))
			}
			*map[string]*string{"socket": &cfg.Socket, "output_root": &cfg.OutputRoot, "sessions_dir": &cfg.SessionsDir}[key] = value
		case "group":
			if value == "" {
				return cfg, fail(fmt.Errorf("want a group name"))
			}
			cfg.Group = value
		case "buffer_size":
			size, err := units.ParseSize(value)
			if err != nil {
				return cfg, fail(err)
			}
			cfg.BufferSize = size
		case "listen":
			if value != "none" {
				if _, _, err := net.SplitHostPort(value); err != nil {
					return cfg, fail(fmt.Errorf("%q: want HOST:PORT or none", value))
				}
			}
			cfg.Listen = value
		case "token_file":
			if value != "" && !filepath.IsAbs(value) {
				return cfg, fail(fmt.Errorf("%q: want an absolute path", value))
			}
			cfg.TokenFile = value
		case "alertmanager_sessions":
			names, all := splitSessions(value)
			if all && value != "all" {
				return cfg, fail(fmt.Errorf("%q: want session names, comma-separated, or all", value))
			}
			for _, name := range names {
				if err := api.CheckName("session name", name); err != nil {
					return cfg, fail(err)
				}
			}
			cfg.AlertmanagerSessions = value
		case "alertmanager_cooldown":
			d, err := time.ParseDuration(value)
			if err != nil || d < 0 {
				return cfg, fail(fmt.Errorf("%q: want a duration such as 5m, or 0 for none", value))
			}
			if d == 0 {
				d = -1 // none: Config's zero is the default
			}
			cfg.AlertmanagerCooldown = d
		case "retention_max_files":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 {
				return cfg, fail(fmt.Errorf("%q: want a count, 0 for no cap", value))
			}
			cfg.Retention.MaxFiles = n
		case "retention_max_bytes":
			size, err := units.ParseSize(value)
			if err != nil {
				return cfg, fail(err)
			}
			cfg.Retention.MaxBytes = size
		case "retention_max_age":
			d, err := time.ParseDuration(value)
			if err != nil || d < 0 {
				return cfg, fail(fmt.Errorf("%q: want a duration such as 168h, or 0 for no cap", value))
			}
			cfg.Retention.MaxAge = d
		case "crash_handler", "crash_chain":
			on, err := parseBool(value)
			if err != nil {
				return cfg, fail(err)
			}
			*map[string]*bool{"crash_handler": &cfg.Crash.Install, "crash_chain": &cfg.Crash.Chain}[key] = on
		case "crash_dir":
			if !filepath.IsAbs(value) {
				return cfg, fail(fmt.Errorf("%q: want an absolute path", value))
			}
			cfg.Crash.Dir = value
		case "crash_max_core":
			size, err := units.ParseSize(value)
			if err != nil {
				return cfg, fail(err)
			}
			cfg.Crash.MaxCore = size
		default:
			return cfg, fail(fmt.Errorf("no such key (keys: socket, group, output_root, sessions_dir, buffer_size, listen, token_file, alertmanager_sessions, alertmanager_cooldown, retention_max_files, retention_max_bytes, retention_max_age, crash_handler, crash_dir, crash_max_core, crash_chain)"))
		}
	}
	if err := sc.Err(); err != nil {
		return cfg, fmt.Errorf("read %s: %w", name, err)
	}
	if cfg.Listen != "none" && cfg.Listen != "" && cfg.TokenFile != "" {
		if _, err := readToken(cfg.TokenFile); err != nil {
			return cfg, &ConfigError{File: name, Line: seen["token_file"], Key: "token_file", Err: err}
		}
	}
	return cfg, nil
}

// parseBool reads on/off (and yes/no, true/false).
func parseBool(v string) (bool, error) {
	switch v {
	case "on", "yes", "true":
		return true, nil
	case "off", "no", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q: want on or off", v)
}

// LoadConfig reads the built-in defaults, then file over them: the named
// file, which must exist, or DefaultConfigFile when it exists.
func LoadConfig(file string) (Config, error) {
	cfg, err := ParseConfig("(built-in defaults)", strings.NewReader(DefaultConfigText), Config{})
	if err != nil {
		return cfg, err
	}
	if file == "" {
		if _, err := os.Stat(DefaultConfigFile); err != nil {
			return cfg, nil
		}
		file = DefaultConfigFile
	}
	f, err := os.Open(file)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return ParseConfig(file, f, cfg)
}

// readToken reads the bearer token: the first line of a file owned by
// root that no one else may read or write (mode 0600 or stricter).
func readToken(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || sys.Uid != 0 {
		return "", fmt.Errorf("token file %s must be owned by root", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s is mode %04o: it must be 0600 (readable by root alone)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	token, _, _ := strings.Cut(string(b), "\n")
	token = strings.TrimSpace(token)
	if len(token) < 16 {
		return "", fmt.Errorf("token file %s: the token is %d characters; want at least 16 (openssl rand -hex 32 makes one)", path, len(token))
	}
	return token, nil
}
