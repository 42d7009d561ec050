// Package sysx is the one place that talks to golang.org/x/sys/unix for what
// cilium/ebpf does not wrap: mmap of BPF maps, uname, clocks, tracefs and
// capabilities.
package sysx

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Mapping is a shared memory mapping of a file descriptor.
type Mapping struct {
	Bytes []byte
}

// Mmap maps size bytes of fd shared, readable and writable. BPF array maps
// need BPF_F_MMAPABLE for this.
func Mmap(fd, size int) (*Mapping, error) {
	b, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes of fd %d: %w", size, fd, err)
	}
	return &Mapping{Bytes: b}, nil
}

// Close unmaps the memory; it is safe to call twice.
func (m *Mapping) Close() error {
	if m == nil || m.Bytes == nil {
		return nil
	}
	b := m.Bytes
	m.Bytes = nil
	return unix.Munmap(b)
}

// PageSize is the system page size.
func PageSize() int { return unix.Getpagesize() }

// Uname is the kernel's identity.
type Uname struct {
	Sysname, Nodename, Release, Version, Machine string
}

// GetUname returns uname(2).
func GetUname() (Uname, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return Uname{}, fmt.Errorf("uname: %w", err)
	}
	s := func(b []byte) string { return strings.TrimRight(string(b), "\x00") }
	return Uname{s(u.Sysname[:]), s(u.Nodename[:]), s(u.Release[:]), s(u.Version[:]), s(u.Machine[:])}, nil
}

// Clocks reads CLOCK_BOOTTIME, CLOCK_MONOTONIC and CLOCK_REALTIME back to
// back, boottime twice around the others, and returns the midpoint for it.
func Clocks() (boot, mono, real int64) {
	var a, m, r, b unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &a)
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &m)
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &r)
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &b)
	return (a.Nano() + b.Nano()) / 2, m.Nano(), r.Nano()
}

// BootNow is CLOCK_BOOTTIME in ns, the clock BPF timestamps use.
func BootNow() uint64 {
	var t unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &t)
	return uint64(t.Nano())
}

// Gettid returns the calling thread's id.
func Gettid() int { return unix.Gettid() }

// Tracefs is where the kernel's tracing filesystem is mounted.
const Tracefs = "/sys/kernel/tracing"

// TracefsMounted reports whether tracefs is mounted at Tracefs.
func TracefsMounted() bool {
	var st unix.Statfs_t
	if err := unix.Statfs(Tracefs, &st); err != nil {
		return false
	}
	return st.Type == unix.TRACEFS_MAGIC
}

// MountTracefs mounts tracefs at Tracefs.
func MountTracefs() error {
	if err := unix.Mount("tracefs", Tracefs, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("mount tracefs at %s: %w", Tracefs, err)
	}
	return nil
}

// UnmountTracefs undoes MountTracefs.
func UnmountTracefs() error {
	if err := unix.Unmount(Tracefs, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", Tracefs, err)
	}
	return nil
}

// Capabilities that loading and attaching tracing programs needs.
const (
	CapSysAdmin = unix.CAP_SYS_ADMIN
	CapBPF      = unix.CAP_BPF
	CapPerfmon  = unix.CAP_PERFMON
)

// HasCap reports whether the process has capability c in its effective set.
func HasCap(c int) (bool, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, fmt.Errorf("capget: %w", err)
	}
	return data[c/32].Effective&(1<<(uint(c)%32)) != 0, nil
}

// IsNotPermitted reports whether err is EPERM or EACCES.
func IsNotPermitted(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, os.ErrPermission)
}

// ErrnoName returns the symbolic name of a Linux errno ("ENOENT"), or "".
func ErrnoName(errno int) string {
	if errno <= 0 || errno > 4095 {
		return ""
	}
	return unix.ErrnoName(unix.Errno(errno))
}

// SignalName returns the name of a Linux signal ("SIGKILL"), or "". x86_64
// and arm64 number signals alike.
func SignalName(sig int) string {
	if sig <= 0 || sig > 64 {
		return ""
	}
	return unix.SignalName(unix.Signal(sig))
}

// Cgroup2Mount returns where the cgroup v2 hierarchy is mounted
// (/sys/fs/cgroup on pure v2 systems, /sys/fs/cgroup/unified on hybrid ones).
func Cgroup2Mount() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		// "36 25 0:31 / /sys/fs/cgroup rw,... - cgroup2 cgroup2 rw"
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			return f[4], nil
		}
	}
	return "", errors.New("no cgroup2 filesystem is mounted")
}

// CgroupID returns the id BPF sees for the cgroup v2 directory at path
// (bpf_get_current_cgroup_id): its inode number.
func CgroupID(path string) (uint64, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", path, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("cgroup %s: not on a cgroup v2 filesystem", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", path, err)
	}
	return st.Ino, nil
}

// ThreadCPUTime is the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID);
// lock the goroutine to its thread around the work it measures.
func ThreadCPUTime() time.Duration {
	var t unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t)
	return time.Duration(t.Nano())
}

