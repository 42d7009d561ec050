package counters

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/rewindtrace/rewind/snapshot"
)

// A reader is one file (or perf group) a source reads at each sample.
type reader interface {
	// read takes a sample; changed says its fields are not the ones
	// fields returned before.
	read() (changed bool, err error)
	fields() []snapshot.SeriesField
	// values writes the sample's values, one per field.
	values(row []uint64)
	close() error
}

// file is a reader of one text file.
type file struct {
	path     string
	f        *os.File
	sc       *scanner
	describe describer
	buf      []byte
	nums     []int64
	hash     uint64
	count    int
	fs       []field
	named    []snapshot.SeriesField
}

func openFile(path, seps string, d describer) (*file, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r := &file{path: path, f: f, sc: newScanner(seps), describe: d, buf: make([]byte, 8192), nums: make([]int64, 0, 1024)}
	if _, err := r.read(); err != nil {
		f.Close()
		return nil, err
	}
	if len(r.fs) == 0 {
		f.Close()
		return nil, fmt.Errorf("%s: no values found in it", path)
	}
	return r, nil
}

func (r *file) read() (bool, error) {
	var n int
	for {
		var err error
		n, err = r.f.ReadAt(r.buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("read %s: %w", r.path, err)
		}
		if n < len(r.buf) {
			break
		}
		r.buf = make([]byte, 2*len(r.buf)) // the file grew: rare
	}
	var h uint64
	r.nums, h = r.sc.numbers(r.buf[:n], r.nums[:0])
	if h == r.hash && len(r.nums) == r.count && r.fs != nil {
		return false, nil
	}
	r.hash, r.count = h, len(r.nums)
	r.fs = r.describe(r.sc.tokens(r.buf[:n]))
	r.named = make([]snapshot.SeriesField, len(r.fs))
	for i, f := range r.fs {
		r.named[i] = f.SeriesField
	}
	return true, nil
}

func (r *file) fields() []snapshot.SeriesField { return r.named }

func (r *file) values(row []uint64) {
	for i, f := range r.fs {
		v := r.nums[f.num]
		if f.mul > 1 {
			v *= f.mul
		}
		row[i] = uint64(v)
	}
}

func (r *file) close() error { return r.f.Close() }

// Source is one named thing the sampler reads: a file, a few files, or a
// group of perf counters. It is not safe for concurrent use: a Sampler
// reads its sources under its lock.
type Source struct {
	Name    string
	readers []reader
	fields  []snapshot.SeriesField
	width   []int // fields per reader
}

