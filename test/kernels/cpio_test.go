package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// cpioEntry is one entry read back by readCpio.
type cpioEntry struct {
	name         string
	mode         uint64
	rdev         [2]uint64
	data         string
	headerOffset int
}

// readCpio parses newc the way the kernel's init/initramfs.c does, checking
// the magic and the 4-byte alignment of every header and body.
func readCpio(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	field := func(i int) uint64 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+6+8*i+8]), 16, 32)
		if err != nil {
			t.Fatalf("header at %d field %d: %v", off, i, err)
		}
		return v
	}
	for {
		if off%4 != 0 || off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at offset %d", off)
		}
		size, nameSize := int(field(6)), int(field(11))
		nameStart := off + 110
		name := string(b[nameStart : nameStart+nameSize-1])
		if b[nameStart+nameSize-1] != 0 {
			t.Fatalf("entry %s: name not NUL-terminated", name)
		}
		dataStart := (nameStart + nameSize + 3) &^ 3
		e := cpioEntry{name: name, mode: field(1), rdev: [2]uint64{field(9), field(10)},
			data: string(b[dataStart : dataStart+size]), headerOffset: off}
		if name == "TRAILER!!!" {
			if end := (dataStart + size + 3) &^ 3; end != len(b) {
				t.Errorf("trailer ends at %d, archive at %d", end, len(b))
			}
			return out
		}
		out = append(out, e)
		off = (dataStart + size + 3) &^ 3
	}
}

func TestCpioWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	c := &cpioWriter{w: &buf}
	c.dir("bin", 0o755)
	c.copyFile("bin/tool", 0o755, path)
	c.symlink("bin/sh", "busybox")
	c.charDev("dev/console", 0o600, 5, 1)
	c.bytesFile("init", 0o755, "#!/bin/sh\n")
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	want := []cpioEntry{
		{name: "bin", mode: modeDir | 0o755},
		{name: "bin/tool", mode: modeFile | 0o755, data: "12345"},
		{name: "bin/sh", mode: modeSymlink | 0o777, data: "busybox"},
		{name: "dev/console", mode: modeCharDev | 0o600, rdev: [2]uint64{5, 1}},
		{name: "init", mode: modeFile | 0o755, data: "#!/bin/sh\n"},
	}
	got := readCpio(t, buf.Bytes())
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.name != w.name || g.mode != w.mode || g.rdev != w.rdev || g.data != w.data {
			t.Errorf("entry %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestCpioWriterMissingFile(t *testing.T) {
	c := &cpioWriter{w: &bytes.Buffer{}}
	c.copyFile("x", 0o644, filepath.Join(t.TempDir(), "missing"))
	if err := c.close(); err == nil {
		t.Fatal("close after a failed copyFile: want the error, got nil")
	}
}
