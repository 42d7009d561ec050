package record

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/bpf"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/internal/testkernel"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
	"github.com/rewindtrace/rewind/snapshot/snaptest"
)

// row is one recorded event, its fields by name.
type row map[string]any

func (r row) u(name string) uint64 {
	switch v := r[name].(type) {
	case uint64:
		return v
	case int64:
		return uint64(v)
	}
	return 0
}

func (r row) i(name string) int64 { return int64(r.u(name)) }

func (r row) arr(name string, k int) uint64 {
	if v, ok := r[name].([]uint64); ok && k < len(v) {
		return v[k]
	}
	return 0
}
func (r row) s(name string) string {
	s, _ := r[name].(string)
	return s
}

// readRows decodes every event of a snapshot into rows by event name.
func readRows(t *testing.T, path string) (map[string][]row, *snapshot.Meta) {
	t.Helper()
	r := snaptest.Open(t, path)
	s := r.Schema()
	out := map[string][]row{}
	var c snapshot.Chunk
	for _, sec := range r.Chunks() {
		if err := r.ReadChunk(sec, &c); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < c.Len(); i++ {
			et := s.ByID(c.Type[i])
			rw := row{"tid": uint64(c.TID[i]), "pid": uint64(c.PID[i]), "cpu": uint64(c.CPU), "ts": c.TS[i]}
			for fi, f := range et.Fields {
				col := c.Column(et.ID, fi)
				switch {
				case f.Type == schema.Str:
					rw[f.Name] = string(col.Bytes(int(c.Row[i])))
				case f.Count > 1 && f.Type == schema.U8:
					b := make([]byte, f.Count)
					for k := range b {
						b[k] = byte(col.UintAt(int(c.Row[i]), k))
					}
					rw[f.Name] = string(b)
				case f.Count > 1:
					v := make([]uint64, f.Count)
					for k := range v {
						v[k] = col.UintAt(int(c.Row[i]), k)
					}
					rw[f.Name] = v
				case f.Type.Signed():
					rw[f.Name] = col.Int(int(c.Row[i]))
				default:
					rw[f.Name] = col.Uint(int(c.Row[i]))
				}
			}
			out[et.Name] = append(out[et.Name], rw)
		}
	}
	return out, r.Meta()
}

// runChild runs the test binary as a child doing what mode says and returns
// its pid and its standard output. wrap, when given, runs it through
// another command (unshare).
func runChild(t *testing.T, mode string, setup func(pid int), wrap ...string) (int, string) {
	t.Helper()
	args := append(wrap, os.Args[0], "-test.run=^$")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "REWIND_TEST_CHILD="+mode)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if setup != nil {
		setup(pid)
	}
	stdin.Close() // go
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !(mode == "oom" && errors.As(err, &ee)) {
			t.Fatalf("child %s: %v\n%s", mode, err, out.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("child %s did not finish in 30s", mode)
	}
	return pid, out.String()
}

// childMain runs the catalogue's provocations; it returns false for modes
// it does not know.
func childMain(mode string) bool {
	var b [1]byte
	switch mode {
	case "signals":
		os.Stdin.Read(b[:])
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGUSR1)
		unix.Kill(os.Getpid(), syscall.SIGUSR1)
		<-ch
	case "faults":
		os.Stdin.Read(b[:])
		mem, _ := unix.Mmap(-1, 0, 4<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		for i := 0; i < len(mem); i += 4096 {
			mem[i] = 1 // user faults
		}
		buf, _ := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		f, _ := os.Open("/dev/zero")
		f.Read(buf) // the kernel writes untouched pages: kernel faults
	case "rename":
		os.Stdin.Read(b[:])
		runtime.LockOSThread()
		name := []byte("rw-renamed\x00")
		unix.Syscall(unix.SYS_PRCTL, unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0)
	case "migrate":
		os.Stdin.Read(b[:])
		runtime.LockOSThread()
		for i := 0; i < 4; i++ {
			var set unix.CPUSet
			set.Set(i % runtime.NumCPU())
			unix.SchedSetaffinity(0, &set)
		}
	case "lock":
		os.Stdin.Read(b[:])
		// Threads mapping and unmapping fight over the mm's lock.
		var wg sync.WaitGroup
		stop := time.Now().Add(300 * time.Millisecond)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				for time.Now().Before(stop) {
					m, err := unix.Mmap(-1, 0, 1<<16, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
					if err == nil {
						m[0] = 1
						unix.Munmap(m)
					}
				}
			}()
		}
		wg.Wait()
	case "block":
		os.Stdin.Read(b[:])
		path := os.Getenv("REWIND_TEST_FILE")
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_DIRECT, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		buf, _ := unix.Mmap(-1, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		for i := 0; i < 16; i++ {
			if _, err := unix.Pwrite(fd, buf, int64(i)*(64<<10)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		}
		unix.Fsync(fd)
		unix.Pread(fd, buf, 0)
		unix.Close(fd)
		unix.Sync()
	case "tcp":
		os.Stdin.Read(b[:])
		childTCP()
	case "retransmit":
		os.Stdin.Read(b[:])
		if err := childRetransmit(); err != nil {
			fmt.Fprintln(os.Stderr, "retransmit:", err)
			os.Exit(2)
		}
	case "reclaim":
		ppid := os.Getppid()
		os.Stdin.Read(b[:])
		if err := childReclaim(ppid); err != nil {
			fmt.Fprintln(os.Stderr, "reclaim:", err)
			os.Exit(2)
		}
	case "oom":
		os.Stdin.Read(b[:])
		var keep [][]byte
		for i := 0; i < 64; i++ {
			m := make([]byte, 16<<20)
			for j := 0; j < len(m); j += 4096 {
				m[j] = 1
			}
			keep = append(keep, m)
		}
		fmt.Println("not killed", len(keep))
	default:
		return false
	}
	return true
}

// childTCP makes a connection that is reset with a socket (SO_LINGER 0),
// and sends a SYN to a closed port, which the kernel resets without one.
func childTCP() {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		os.Exit(2)
	}
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		os.Exit(2)
	}
	s, err := ln.Accept()
	if err != nil {
		os.Exit(2)
	}
	fmt.Println("conn", c.LocalAddr().(*net.TCPAddr).Port, ln.Addr().(*net.TCPAddr).Port)
	c.(*net.TCPConn).SetLinger(0)
	c.Close() // RST
	buf := make([]byte, 1)
	s.Read(buf) // the server sees the reset
	s.Close()
	// A closed port: the listener's own port, once closed.
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	fmt.Println("closed", port)
	if c, err := net.Dial("tcp4", ln.Addr().String()); err == nil {
		c.Close()
	}
}

