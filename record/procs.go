package record

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/rewindtrace/rewind/snapshot"
)

// ReadProcs reads the process and thread table from procfs. Processes that
// exit while it reads are skipped.
func ReadProcs(procfs string) ([]snapshot.Proc, error) {
	ents, err := os.ReadDir(procfs)
	if err != nil {
		return nil, err
	}
	var out []snapshot.Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(procfs, e.Name())
		comm, ppid, ok := readStat(filepath.Join(dir, "stat"))
		if !ok {
			continue
		}
		p := snapshot.Proc{PID: pid, PPID: ppid, Comm: comm}
		if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil && len(b) > 0 {
			p.Cmdline = strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		}
		tasks, _ := os.ReadDir(filepath.Join(dir, "task"))
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, "task", t.Name(), "comm"))
			if err != nil {
				continue
			}
			p.Threads = append(p.Threads, snapshot.Thread{TID: tid, Comm: strings.TrimSuffix(string(b), "\n")})
		}
		sort.Slice(p.Threads, func(i, j int) bool { return p.Threads[i].TID < p.Threads[j].TID })
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// readStat returns comm and ppid from /proc/<pid>/stat. The comm sits in
// parentheses and may itself contain spaces and parentheses.
func readStat(path string) (comm string, ppid int, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, false
	}
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return "", 0, false
	}
	fields := strings.Fields(string(b[close+1:]))
	if len(fields) < 2 {
		return "", 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	return string(b[open+1 : close]), ppid, err == nil
}
