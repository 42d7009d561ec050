package record

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
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
	"github.com/rewindtrace/rewind/internal/testkernel"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
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
		os.Stdin.Read(b[:])
		if err := childReclaim(); err != nil {
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
	// minFreeKnob is the watermark under which allocations reclaim
	// directly, spread over the zones in proportion to their size.
	minFreeKnob = "/proc/sys/vm/min_free_kbytes"
	// lowmemKnob sets how much of a lower zone (DMA, DMA32) allocations
	// that prefer a higher one may not take: 1 forbids all of it.
	lowmemKnob = "/proc/sys/vm/lowmem_reserve_ratio"
)

// guardReclaimKnobs saves the knobs the reclaim child changes and returns
// what restores them; the test's end restores them too, and a watchdog
// process holding a pipe from this one restores them when this process
// dies in any way.
func guardReclaimKnobs(t *testing.T) (restore func()) {
	saved := map[string]string{}
	script := "read _"
	for _, knob := range []string{minFreeKnob, lowmemKnob} {
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
		saved[knob] = value
		script += "; echo " + value + " > " + knob
	}
	watchdog := exec.Command("sh", "-c", script)
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
			for knob, value := range saved {
				if err := os.WriteFile(knob, []byte(value), 0); err != nil {
					t.Errorf("restore %s: %v", knob, err)
				}
			}
			hold.Close()
			watchdog.Wait()
		})
	}
	t.Cleanup(restore)
	return restore
}

// childReclaim makes its own page cache allocations reclaim directly. It
// streams a sparse file through the page cache; once 128 MiB of that clean
// cache exist, it keeps allocations out of the lower zones (whose memory
// is nearly all free) and sets the min watermark so that the Normal zones'
// share of it is 32 MiB above their free memory. Its very next allocation
// is then below the watermark everywhere it may come from (background
// reclaim has had no time to catch up) and has to reclaim before it can go
// on; the cache it made is what makes that possible. The knobs go back as
// soon as 128 MiB more have been read.
func childReclaim() error {
	f, err := os.Open(os.Getenv("REWIND_TEST_FILE"))
	if err != nil {
		return err
	}
	defer f.Close()
	defer unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	buf := make([]byte, 1<<20)
	read := func(n int) error {
		for ; n > 0; n-- {
			if _, err := f.Read(buf); err != nil {
				return err
			}
		}
		return nil
	}
	if err := read(128); err != nil {
		return err
	}

	saved := map[string][]byte{}
	for _, knob := range []string{minFreeKnob, lowmemKnob} {
		if saved[knob], err = os.ReadFile(knob); err != nil {
			return err
		}
	}
	defer func() {
		for knob, value := range saved {
			os.WriteFile(knob, value, 0)
		}
	}()
	ratios := strings.Fields(string(saved[lowmemKnob]))
	for i, r := range ratios {
		if r != "0" {
			ratios[i] = "1"
		}
	}
	if err := os.WriteFile(lowmemKnob, []byte(strings.Join(ratios, " ")), 0); err != nil {
		return err
	}
	zoneinfo, err := os.ReadFile("/proc/zoneinfo")
	if err != nil {
		return err
	}
	// min_free_kbytes is shared among zones by managed pages: zone z gets
	// min * managed_z / total. Each Normal zone's share must exceed its
	// free pages by the margin.
	type zoneFree struct{ free, managed int }
	var normal []zoneFree
	var total, free int
	zone := ""
	for _, line := range strings.Split(string(zoneinfo), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "Node":
			zone = f[3]
		case len(f) == 3 && f[0] == "pages" && f[1] == "free":
			free, _ = strconv.Atoi(f[2])
		case len(f) == 2 && f[0] == "managed":
			managed, _ := strconv.Atoi(f[1])
			total += managed
			if zone == "Normal" && managed > 0 {
				normal = append(normal, zoneFree{free, managed})
			}
		}
	}
	if len(normal) == 0 {
		return fmt.Errorf("no Normal zone in /proc/zoneinfo")
	}
	margin := 32 << 20 / os.Getpagesize()
	need := 0
	for _, z := range normal {
		need = max(need, int((int64(z.free)+int64(margin))*int64(total)/int64(z.managed)))
	}
	kb := need * (os.Getpagesize() / 1024)
	if err := os.WriteFile(minFreeKnob, []byte(strconv.Itoa(kb)), 0); err != nil {
		return err
	}
	return read(128)
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
	if err := os.Truncate(sparse, 1<<30); err != nil {
		t.Fatal(err)
	}
	os.Setenv("REWIND_TEST_FILE", sparse)
	// The watermark goes back as soon as the child is done: what follows
	// (snapshots) needs the memory.
	restore := guardReclaimKnobs(t)
	pids["reclaim"], outs["reclaim"] = runChild(t, "reclaim", nil)
	restore()
	os.Setenv("REWIND_TEST_FILE", file)
	pids["oom"], outs["oom"] = runChild(t, "oom", memoryCgroup(t, 64<<20))
	if strings.Contains(outs["oom"], "not killed") {
		t.Fatalf("the oom child was not killed in a 64 MiB cgroup: %s", outs["oom"])
	}

	// A reaped task is freed after an RCU grace period: poll for it.
	var rows map[string][]row
	var meta *snapshot.Meta
	deadline := time.Now().Add(10 * time.Second)
	for {
		path := filepath.Join(t.TempDir(), "catalog.rwd")
		if _, err := rec.Snapshot(path, snapshot.Trigger{Kind: snapshot.TriggerManual}); err != nil {
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
		"mm_vmscan_direct_reclaim_begin": func(r row) bool { return child("reclaim")(r) && r.i("order") >= 0 && r.u("gfp_flags") != 0 },
		"mm_vmscan_direct_reclaim_end":   func(r row) bool { return child("reclaim")(r) && r.u("nr_reclaimed") > 0 },
		"contention_begin":               func(r row) bool { return child("lock")(r) && r.u("lock") != 0 },
		"contention_end":                 func(r row) bool { return locks[r.u("lock")] },
		"workqueue_execute_start":        func(r row) bool { return r.u("function") != 0 },
		"workqueue_execute_end":          func(r row) bool { return works[r.u("work")] && r.u("function") != 0 },
		"cpu_idle": func(r row) bool {
			return r.u("cpu_id") < uint64(runtime.NumCPU()) && r.i("state") >= 0
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

func first(rows []row) row {
	if len(rows) == 0 {
		return nil
	}
	return rows[0]
}
