package record

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rewindtrace/rewind/internal/sysx"
)

// System is what recording needs from the machine, checked up front so that
// a failure names exactly what is missing. Close undoes what the check
// changed (a tracefs mount).
type System struct {
	Uname     sysx.Uname
	KernelBTF string // empty: the kernel's own
	// Tracepoints available in tracefs, as "subsystem:name".
	Tracepoints    map[string]bool
	mountedTracefs bool
}

// minKernel is the oldest kernel rewind runs on: the oldest the boot matrix
// (test/kernels) proves, and the oldest long-term kernel distributions ship
// (Debian 11, Amazon Linux 2). The programs need 5.8 (BPF ring buffer,
// bpf_ktime_get_boot_ns); kernels before 5.12 get the object without
// fetching atomics (bpf.Options.Compat).
var minKernel = [2]int{5, 10}

// CheckSystem checks privileges, the kernel version, BTF and tracefs, and
// mounts tracefs when it is not mounted.
func CheckSystem(kernelBTF string) (_ *System, err error) {
	u, err := sysx.GetUname()
	if err != nil {
		return nil, err
	}
	s := &System{Uname: u, KernelBTF: kernelBTF}
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	if err := checkKernelVersion(u.Release); err != nil {
		return nil, err
	}
	if kernelBTF != "" {
		if _, err := os.Stat(kernelBTF); err != nil {
			return nil, fmt.Errorf("kernel BTF file: %w", err)
		}
	} else if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return nil, fmt.Errorf("kernel %s exposes no BTF at /sys/kernel/btf/vmlinux (built without CONFIG_DEBUG_INFO_BTF): pass --btf FILE with BTF for this exact kernel (for example from btfhub)", u.Release)
	}
	if !sysx.TracefsMounted() {
		if err := sysx.MountTracefs(); err != nil {
			return nil, fmt.Errorf("tracefs is not mounted at %s and mounting it failed (%v): mount it with `mount -t tracefs nodev %s`", sysx.Tracefs, err, sysx.Tracefs)
		}
		s.mountedTracefs = true
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Tracepoints, err = readAvailableEvents(filepath.Join(sysx.Tracefs, "available_events")); err != nil {
		return nil, err
	}
	return s, nil
}

func checkPrivileges() error {
	admin, err := sysx.HasCap(sysx.CapSysAdmin)
	if err != nil {
		return err
	}
	if admin {
		return nil
	}
	bpf, _ := sysx.HasCap(sysx.CapBPF)
	perfmon, _ := sysx.HasCap(sysx.CapPerfmon)
	if bpf && perfmon {
		return nil
	}
	var missing []string
	if !bpf {
		missing = append(missing, "CAP_BPF")
	}
	if !perfmon {
		missing = append(missing, "CAP_PERFMON")
	}
	return fmt.Errorf("recording needs root, or CAP_BPF and CAP_PERFMON; this process lacks CAP_SYS_ADMIN and %s (run it with sudo)", strings.Join(missing, " and "))
}

// checkKernelVersion refuses a kernel older than minKernel.
func checkKernelVersion(release string) error {
	if v, ok := kernelVersion(release); ok && (v[0] < minKernel[0] || v[0] == minKernel[0] && v[1] < minKernel[1]) {
		return fmt.Errorf("kernel %s is too old: rewind needs %d.%d or later", release, minKernel[0], minKernel[1])
	}
	return nil
}

// kernelVersion parses "6.18.44-foo" into {6, 18}.
func kernelVersion(release string) ([2]int, bool) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return [2]int{}, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return [2]int{major, minor}, err1 == nil && err2 == nil
}

func readAvailableEvents(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("tracefs at %s lists no events (%s missing)", sysx.Tracefs, path)
		}
		return nil, fmt.Errorf("read tracepoints: %w", err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out[sc.Text()] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// HasTracepoint reports whether tracefs lists a tracepoint of that name in
// any subsystem.
func (s *System) HasTracepoint(name string) bool {
	for tp := range s.Tracepoints {
		if _, n, ok := strings.Cut(tp, ":"); ok && n == name {
			return true
		}
	}
	return false
}

// Close unmounts tracefs if CheckSystem mounted it. It is safe to call twice.
func (s *System) Close() error {
	if !s.mountedTracefs {
		return nil
	}
	s.mountedTracefs = false
	return sysx.UnmountTracefs()
}
