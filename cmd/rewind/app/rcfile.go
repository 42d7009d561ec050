package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/internal/atomicfile"
)

const rcKey = "session="

func rcPath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the default session: %w", err)
	}
	return filepath.Join(home, ".rewindrc"), nil
}

// readDefault returns the default session, or "" when there is none.
func readDefault() (string, error) {
	path, err := rcPath()
	if err != nil {
		return "", err
	}
	lines, err := readRC(path)
	if err != nil {
		return "", err
	}
	name := ""
	for _, l := range lines {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), rcKey); ok {
			name = strings.TrimSpace(v)
		}
	}
	if name != "" {
		if err := api.CheckName(path+": session", name); err != nil {
			return "", err
		}
	}
	return name, nil
}

// writeDefault makes name the default session.
func writeDefault(name string) error {
	return editRC(func(lines []string) []string {
		out := slices.DeleteFunc(lines, isSessionLine)
		return append(out, rcKey+name)
	})
}

// clearDefault removes the default session if it is name.
func clearDefault(name string) error {
	return editRC(func(lines []string) []string {
		return slices.DeleteFunc(lines, func(l string) bool {
			v, ok := strings.CutPrefix(strings.TrimSpace(l), rcKey)
			return ok && strings.TrimSpace(v) == name
		})
	})
}

func isSessionLine(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), rcKey) }

// readRC returns the lines of the file at path; none when it is missing.
func readRC(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(string(b)) == "" {
		return nil, nil
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n"), nil
}

// editRC rewrites ~/.rewindrc with edit's lines, atomically: a temporary
// file (mode 0600, as os.CreateTemp makes it) renamed over it, or over the
// file a symlink points at. With no lines left the file goes.
func editRC(edit func([]string) []string) (err error) {
	path, err := rcPath()
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	lines, err := readRC(path)
	if err != nil {
		return err
	}
	old := lines
	if lines = edit(slices.Clone(old)); slices.Equal(lines, old) {
		return nil
	}
	if strings.TrimSpace(strings.Join(lines, "")) == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return atomicfile.WriteBytes(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}