// childRetransmit runs in a network namespace of its own: it connects over
// loopback, then drops every packet arriving on the loopback (a tcx program
// returning TC_ACT_SHOT) and writes, until TCP has retransmitted. Packets
// dropped on the way out would not do: TCP sees those fail and resends them
// as new.
func childRetransmit() error {
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set lo up: %v %s", err, out)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		return err
	}
	s, err := ln.Accept()
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("conn", c.LocalAddr().(*net.TCPAddr).Port, ln.Addr().(*net.TCPAddr).Port)
	drop, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* TC_ACT_SHOT */), asm.Return()}})
	if err != nil {
		return fmt.Errorf("load drop program: %w", err)
	}
	defer drop.Close()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return err
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: lo.Index, Program: drop, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return fmt.Errorf("attach drop program to lo: %w", err)
	}
	defer l.Close()
	if _, err := c.Write(make([]byte, 1000)); err != nil {
		return err
	}
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var info *unix.TCPInfo
		raw.Control(func(fd uintptr) { info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
		if err != nil {
			return err
		}
		if info.Total_retrans > 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("no retransmission in 10s")
}

// blockFile returns a path for a file on a block device: the test's temp
// directory, or the working directory when that is a memory filesystem.
func blockFile(t *testing.T) string {
	for _, dir := range []string{t.TempDir(), "."} {
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err == nil && unix.Major(st.Dev) != 0 {
			path := filepath.Join(dir, fmt.Sprintf(".rewind-test-%d.data", os.Getpid()))
			t.Cleanup(func() { os.Remove(path) })
			return path
		}
	}
	t.Skip("no directory on a block device")
	return ""
}

// memoryCgroup makes a memory cgroup limited to limit bytes (cgroup v1 or
// v2, whichever has the memory controller) and returns a function that moves
// a process into it. It removes the cgroup at the end of the test.
func memoryCgroup(t *testing.T, limit int64) func(pid int) {
	name := fmt.Sprintf("rewind-test-%d", os.Getpid())
	var dir, limitFile string
	if st, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil && !st.IsDir() {
		dir, limitFile = filepath.Join("/sys/fs/cgroup/memory", name), "memory.limit_in_bytes"
	} else if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control"); err == nil && strings.Contains(string(b), "memory") {
		dir, limitFile = filepath.Join("/sys/fs/cgroup", name), "memory.max"
	} else {
		t.Fatal("no memory cgroup controller (v1 or v2) to contain an OOM kill")
	}
	mkCgroup(t, dir)
	if err := os.WriteFile(filepath.Join(dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0); err != nil {
		t.Fatal(err)
	}
	return func(pid int) {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			t.Fatal(err)
		}
	}
}

// mkCgroup makes a cgroup directory and removes it when the test ends, once
// the tasks that were in it have left (exited tasks leave asynchronously).
func mkCgroup(t *testing.T, dir string) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 100; i++ {
			if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("could not remove %s", dir)
	})
}

// The reclaim child moves these two knobs; guardReclaimKnobs puts them back.
const (
	// minFreeKnob is the min watermark in KiB, shared among the zones in
	// proportion to their managed pages: an allocation that finds every
	// zone it may use below its share reclaims directly.
	minFreeKnob = "/proc/sys/vm/min_free_kbytes"
	// lowmemKnob sets how much of a lower zone (DMA, DMA32) allocations
	// that prefer a higher one may not take: 1 forbids all of it.
	lowmemKnob = "/proc/sys/vm/lowmem_reserve_ratio"
)

// reclaimKnobs are the knobs in the order they go back: the watermark
// first, since it is the one that makes every allocation reclaim.
var reclaimKnobs = []string{minFreeKnob, lowmemKnob}

