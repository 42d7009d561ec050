package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestGolden runs what docs/JSON.md promises, `info --json` and `analyze
// --format json`, on the snapshots pinned for every format version and
// compares the output with the golden files byte for byte. The snapshots
// are named by a path relative to this package, so that info's "file" and
// analyze's "snapshot.file" read the same wherever the tree is.
// `go test ./cmd/rewind -run Golden -update` rewrites the golden files.
func TestGolden(t *testing.T) {
	for _, version := range []string{"v1.0", "v1.1"} {
		file := filepath.Join("..", "..", "snapshot", "testdata", version+".rwd")
		for _, c := range []struct {
			name string
			args []string
		}{
			{"info", []string{"info", "--json", file}},
			{"analyze", []string{"analyze", "--format", "json", file}},
		} {
			t.Run(c.name+"-"+version, func(t *testing.T) {
				r := run(t, c.args...)
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("rewind %s: exit %d: %s", strings.Join(c.args, " "), r.code, r.stderr)
				}
				golden := filepath.Join("testdata", "golden", c.name+"-"+version+".json")
				if *update {
					if err := os.WriteFile(golden, []byte(r.stdout), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (go test -run Golden -update writes it)", err)
				}
				if line, got, exp, ok := firstDiff([]byte(r.stdout), want); !ok {
					t.Errorf("rewind %s differs from %s at line %d:\n got: %s\nwant: %s\n(if the change is meant, go test -run Golden -update)",
						strings.Join(c.args, " "), golden, line, got, exp)
				}
			})
		}
	}
}

// firstDiff compares got with want line by line and returns the first line
// that differs, or ok when none does.
func firstDiff(got, want []byte) (line int, g, w string, ok bool) {
	if bytes.Equal(got, want) {
		return 0, "", "", true
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(gl), len(wl)); i++ {
		g, w = "(end)", "(end)"
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			return i + 1, g, w, false
		}
	}
	return 0, "", "", false
}
