// Package gencheck fails a test when rerunning `go generate` would change a
// committed file.
package gencheck

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Check copies the module into a temporary directory, runs go generate on
// pkg (a path relative to the module root) there, and compares each of files
// (relative to pkg) with the committed one.
func Check(t *testing.T, pkg string, files []string) {
	t.Helper()
	root := moduleRoot(t)
	tmp := t.TempDir()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && (rel == ".git" || rel == "bin" || strings.HasPrefix(d.Name(), ".") && rel != ".") {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(tmp, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		os.Remove(filepath.Join(tmp, pkg, f))
	}
	cmd := exec.Command("go", "generate", "./"+pkg)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go generate ./%s: %v\n%s", pkg, err, out)
	}
	for _, f := range files {
		want, err := os.ReadFile(filepath.Join(root, pkg, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(tmp, pkg, f))
		if err != nil {
			t.Fatalf("go generate did not write %s: %v", f, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s/%s is stale: `make generate` changes it (%d bytes now, %d committed)", pkg, f, len(got), len(want))
		}
	}
}

func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}