// guardReclaimKnobs saves the knobs the reclaim child changes and returns
// what restores them; the test's end restores them too, and a watchdog
// process holding a pipe from this one restores them when this process
// dies in any way. The child dies with this process (PR_SET_PDEATHSIG),
// but may write a knob again on its way out: the watchdog restores them a
// second time a second later. Until they are back, this process and then
// the watchdog hold a lock on the watermark knob, so that another test
// doing the same never saves them raised.
func guardReclaimKnobs(t *testing.T) (restore func()) {
	lock, err := os.Open(minFreeKnob)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", minFreeKnob, err)
	}
	var saved []string
	var put string
	for _, knob := range reclaimKnobs {
		b, err := os.ReadFile(knob)
		if err != nil {
			t.Fatal(err)
		}
		value := strings.Join(strings.Fields(string(b)), " ")
		for _, f := range strings.Fields(value) {
			if _, err := strconv.Atoi(f); err != nil {
				t.Fatalf("%s: %q", knob, b)
			}
		}
		saved = append(saved, value)
		put += "echo " + value + " > " + knob + "; "
	}
	// A watermark of an eighth of memory is no default: a run killed with
	// its watchdog left it raised, and restoring it would keep it so.
	var info unix.Sysinfo_t
	if err := unix.Sysinfo(&info); err != nil {
		t.Fatal(err)
	}
	if kb, _ := strconv.ParseUint(saved[0], 10, 64); kb*1024 > uint64(info.Totalram)*uint64(info.Unit)/8 {
		t.Fatalf("%s is %s KiB, an eighth of memory or more: left raised? Put it back first", minFreeKnob, saved[0])
	}
	watchdog := exec.Command("sh", "-c", `read x; [ "$x" = done ] && exit 0; `+put+"sleep 1; "+put)
	watchdog.ExtraFiles = []*os.File{lock}
	hold, err := watchdog.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watchdog.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restore = func() {
		once.Do(func() {
			for i, knob := range reclaimKnobs {
				if err := os.WriteFile(knob, []byte(saved[i]), 0); err != nil {
					t.Errorf("restore %s: %v", knob, err)
				}
			}
			hold.Write([]byte("done\n"))
			hold.Close()
			watchdog.Wait()
			lock.Close()
		})
	}
	t.Cleanup(restore)
	return restore
}

// reclaimTPEnv passes the reclaim child the id of the
// mm_vmscan_direct_reclaim_begin tracepoint, which it counts itself.
const reclaimTPEnv = "REWIND_TEST_RECLAIM_TP"

// Sizes of the reclaim child's provocation.
const (
	// reclaimFuel is the clean page cache the child reads first: what
	// direct reclaim takes back, so that it never has to kill anything.
	reclaimFuel = 64 << 20
	// reclaimMargin is how far the child puts the zones' min watermark
	// above their free memory: what reclaim (with kswapd's help) must win
	// back before an allocation goes on.
	reclaimMargin = 16 << 20
	// reclaimSteps bounds the child's attempts; each allocates
	// reclaimStepPages new pages.
	reclaimSteps     = 256
	reclaimStepPages = 64
)