// read takes one sample; changed says the fields are not the ones Fields
// returned before (the first read, a disk or interface appearing).
func (s *Source) read() (changed bool, err error) {
	for _, r := range s.readers {
		c, err := r.read()
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	if changed || s.fields == nil {
		s.fields = s.fields[:0]
		s.width = s.width[:0]
		for _, r := range s.readers {
			f := r.fields()
			s.fields = append(s.fields, f...)
			s.width = append(s.width, len(f))
		}
		changed = true
	}
	return changed, nil
}

// values writes the last sample's values into row, one per field.
func (s *Source) values(row []uint64) {
	off := 0
	for i, r := range s.readers {
		r.values(row[off : off+s.width[i]])
		off += s.width[i]
	}
}

// Fields are the values each sample holds, as of the last read.
func (s *Source) Fields() []snapshot.SeriesField { return s.fields }

func (s *Source) close() error {
	var errs []error
	for _, r := range s.readers {
		errs = append(errs, r.close())
	}
	return errors.Join(errs...)
}

// Unavailable is a counter, or a part of one, that this machine cannot
// read, and why.
type Unavailable struct {
	Name string `json:"name"`
	Why  string `json:"why"`
}

// fileSpec is one file of a source: its path, the bytes besides white space
// that separate its tokens, and how to name its numbers.
type fileSpec struct {
	path, seps string
	describe   describer
}

// sourceSpecs are the sources by name; cgroups are "cgroup:PATH".
var sourceSpecs = map[string][]fileSpec{
	"cpu":    {{"/proc/stat", "", describeStat}},
	"memory": {{"/proc/meminfo", "", describeKeyValue(meminfoUnit)}},
	"vm":     {{"/proc/vmstat", "", describeKeyValue(vmstatUnit)}},
	"disk":   {{"/proc/diskstats", "", describeDiskstats}},
	"net":    {{"/proc/net/dev", ":", describeNetdev}},
	"tcp":    {{"/proc/net/snmp", "", describeSNMP}, {"/proc/net/netstat", "", describeSNMP}},
	"pressure": {{"/proc/pressure/cpu", "=", describePressure("cpu")}, {"/proc/pressure/io", "=", describePressure("io")},
		{"/proc/pressure/memory", "=", describePressure("memory")}},
	"load":       {{"/proc/loadavg", "/", describeLoadavg}},
	"softirqs":   {{"/proc/softirqs", "", describePerCPU("softirqs", "vec")}},
	"interrupts": {{"/proc/interrupts", "", describePerCPU("interrupts", "irq")}},
}

// Names lists the sources: those above, "perf", and "cgroup:PATH".
var Names = []string{"cpu", "memory", "vm", "disk", "net", "tcp", "pressure", "load", "softirqs", "interrupts", "perf"}

// Default is the sources recorded unless told otherwise. perf is left out:
// reading another CPU's counters takes an interrupt on that CPU, each time.
var Default = []string{"cpu", "memory", "pressure", "load", "disk", "net"}

// Describe says what each source reads.
var Describe = map[string]string{
	"cpu":        "/proc/stat: per-CPU time by state (ns), context switches, forks, running and blocked tasks",
	"memory":     "/proc/meminfo (bytes)",
	"vm":         "/proc/vmstat: faults, reclaim, swap, ...",
	"disk":       "/proc/diskstats per device: I/Os, bytes, time",
	"net":        "/proc/net/dev per interface: bytes, packets, errors, drops",
	"tcp":        "/proc/net/snmp and /proc/net/netstat: TCP retransmits, resets, listen drops, UDP errors, ...",
	"pressure":   "/proc/pressure/{cpu,io,memory}: stall averages and totals",
	"load":       "/proc/loadavg",
	"softirqs":   "/proc/softirqs per vector and CPU",
	"interrupts": "/proc/interrupts per line and CPU",
	"perf":       "perf_event_open counters per CPU: context switches, migrations, page faults; cycles, instructions, cache and branch misses where the CPU has a PMU",
	"cgroup":     "cgroup:PATH: the cgroup v2 directory's cpu.stat, memory.current and io.stat",
}

// Open opens a source by name. Parts the machine lacks are returned as
// unavailable; a source with no part at all is an error.
func Open(name string, cpus int) (_ *Source, missing []Unavailable, err error) {
	s := &Source{Name: name}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	var specs []fileSpec
	switch {
	case name == "perf":
		g, missing, err := openPerf(cpus)
		if err != nil {
			return nil, missing, fmt.Errorf("counter source %q: %w", name, err)
		}
		s.readers = append(s.readers, g)
		return s, missing, nil
	case strings.HasPrefix(name, "cgroup:"):
		dir := strings.TrimPrefix(name, "cgroup:")
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, nil, fmt.Errorf("counter source %q: %s is not a cgroup directory", name, dir)
		}
		specs = []fileSpec{
			{filepath.Join(dir, "cpu.stat"), "", describeKeyValue(cgroupCPUUnit)},
			{filepath.Join(dir, "memory.current"), "", describeSingle("memory_current", "bytes", snapshot.SeriesGauge)},
			{filepath.Join(dir, "io.stat"), "=", describeIOStat},
		}
	default:
		var ok bool
		if specs, ok = sourceSpecs[name]; !ok {
			return nil, nil, fmt.Errorf("counter source %q: unknown; sources: %s, cgroup:PATH", name, strings.Join(Names, ", "))
		}
	}
	for _, sp := range specs {
		r, err := openFile(sp.path, sp.seps, sp.describe)
		if err != nil {
			missing = append(missing, Unavailable{name + " " + sp.path, whyMissing(sp.path, err)})
			continue
		}
		s.readers = append(s.readers, r)
	}
	if len(s.readers) == 0 {
		why := "nothing to read"
		if len(missing) > 0 {
			why = missing[0].Why
		}
		return nil, missing, fmt.Errorf("counter source %q: %s", name, why)
	}
	return s, missing, nil
}

func whyMissing(path string, err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist) && strings.HasPrefix(path, "/proc/pressure/"):
		return "the kernel has no pressure stall information (CONFIG_PSI off, or psi=0 on its command line)"
	case errors.Is(err, os.ErrNotExist) && strings.HasSuffix(path, "memory.current"):
		return "the memory controller is not enabled in this cgroup v2 hierarchy (on a hybrid system it is on cgroup v1)"
	case errors.Is(err, os.ErrNotExist) && strings.HasSuffix(path, "io.stat"):
		return "the io controller is not enabled in this cgroup v2 hierarchy"
	}
	return err.Error()
}