// RaiseThreadPriority sets the calling thread's nice value (lock the
// goroutine to its thread first) and returns a function that restores the
// old one. It needs CAP_SYS_NICE to go below the current value; without it
// nothing changes and restore is a no-op.
func RaiseThreadPriority(nice int) (restore func()) {
	tid := unix.Gettid()
	// getpriority returns 20 - nice for PRIO_PROCESS.
	old, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return func() {}
	}
	if unix.Setpriority(unix.PRIO_PROCESS, tid, nice) != nil {
		return func() {}
	}
	return func() { _ = unix.Setpriority(unix.PRIO_PROCESS, tid, 20-old) }
}

// Perf event kinds, as perf_event_attr.type and .config name them.
const (
	PerfSoftware = unix.PERF_TYPE_SOFTWARE
	PerfHardware = unix.PERF_TYPE_HARDWARE

	PerfContextSwitches = unix.PERF_COUNT_SW_CONTEXT_SWITCHES
	PerfCPUMigrations   = unix.PERF_COUNT_SW_CPU_MIGRATIONS
	PerfPageFaults      = unix.PERF_COUNT_SW_PAGE_FAULTS
	PerfCycles          = unix.PERF_COUNT_HW_CPU_CYCLES
	PerfInstructions    = unix.PERF_COUNT_HW_INSTRUCTIONS
	PerfCacheMisses     = unix.PERF_COUNT_HW_CACHE_MISSES
	PerfBranchMisses    = unix.PERF_COUNT_HW_BRANCH_MISSES
)

// PerfCount opens a counting perf event for every task on cpu, in the
// group led by group (-1: it leads a group of its own; a leader reads the
// whole group's counts with one read, PERF_FORMAT_GROUP).
func PerfCount(typ uint32, config uint64, cpu, group int) (*os.File, error) {
	attr := unix.PerfEventAttr{Type: typ, Config: config, Size: uint32(unsafe.Sizeof(unix.PerfEventAttr{})), Read_format: unix.PERF_FORMAT_GROUP}
	fd, err := unix.PerfEventOpen(&attr, -1, cpu, group, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("perf event %d:%d cpu %d", typ, config, cpu)), nil
}

// PerfSample opens a sampling perf event on cpu: the software cpu-clock,
// hz times a second, for a BPF perf_event program to attach to.
func PerfSample(cpu int, hz uint64) (*os.File, error) {
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK,
		Size: uint32(unsafe.Sizeof(unix.PerfEventAttr{})), Sample: hz, Bits: unix.PerfBitFreq}
	fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("perf cpu-clock cpu %d", cpu)), nil
}

// IsNotSupported reports whether a perf_event_open error means the machine
// has no such event (no PMU, or the PMU lacks it).
func IsNotSupported(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODEV)
}

// SleepUntilBoot sleeps until CLOCK_BOOTTIME reads ns, on the calling thread.
func SleepUntilBoot(ns int64) {
	ts := unix.NsecToTimespec(ns)
	for unix.ClockNanosleep(unix.CLOCK_BOOTTIME, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
	}
}

// RaiseAutogroupPriority sets the nice value of the process's autogroup
// (/proc/self/autogroup): with autogroups on, the scheduler first shares
// CPUs between sessions, and a thread's own nice value only ranks it within
// its session. It returns a function that restores the old value; it is a
// no-op without CAP_SYS_NICE or an autogroup of its own (a process in the
// first session is in the root task group, where thread nice values
// already count against other sessions, and the file is empty).
func RaiseAutogroupPriority(nice int) (restore func()) {
	return raiseAutogroupPriority("/proc/self/autogroup", nice)
}

func raiseAutogroupPriority(path string, nice int) (restore func()) {
	b, err := os.ReadFile(path)
	if err != nil {
		return func() {}
	}
	// "/autogroup-2 nice 0"
	fs := strings.Fields(string(b))
	if len(fs) != 3 || fs[1] != "nice" {
		return func() {}
	}
	old, err := strconv.Atoi(fs[2])
	if err != nil || old <= nice {
		return func() {}
	}
	if os.WriteFile(path, []byte(strconv.Itoa(nice)), 0) != nil {
		return func() {}
	}
	return func() { _ = os.WriteFile(path, []byte(strconv.Itoa(old)), 0) }
}

// OnlineCPUs reads which CPUs are online (/sys/devices/system/cpu/online,
// a list such as "0-3,5"): a possible CPU may be offline, or absent.
func OnlineCPUs() (map[int]bool, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, err
	}
	return parseCPUList(strings.TrimSpace(string(b)))
}

// parseCPUList reads a kernel CPU list ("0-3,5").
func parseCPUList(s string) (map[int]bool, error) {
	out := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		z := a
		if isRange {
			if z, err = strconv.Atoi(hi); err != nil || z < a {
				return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= z; c++ {
			out[c] = true
		}
	}
	return out, nil
}

// GroupID looks a group up by name: its id, or -1 when it does not exist.
func GroupID(name string) int {
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1
	}
	id, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1
	}
	return id
}