// childReclaim makes its locked thread reclaim directly and prints what
// the kernel counted, one line:
//
//	reclaim TID OWN T0 T1 A0 A1 STEPS GROWN
//
// OWN is how many times thread TID entered direct reclaim between the
// CLOCK_BOOTTIME stamps T0 and T1 (a perf counter on the
// mm_vmscan_direct_reclaim_begin tracepoint, for that thread alone); A0
// and A1 are the sum of /proc/vmstat's allocstall_* read before T0 and
// after T1; STEPS counts its allocation steps, GROWN those in which the
// Normal zones grew.
//
// Direct reclaim needs an allocation to find every zone it may use below
// the min watermark. The child fences the lower zones (DMA, DMA32) off
// with lowmem_reserve_ratio and raises min_free_kbytes until the Normal
// zones' share of it is reclaimMargin above their free memory; its next
// page fault then reclaims before it can go on, from the clean page cache
// it read beforehand. A kernel that initialises memory lazily
// (deferred_init=lazy: on a fresh machine most of the Normal zone is not
// yet in the allocator) grows the zone by a 128 MiB section instead of
// reclaiming, as long as the zone has memory left to grow by: the child
// raises the watermark again after every growth, until the zone has all
// its memory (under a second on a fresh 24 GiB machine; once per boot).
// The knobs go back as soon as the thread has reclaimed.
func childReclaim(ppid int) error {
	runtime.LockOSThread()
	// Should the test die, so does the child, and the watchdog restores
	// the knobs; and if anything has to be killed for memory, it is this.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return err
	}
	if os.Getppid() != ppid {
		return errors.New("the test is gone")
	}
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0); err != nil {
		return err
	}
	tp, err := strconv.ParseUint(os.Getenv(reclaimTPEnv), 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %v", reclaimTPEnv, err)
	}
	f, err := os.Open(os.Getenv("REWIND_TEST_FILE"))
	if err != nil {
		return err
	}
	defer f.Close()
	defer unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	buf := make([]byte, 1<<20)
	for n := 0; n < reclaimFuel; n += len(buf) {
		if _, err := io.ReadFull(f, buf); err != nil {
			return err
		}
	}

	saved := make([][]byte, len(reclaimKnobs))
	for i, knob := range reclaimKnobs {
		if saved[i], err = os.ReadFile(knob); err != nil {
			return err
		}
	}
	restore := func() {
		for i, knob := range reclaimKnobs {
			os.WriteFile(knob, saved[i], 0)
		}
	}
	defer restore()
	ratios := strings.Fields(string(saved[1]))
	for i, r := range ratios {
		if r != "0" {
			ratios[i] = "1"
		}
	}
	counter, err := countTracepoint(tp)
	if err != nil {
		return err
	}
	defer unix.Close(counter)
	a0, err := allocstall()
	if err != nil {
		return err
	}
	t0 := sysx.BootNow()
	if err := os.WriteFile(lowmemKnob, []byte(strings.Join(ratios, " ")), 0); err != nil {
		return err
	}
	var own uint64
	steps, grown := 0, 0
	var managed int64
	for ; steps < reclaimSteps && own == 0; steps++ {
		zones, err := readZones()
		if err != nil {
			return err
		}
		kb, m, low := minFreeFor(zones, reclaimMargin)
		if m == 0 {
			return fmt.Errorf("no Normal zone in /proc/zoneinfo")
		}
		if managed != 0 && m != managed {
			grown++
		}
		managed = m
		if !low {
			if err := os.WriteFile(minFreeKnob, []byte(strconv.FormatInt(kb, 10)), 0); err != nil {
				return err
			}
		}
		mem, err := unix.Mmap(-1, 0, reclaimStepPages*os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err
		}
		for i := 0; i < len(mem); i += os.Getpagesize() {
			mem[i] = 1
		}
		if own, err = readCounter(counter); err != nil {
			return err
		}
	}
	restore()
	if own, err = readCounter(counter); err != nil {
		return err
	}
	t1 := sysx.BootNow()
	a1, err := allocstall()
	if err != nil {
		return err
	}
	fmt.Println("reclaim", unix.Gettid(), own, t0, t1, a0, a1, steps, grown)
	return nil
}

// zoneFree is a zone of /proc/zoneinfo, in pages.
type zoneFree struct {
	name               string
	free, min, managed int64
}

func readZones() ([]zoneFree, error) {
	b, err := os.ReadFile("/proc/zoneinfo")
	if err != nil {
		return nil, err
	}
	var zones []zoneFree
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "Node" && f[2] == "zone":
			zones = append(zones, zoneFree{name: f[3]})
		case len(zones) == 0:
		case len(f) == 3 && f[0] == "pages" && f[1] == "free":
			zones[len(zones)-1].free, err = strconv.ParseInt(f[2], 10, 64)
		case len(f) == 2 && f[0] == "min":
			zones[len(zones)-1].min, err = strconv.ParseInt(f[1], 10, 64)
		case len(f) == 2 && f[0] == "managed":
			zones[len(zones)-1].managed, err = strconv.ParseInt(f[1], 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("/proc/zoneinfo: %q: %v", line, err)
		}
	}
	return zones, nil
}

// minFreeFor returns the min_free_kbytes that puts every Normal zone's min
// watermark margin bytes above its free memory, the Normal zones' managed
// pages, and whether every Normal zone is below its min watermark by at
// least half the margin already (then there is nothing to raise).
// setup_per_zone_wmarks gives zone z pages_min * managed_z / lowmem_pages,
// where lowmem_pages counts the managed pages of every zone but Movable.
func minFreeFor(zones []zoneFree, margin int64) (kb, managed int64, low bool) {
	page := int64(os.Getpagesize())
	var total, need int64
	for _, z := range zones {
		if z.name != "Movable" {
			total += z.managed
		}
	}
	low = true
	for _, z := range zones {
		if z.name != "Normal" || z.managed == 0 {
			continue
		}
		managed += z.managed
		need = max(need, (z.free+margin/page)*total/z.managed+1)
		low = low && z.free+margin/page/2 <= z.min
	}
	return need * page / 1024, managed, low
}

// allocstall is the kernel's count of direct reclaim passes
// (do_try_to_free_pages, global reclaim only: a memory cgroup's reclaim
// does not count there), the sum of /proc/vmstat's allocstall_<zone>.
func allocstall() (uint64, error) {
	b, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], "allocstall_") {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/vmstat: %q: %v", line, err)
			}
			n += v
		}
	}
	return n, nil
}

// countTracepoint opens a perf counter of the tracepoint with the id
// given, for the calling thread only, counting from now.
func countTracepoint(id uint64) (int, error) {
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_TRACEPOINT, Config: id}
	attr.Size = uint32(unsafe.Sizeof(attr))
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("perf_event_open tracepoint %d: %w", id, err)
	}
	return fd, nil
}

func readCounter(fd int) (uint64, error) {
	var b [8]byte
	if _, err := unix.Read(fd, b[:]); err != nil {
		return 0, fmt.Errorf("read perf counter: %w", err)
	}
	return binary.NativeEndian.Uint64(b[:]), nil
}

