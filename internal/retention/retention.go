// Package retention keeps a directory of snapshots within caps on their
// number, bytes and age, deleting the oldest first and only files rewind
// wrote.
package retention

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rewindtrace/rewind/snapshot"
)

// Policy caps the snapshots in a directory. A zero field sets no cap.
type Policy struct {
	MaxFiles int           // snapshots kept
	MaxBytes uint64        // their total size
	MaxAge   time.Duration // how old the oldest may be, by modification time
}

// Result says what Apply did and what it left.
type Result struct {
	// Removed are the paths of the snapshots deleted, oldest first, and
	// RemovedBytes their total size.
	Removed      []string
	RemovedBytes uint64
	// Files and Bytes count the snapshots that remain.
	Files int
	Bytes uint64
	// Others counts the directory's entries Apply left alone because
	// rewind did not write them (or is still writing them); they count
	// towards no cap.
	Others int
	// Met is whether every cap holds on what remains. It is false only
	// when a snapshot could not be deleted; the error says why.
	Met bool
}

// Suffix ends the name of every snapshot file Apply considers.
const Suffix = ".rwd"

// Apply deletes snapshots in dir, oldest first (by modification time, then
// by name), until at most p.MaxFiles remain, holding at most p.MaxBytes,
// none older than p.MaxAge at now. A cap may take every snapshot, the
// newest too.
//
// Only files rewind wrote are deleted: regular files (not symbolic links)
// whose name ends in Suffix and which start with the snapshot magic.
// Anything else — other names, links, directories, files with the wrong
// magic, and the temporary files of a snapshot being written, which are
// named ".NAME.rwd.*.tmp" — is never touched and counts towards no cap.
// A file is deleted only if it is still the one examined (same inode,
// still a regular file).
//
// A snapshot that cannot be deleted is skipped and the next oldest
// considered; the error joins every such failure and Result.Met says
// whether the caps hold regardless. Apply fails outright only when dir
// cannot be read.
//
// Apply keeps no state and may run while snapshots are written into dir:
// a snapshot appears under its final name only once complete. Two Applys
// on one directory at once do no harm but may each find a file the other
// deleted gone, so their Results undercount; callers should run one at a
// time per directory.
func Apply(dir string, p Policy, now time.Time) (Result, error) {
	var res Result
	ents, err := os.ReadDir(dir)
	if err != nil {
		return res, fmt.Errorf("apply retention: %w", err)
	}
	var snaps []file
	for _, e := range ents {
		f, ok := examine(dir, e.Name())
		if !ok {
			res.Others++
			continue
		}
		snaps = append(snaps, f)
		res.Files++
		res.Bytes += f.size
	}
	slices.SortFunc(snaps, func(a, b file) int {
		if c := a.mtime.Compare(b.mtime); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	tooOld := func(f file) bool { return p.MaxAge > 0 && now.Sub(f.mtime) > p.MaxAge }
	var errs []error
	var stuck []file // snapshots that could not be removed
	for _, f := range snaps {
		over := (p.MaxFiles > 0 && res.Files > p.MaxFiles) || (p.MaxBytes > 0 && res.Bytes > p.MaxBytes)
		if !over && !tooOld(f) {
			break // the rest are newer
		}
		err := remove(f)
		if errors.Is(err, os.ErrNotExist) {
			res.Files-- // gone already: another Apply, or a person
			res.Bytes -= f.size
			continue
		}
		if err != nil {
			errs = append(errs, err)
			stuck = append(stuck, f)
			continue
		}
		res.Removed = append(res.Removed, f.path)
		res.RemovedBytes += f.size
		res.Files--
		res.Bytes -= f.size
	}
	res.Met = (p.MaxFiles <= 0 || res.Files <= p.MaxFiles) && (p.MaxBytes == 0 || res.Bytes <= p.MaxBytes)
	// The loop stopped at the first snapshot young enough, or visited
	// them all: only a stuck one can be too old.
	if slices.ContainsFunc(stuck, tooOld) {
		res.Met = false
	}
	return res, errors.Join(errs...)
}

// file is a snapshot as examined.
type file struct {
	path  string
	info  os.FileInfo // from Lstat, to check it is still the same file
	size  uint64
	mtime time.Time
}

// examine reports whether dir/name is a snapshot rewind wrote.
func examine(dir, name string) (file, bool) {
	if !strings.HasSuffix(name, Suffix) {
		return file{}, false
	}
	path := filepath.Join(dir, name)
	info, err := os.Lstat(path)
	if err != nil || !info.Mode().IsRegular() {
		return file{}, false
	}
	f, err := os.Open(path)
	if err != nil {
		return file{}, false
	}
	defer f.Close()
	// Opening follows a link: make sure what was opened is what Lstat saw.
	if st, err := f.Stat(); err != nil || !os.SameFile(info, st) {
		return file{}, false
	}
	var magic [snapshot.MagicSize]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || !snapshot.HasMagic(magic[:]) {
		return file{}, false
	}
	return file{path: path, info: info, size: uint64(info.Size()), mtime: info.ModTime()}, true
}

// remove deletes f if its path still names the file examined.
func remove(f file) error {
	info, err := os.Lstat(f.path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() || !os.SameFile(info, f.info) {
		return fmt.Errorf("remove %s: replaced since it was examined", f.path)
	}
	return os.Remove(f.path)
}
