// Package crash captures crashes through the kernel's core_pattern: Install
// points the pattern at `rewind crash handle`, remembering the previous
// one, Uninstall puts that back byte for byte, and Handle (run by the
// kernel, the core on its standard input) saves the core, the process's
// state from /proc and the snapshots into a crash record.
package crash

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rewindtrace/rewind/internal/atomicfile"
)

// Paths the handler and the commands share by default.
const (
	DefaultState = "/var/lib/rewind/crash-handler.json"
	DefaultDir   = "/var/lib/rewind/crashes"
	// DefaultMaxCore bounds a saved core, before compression.
	DefaultMaxCore = 4 << 30
	// PatternFile is the kernel's core_pattern.
	PatternFile = "/proc/sys/kernel/core_pattern"
	// patternMax is the longest pattern the kernel keeps (CORENAME_MAX_SIZE
	// less the terminating zero).
	patternMax = 127
)

// Specifiers are what the handler asks the kernel for, in order (core(5)):
// the crashing process's pid and thread id in the initial pid namespace,
// the signal, the time, the uid and gid, the dump mode, the core size
// limit (RLIMIT_CORE), and the executable's path with '/' written '!'.
const Specifiers = "%P %i %s %t %u %g %d %c %E"

// State is what Install remembers: the pattern it replaced, the one it
// set, and the handler's settings. It lives in a file of root's (the
// handler, started by the kernel with an empty environment, reads it
// there).
type State struct {
	// Previous is the pattern before Install, without the newline the
	// kernel adds when it is read.
	Previous string `json:"previous"`
	Pattern  string `json:"pattern"`
	Dir      string `json:"dir"`
	MaxCore  uint64 `json:"max_core"`
	// Chain passes each core on to Previous: a pipe handler gets it on
	// its standard input, a file pattern gets the file.
	Chain bool `json:"chain,omitempty"`
	// Socket is the daemon's, asked for snapshots; empty: none asked.
	Socket    string    `json:"socket,omitempty"`
	Installed time.Time `json:"installed"`
}

// Options configure Install.
type Options struct {
	Rewind  string // the rewind binary the kernel runs; absolute
	State   string // the state file (DefaultState)
	Dir     string // crash records (DefaultDir)
	MaxCore uint64 // 0: DefaultMaxCore
	Chain   bool
	Socket  string
	// PatternFile is the pattern to change (PatternFile); tests point it
	// elsewhere only to check what would be written.
	PatternFile string
}

func (o *Options) defaults() {
	if o.State == "" {
		o.State = DefaultState
	}
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.MaxCore == 0 {
		o.MaxCore = DefaultMaxCore
	}
	if o.PatternFile == "" {
		o.PatternFile = PatternFile
	}
}

// ReadPattern returns the pattern without the kernel's trailing newline.
func ReadPattern(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// writePattern writes p and reads it back: the kernel truncates a pattern
// too long and rejects none, so the read-back is the only check.
func writePattern(file, p string) error {
	if err := os.WriteFile(file, []byte(p), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	got, err := ReadPattern(file)
	if err != nil {
		return err
	}
	if got != p {
		return fmt.Errorf("%s reads back %q after writing %q", file, got, p)
	}
	return nil
}

// Pattern is the core_pattern that runs the handler with a state file.
func Pattern(rewind, state string) string {
	p := "|" + rewind + " crash handle"
	if state != DefaultState {
		p += " --state " + state
	}
	return p + " " + Specifiers
}

// IsOurs says whether a pattern runs rewind's handler.
func IsOurs(p string) bool {
	return strings.HasPrefix(p, "|") && strings.Contains(p, " crash handle ") && strings.HasSuffix(p, Specifiers)
}

// Install points core_pattern at the handler and remembers the previous
// pattern in the state file first, so that Uninstall can always put it
// back. It refuses when the handler is installed already.
func Install(o Options) (*State, error) {
	o.defaults()
	if !filepath.IsAbs(o.Rewind) || !filepath.IsAbs(o.State) || !filepath.IsAbs(o.Dir) {
		return nil, fmt.Errorf("crash install: the rewind binary, the state file and the directory need absolute paths (%q, %q, %q)", o.Rewind, o.State, o.Dir)
	}
	for _, p := range []string{o.Rewind, o.State} {
		if strings.ContainsAny(p, " %\t\n") {
			return nil, fmt.Errorf("crash install: %q: the kernel splits its pattern at spaces and expands %%, so the path may hold neither", p)
		}
	}
	prev, err := ReadPattern(o.PatternFile)
	if err != nil {
		return nil, err
	}
	if IsOurs(prev) {
		return nil, fmt.Errorf("crash install: the handler is installed already (%s is %q); rewind crash uninstall first", o.PatternFile, prev)
	}
	pattern := Pattern(o.Rewind, o.State)
	if len(pattern) > patternMax {
		return nil, fmt.Errorf("crash install: the pattern %q is %d bytes, the kernel keeps %d: install rewind or the state file at a shorter path", pattern, len(pattern), patternMax)
	}
	st := &State{Previous: prev, Pattern: pattern, Dir: o.Dir, MaxCore: o.MaxCore, Chain: o.Chain, Socket: o.Socket, Installed: time.Now()}
	if err := saveState(o.State, st); err != nil {
		return nil, err
	}
	if err := writePattern(o.PatternFile, pattern); err != nil {
		// Put back what may have been half changed, and forget.
		errs := []error{err}
		if cur, rerr := ReadPattern(o.PatternFile); rerr != nil || cur != prev {
			errs = append(errs, writePattern(o.PatternFile, prev))
		}
		errs = append(errs, os.Remove(o.State))
		return nil, errors.Join(errs...)
	}
	return st, nil
}

// Uninstall restores the pattern Install replaced, byte for byte, and
// removes the state file. When the pattern is no longer the handler's
// (someone changed it since), it leaves it unless force is set.
func Uninstall(stateFile, patternFile string, force bool) (*State, error) {
	if stateFile == "" {
		stateFile = DefaultState
	}
	if patternFile == "" {
		patternFile = PatternFile
	}
	st, err := LoadState(stateFile)
	if err != nil {
		return nil, err
	}
	cur, err := ReadPattern(patternFile)
	if err != nil {
		return nil, err
	}
	if cur != st.Pattern && !force {
		return nil, fmt.Errorf("crash uninstall: %s is %q, not the handler's %q: someone changed it since install; --force puts back %q anyway", patternFile, cur, st.Pattern, st.Previous)
	}
	if err := writePattern(patternFile, st.Previous); err != nil {
		return nil, err
	}
	if err := os.Remove(stateFile); err != nil {
		return nil, fmt.Errorf("crash uninstall: restored %s, but: %w", patternFile, err)
	}
	return st, nil
}

// LoadState reads the state file Install wrote.
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("the crash handler is not installed (no %s): rewind crash install", path)
	}
	if err != nil {
		return nil, err
	}
	var st State
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.Pattern == "" || st.Dir == "" {
		return nil, fmt.Errorf("%s: no pattern or directory", path)
	}
	return &st, nil
}

func saveState(path string, st *State) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, append(b, '\n'), 0o640)
}