// tracepointID returns the id perf_event_open knows a tracepoint by, from
// tracefs, which a running recorder has mounted (CheckSystem).
func tracepointID(t *testing.T, group, name string) uint64 {
	b, err := os.ReadFile(filepath.Join(sysx.Tracefs, "events", group, name, "id"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("tracepoint %s:%s id %q: %v", group, name, b, err)
	}
	return id
}

// reclaimRun is what a reclaim child printed (childReclaim).
type reclaimRun struct {
	pid, tid     int
	own          uint64 // times the child's thread entered direct reclaim, by the kernel's count
	t0, t1       uint64 // CLOCK_BOOTTIME before and after
	a0, a1       uint64 // allocstall before t0 and after t1
	steps, grown int
}

// reclaimAttempts bounds the reclaim children run.
const reclaimAttempts = 3

// provokeReclaim runs reclaim children until one's thread has reclaimed
// directly, at most reclaimAttempts of them. When none did, it reports
// why and returns false.
func provokeReclaim(t *testing.T) (reclaimRun, bool) {
	var moved uint64
	for attempt := 1; attempt <= reclaimAttempts; attempt++ {
		pid, out := runChild(t, "reclaim", nil)
		r := reclaimRun{pid: pid}
		var line string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "reclaim ") {
				line = l
			}
		}
		if _, err := fmt.Sscan(strings.TrimPrefix(line, "reclaim "), &r.tid, &r.own, &r.t0, &r.t1, &r.a0, &r.a1, &r.steps, &r.grown); err != nil {
			t.Fatalf("reclaim child said %q: %v", out, err)
		}
		t.Logf("reclaim attempt %d: allocstall +%d, the child's thread reclaimed %d times, in %d steps over %.1f ms; the Normal zones grew in %d of them",
			attempt, r.a1-r.a0, r.own, r.steps, float64(r.t1-r.t0)/1e6, r.grown)
		if r.own > 0 {
			return r, true
		}
		moved += r.a1 - r.a0
	}
	if moved == 0 {
		t.Errorf("could not provoke direct reclaim: allocstall unchanged after %d attempts", reclaimAttempts)
	} else {
		t.Errorf("could not provoke direct reclaim in the child: allocstall +%d, never by its thread, after %d attempts", moved, reclaimAttempts)
	}
	return reclaimRun{}, false
}

// Bounds on a direct reclaim's fields.
const (
	// gfpDirectReclaim is __GFP_DIRECT_RECLAIM (include/linux/gfp_types.h,
	// bit 10 since 4.4): no allocation reclaims directly without it.
	gfpDirectReclaim = 0x400
	// maxPageOrder is the largest MAX_PAGE_ORDER of x86-64 and arm64.
	maxPageOrder = 13
)

// checkReclaim holds the direct reclaims recorded against the kernel's
// counts. The child's thread: exactly as many begins as its own perf
// counter of the tracepoint saw, each followed by its end, with fields
// that can be. Every task: no more begins inside the child's window than
// allocstall counted from before it to when the snapshot was taken
// (allocstallNow). That is a bound, not an equality: allocstall counts
// passes of do_try_to_free_pages, and a pass that reclaimed nothing goes
// round again under the same tracepoint; and the recorder does not record
// its own process, whose reclaims allocstall counts.
func checkReclaim(t *testing.T, path string, rows map[string][]row, r reclaimRun, allocstallNow uint64) {
	if err := windowKept(t, path, r.t0, r.t1); err != nil {
		t.Errorf("mm_vmscan_direct_reclaim_begin: %v, so the child's reclaims cannot be counted", err)
		return
	}
	type step struct {
		ts    uint64
		begin bool
	}
	var mine []step
	all := 0
	for _, b := range rows["mm_vmscan_direct_reclaim_begin"] {
		if b.u("ts") < r.t0 || b.u("ts") > r.t1 {
			continue
		}
		all++
		if b.u("tid") != uint64(r.tid) {
			continue
		}
		mine = append(mine, step{b.u("ts"), true})
		if b.i("order") < 0 || b.i("order") > maxPageOrder || b.u("gfp_flags")&gfpDirectReclaim == 0 {
			t.Errorf("mm_vmscan_direct_reclaim_begin of the child's thread: %v: want order 0..%d and __GFP_DIRECT_RECLAIM in gfp_flags", b, maxPageOrder)
		}
	}
	begins := len(mine)
	for _, e := range rows["mm_vmscan_direct_reclaim_end"] {
		if e.u("tid") == uint64(r.tid) && e.u("ts") >= r.t0 && e.u("ts") <= r.t1 {
			mine = append(mine, step{e.u("ts"), false})
		}
	}
	counted := allocstallNow - r.a0
	t.Logf("direct reclaim: the child's thread %d entered it %d times (perf), %d recorded; all tasks: %d recorded from %d to %d, allocstall +%d then, +%d by the snapshot",
		r.tid, r.own, begins, all, r.t0, r.t1, r.a1-r.a0, counted)
	if uint64(begins) != r.own {
		t.Errorf("mm_vmscan_direct_reclaim_begin: direct reclaim provoked (allocstall +%d; the child's thread %d entered it %d times by the kernel's count) but %d recorded",
			r.a1-r.a0, r.tid, r.own, begins)
	}
	if uint64(all) > counted {
		t.Errorf("mm_vmscan_direct_reclaim_begin: %d recorded from %d to %d, more than the kernel counted (allocstall +%d)", all, r.t0, r.t1, counted)
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].ts < mine[j].ts })
	for i, s := range mine {
		if s.begin != (i%2 == 0) || len(mine) != 2*begins {
			t.Errorf("mm_vmscan_direct_reclaim_begin/_end of the child's thread: %d begins and %d ends, not in turns: %v", begins, len(mine)-begins, mine)
			break
		}
	}
}

// windowKept checks that the snapshot holds every event of [from, to]:
// each CPU's ring kept events from before it, and lost none inside it.
func windowKept(t *testing.T, path string, from, to uint64) error {
	r := snaptest.Open(t, path)
	first := map[int]uint64{}
	for _, sec := range r.Chunks() {
		if f, ok := first[sec.CPU]; !ok || sec.FirstTS < f {
			first[sec.CPU] = sec.FirstTS
		}
		if sec.Lost > 0 && sec.FirstTS <= to && sec.LastTS >= from {
			return fmt.Errorf("cpu %d lost %d events between %d and %d", sec.CPU, sec.Lost, sec.FirstTS, sec.LastTS)
		}
	}
	for cpu := 0; cpu < r.Meta().CPUs; cpu++ {
		if f, ok := first[cpu]; !ok || f > from {
			return fmt.Errorf("cpu %d kept events from %d on, after the window began at %d", cpu, f, from)
		}
	}
	return nil
}

func ports(t *testing.T, out, tag string) (int, int) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == tag {
			a, _ := strconv.Atoi(f[1])
			b := 0
			if len(f) > 2 {
				b, _ = strconv.Atoi(f[2])
			}
			return a, b
		}
	}
	t.Fatalf("child printed no %q line: %q", tag, out)
	return 0, 0
}

func loopback(r row, field string) bool {
	return r.u("family") == 2 && strings.HasPrefix(r.s(field), "\x7f\x00\x00\x01")
}

// For every event this kernel supports, provoke it and find it with the
// right fields.
func TestCatalogEvents(t *testing.T) {
	testkernel.Require(t)
	rec, err := Start(Config{Events: []string{"all"}, BufferSize: 64 << 20, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()

	file := blockFile(t)
	var fileDev unix.Stat_t
	os.WriteFile(file, nil, 0o600)
	unix.Stat(file, &fileDev)
	os.Setenv("REWIND_TEST_FILE", file)

	pids := map[string]int{}
	outs := map[string]string{}
	for _, mode := range []string{"signals", "faults", "rename", "migrate", "lock", "block", "tcp"} {
		pids[mode], outs[mode] = runChild(t, mode, nil)
	}
	pids["retransmit"], outs["retransmit"] = runChild(t, "retransmit", nil, "unshare", "--net")
	sparse := blockFile(t)
	if err := os.WriteFile(sparse, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sparse, reclaimFuel); err != nil {
		t.Fatal(err)
	}
	os.Setenv("REWIND_TEST_FILE", sparse)
	os.Setenv(reclaimTPEnv, strconv.FormatUint(tracepointID(t, "vmscan", "mm_vmscan_direct_reclaim_begin"), 10))
	// The watermark goes back as soon as the child is done: what follows
	// (snapshots) needs the memory.
	restore := guardReclaimKnobs(t)
	reclaim, reclaimed := provokeReclaim(t)
	restore()
	pids["reclaim"] = reclaim.pid
	os.Setenv("REWIND_TEST_FILE", file)
	pids["oom"], outs["oom"] = runChild(t, "oom", memoryCgroup(t, 64<<20))
	if strings.Contains(outs["oom"], "not killed") {
		t.Fatalf("the oom child was not killed in a 64 MiB cgroup: %s", outs["oom"])
	}

	// The CPUs idle when nothing else runs; with a load on every CPU they
	// never do, and the kernel's own idle time tells which it was.
	idled := provokeIdle(t)

	// A reaped task is freed after an RCU grace period: poll for it.
	var rows map[string][]row
	var meta *snapshot.Meta
	var path string
	stalls, err := allocstall()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		path = filepath.Join(t.TempDir(), "catalog.rwd")
		if _, err := rec.Snapshot(context.Background(), SnapshotRequest{Path: path, Trigger: manual}); err != nil {
			t.Fatal(err)
		}
		rows, meta = readRows(t, path)
		freed := false
		for _, r := range rows["sched_process_free"] {
			freed = freed || r.u("target_pid") == uint64(pids["signals"])
		}
		if freed || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	// stack: the sample's frames are all there, and only they.
	stack := func(r row) bool {
		frames, _ := r["frames"].([]uint64)
		n := int(r.u("kframes") + r.u("uframes"))
		if n == 0 || n > len(frames) {
			return false
		}
		for i, f := range frames {
			if (f != 0) != (i < n) {
				return false
			}
		}
		return true
	}
	child := func(mode string) func(row) bool {
		return func(r row) bool { return r.u("pid") == uint64(pids[mode]) }
	}
	connPort, listenPort := ports(t, outs["tcp"], "conn")
	closedPort, _ := ports(t, outs["tcp"], "closed")
	rtPort, rtListen := ports(t, outs["retransmit"], "conn")
	rqs := map[uint64]bool{}
	for _, r := range rows["block_rq_issue"] {
		rqs[r.u("rq")] = true
	}
	irqs := map[int64]bool{}
	for _, r := range rows["irq_handler_entry"] {
		irqs[r.i("irq")] = true
	}
	locks := map[uint64]bool{}
	for _, r := range rows["contention_begin"] {
		locks[r.u("lock")] = true
	}
	works := map[uint64]bool{}
	for _, r := range rows["workqueue_execute_start"] {
		works[r.u("work")] = true
	}
	onDisk := func(r row) bool { return uint32(r.u("dev")>>20) == unix.Major(fileDev.Dev) && r.u("bytes") > 0 }
	checks := map[string]func(row) bool{
		"sched_switch": func(r row) bool {
			return r.u("next_tid") == uint64(pids["signals"]) && r.s("next_comm") == "record.test"
		},
		"sched_waking":       func(r row) bool { return r.u("target_pid") == uint64(pids["lock"]) },
		"sched_wakeup_new":   func(r row) bool { return r.u("target_pid") == uint64(pids["signals"]) },
		"sched_process_fork": func(r row) bool { return r.u("child_pid") == uint64(pids["signals"]) },
		"sched_process_exec": func(r row) bool { return r.u("pid") == uint64(pids["signals"]) && r.s("filename") == os.Args[0] },
		"sched_process_exit": func(r row) bool { return r.u("tid") == uint64(pids["signals"]) },
		"sys_enter":          func(r row) bool { return r.u("pid") == uint64(pids["block"]) && r.i("id") == unix.SYS_PWRITE64 },
		"sys_exit":           func(r row) bool { return r.u("pid") == uint64(pids["block"]) && r.i("ret") == 64<<10 },
		"block_rq_insert":    onDisk,
		"block_rq_issue":     func(r row) bool { return onDisk(r) && strings.Contains(r.s("rwbs"), "W") },
		"block_rq_complete":  func(r row) bool { return onDisk(r) && rqs[r.u("rq")] && r.u("error") == 0 },
		"irq_handler_entry":  func(r row) bool { return r.s("name") != "" },
		"irq_handler_exit":   func(r row) bool { return irqs[r.i("irq")] },
		"softirq_entry":      func(r row) bool { return r.u("vec") < 10 },
		"softirq_exit":       func(r row) bool { return r.u("vec") < 10 },
		"page_fault_user": func(r row) bool {
			return child("faults")(r) && r.u("address") != 0 && r.u("error_code")&4 != 0
		},
		"page_fault_kernel": func(r row) bool { return child("faults")(r) && r.u("error_code")&4 == 0 },
		"signal_generate": func(r row) bool {
			return child("signals")(r) && r.u("target_tid") != 0 && r.i("sig") == int64(syscall.SIGUSR1) && r.i("result") == 0
		},
		"signal_deliver": func(r row) bool {
			return child("signals")(r) && r.i("sig") == int64(syscall.SIGUSR1) && r.u("sa_handler") != 0
		},
		"sched_process_free": func(r row) bool {
			return r.u("target_pid") == uint64(pids["signals"]) && r.s("target_comm") == "record.test"
		},
		"task_newtask": func(r row) bool {
			return r.u("target_pid") == uint64(pids["signals"]) && r.u("pid") == uint64(os.Getpid())
		},
		"task_rename": func(r row) bool {
			return r.u("target_pid") == uint64(pids["rename"]) && r.s("newcomm") == "rw-renamed" && r.s("oldcomm") == "record.test"
		},
		"sched_migrate_task": func(r row) bool {
			return r.u("target_pid") == uint64(pids["migrate"]) && r.i("dest_cpu") >= 0 && r.i("dest_cpu") != r.i("orig_cpu")
		},
		"tcp_send_reset": func(r row) bool {
			withSock := r.u("sport") == uint64(connPort) && r.u("dport") == uint64(listenPort)
			noSock := r.u("sport") == uint64(closedPort) && meta.EnumName("sk_rst_reason", r.i("reason")) == "SK_RST_REASON_NO_SOCKET"
			return loopback(r, "saddr") && (withSock || noSock)
		},
		"tcp_receive_reset": func(r row) bool {
			return loopback(r, "daddr") && r.u("sport") == uint64(listenPort) && r.u("dport") == uint64(connPort)
		},
		"inet_sock_set_state": func(r row) bool {
			return loopback(r, "saddr") && r.u("sport") == uint64(connPort) && r.u("newstate") == 1 && r.u("protocol") == unix.IPPROTO_TCP
		},
		"kfree_skb": func(r row) bool {
			return r.u("protocol") == 0x800 && meta.EnumName("skb_drop_reason", r.i("reason")) == "SKB_DROP_REASON_NO_SOCKET"
		},
		"tcp_retransmit_skb": func(r row) bool {
			return loopback(r, "saddr") && r.u("sport") == uint64(rtPort) && r.u("dport") == uint64(rtListen) && r.u("state") == 1
		},
		"mark_victim": func(r row) bool {
			return r.u("target_pid") == uint64(pids["oom"]) && r.u("total_vm") > 0 && r.u("anon_rss") > (32<<20)/4096
		},
		"mm_vmscan_direct_reclaim_begin": func(r row) bool { return child("reclaim")(r) && r.u("gfp_flags")&gfpDirectReclaim != 0 },
		"mm_vmscan_direct_reclaim_end":   func(r row) bool { return child("reclaim")(r) && r.u("nr_reclaimed") > 0 },
		"contention_begin":               func(r row) bool { return child("lock")(r) && r.u("lock") != 0 },
		"contention_end":                 func(r row) bool { return locks[r.u("lock")] },
		"workqueue_execute_start":        func(r row) bool { return r.u("function") != 0 },
		"workqueue_execute_end":          func(r row) bool { return works[r.u("work")] && r.u("function") != 0 },
		"cpu_idle": func(r row) bool {
			since, ok := idled[int(r.u("cpu_id"))]
			return ok && r.u("cpu") == r.u("cpu_id") && r.u("ts") > since && r.i("state") >= 0
		},
		// The lock child spins on two CPUs; the block child waits on I/O.
		"cpu_sample":    func(r row) bool { return child("lock")(r) && stack(r) },
		"offcpu_sample": func(r row) bool { return child("block")(r) && r.u("kframes") > 0 && stack(r) },
	}
	catalog, err := bpf.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range catalog {
		if why, ok := rec.Unavailable()[e.Name]; ok {
			t.Logf("%s: not supported here (%s)", e.Name, why)
			continue
		}
		check, ok := checks[e.Name]
		if !ok {
			t.Errorf("%s: supported, but no test provokes it", e.Name)
			continue
		}
		if strings.HasPrefix(e.Name, "mm_vmscan_direct_reclaim_") && !reclaimed {
			continue // provokeReclaim said why
		}
		if e.Name == "mm_vmscan_direct_reclaim_begin" {
			checkReclaim(t, path, rows, reclaim, stalls)
		}
		if e.Name == kinds.CPUIdle {
			if len(idled) == 0 {
				continue // provokeIdle said why
			}
			for cpu := range idled {
				found := false
				for _, r := range rows[e.Name] {
					found = found || int(r.u("cpu")) == cpu && check(r)
				}
				if !found {
					t.Errorf("cpu_idle: cpu %d idled after %d (its idle time in /proc/stat grew) but none of %d recorded events enters idle there then",
						cpu, idled[cpu], len(rows[e.Name]))
				}
			}
			continue
		}
		found := false
		for _, r := range rows[e.Name] {
			if check(r) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s: none of %d recorded events is the one provoked; first: %v", e.Name, len(rows[e.Name]), first(rows[e.Name]))
		}
	}
}

// provokeIdle runs the calling thread on each CPU in turn, then leaves
// the CPUs alone for 50 ms, up to 5 times. It returns, for each CPU whose
// idle time in /proc/stat grew meanwhile, when the thread last ran there:
// the CPU was busy then and idle since, so it entered idle after that. No
// idle time grows when every CPU is kept busy (a load on each): then
// cpu_idle cannot be provoked, which it logs, and which is not a failure
// of the recorder.
func provokeIdle(t *testing.T) map[int]uint64 {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &all)
	for attempt := 1; attempt <= 5; attempt++ {
		ran := map[int]uint64{}
		for cpu := range cpuIdleTimes(t) {
			var one unix.CPUSet
			one.Set(cpu)
			if all.IsSet(cpu) && unix.SchedSetaffinity(0, &one) == nil {
				ran[cpu] = sysx.BootNow() // on cpu: it is not idle
			}
		}
		if err := unix.SchedSetaffinity(0, &all); err != nil {
			t.Fatal(err)
		}
		before := cpuIdleTimes(t)
		time.Sleep(50 * time.Millisecond)
		idled := map[int]uint64{}
		for cpu, v := range cpuIdleTimes(t) {
			if since, ok := ran[cpu]; ok && v > before[cpu] {
				idled[cpu] = since
			}
		}
		if len(idled) > 0 {
			return idled
		}
	}
	t.Logf("cpu_idle: could not provoke: no CPU's idle time grew in 5 × 50 ms (every CPU is kept busy), so none went idle")
	return nil
}

// cpuIdleTimes reads each CPU's idle and iowait time from /proc/stat, in
// USER_HZ ticks.
func cpuIdleTimes(t *testing.T) map[int]uint64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		// "cpu3 user nice system idle iowait ..."
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		cpu, err := strconv.Atoi(f[0][len("cpu"):])
		if err != nil {
			continue // the line of all CPUs
		}
		idle, err1 := strconv.ParseUint(f[4], 10, 64)
		iowait, err2 := strconv.ParseUint(f[5], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("/proc/stat: %q", line)
		}
		out[cpu] = idle + iowait
	}
	return out
}

func first(rows []row) row {
	if len(rows) == 0 {
		return nil
	}
	return rows[0]
}
