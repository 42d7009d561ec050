package bpf

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/internal/testkernel"
)

// TestWatchSyscallTrigger sets "nanosleep slower than 50ms" for this
// thread and sleeps 10ms, 100ms and 10ms: exactly one firing, for the
// 100ms call, whatever else the machine runs. Then the live histogram of
// this thread's getppid calls counts each of them.
func TestWatchSyscallTrigger(t *testing.T) {
	testkernel.Require(t)
	w, err := LoadWatch(WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := uint32(unix.Gettid())
	nr := int32(unix.SYS_NANOSLEEP)
	if err := w.SetTrigger(0, &Condition{Kind: WatchSyscall, Threshold: uint64(50 * time.Millisecond), Syscall: &nr, PID: tid}); err != nil {
		t.Fatal(err)
	}
	firings := make(chan Firing, 16)
	go func() {
		for {
			f, err := w.ReadFiring()
			if err != nil {
				if !errors.Is(err, os.ErrClosed) {
					t.Error(err)
				}
				close(firings)
				return
			}
			firings <- f
		}
	}()
	sleep := func(d time.Duration) time.Duration {
		ts := unix.NsecToTimespec(int64(d))
		start := time.Now()
		for unix.Nanosleep(&ts, &ts) == unix.EINTR {
		}
		return time.Since(start)
	}
	slow := 0
	for _, d := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, 10 * time.Millisecond} {
		// Ground truth: a call the machine made slower than 50ms fires
		// too, however it was asked.
		if took := sleep(d); took > 50*time.Millisecond {
			slow++
		}
	}
	st, err := w.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Matched[0] != uint64(slow) {
		t.Fatalf("%d matches, want %d (the calls slower than 50ms)", st.Matched[0], slow)
	}
	for i := 0; i < slow; i++ {
		select {
		case f := <-firings:
			if f.TID != tid || f.Trigger != 0 || f.Arg != uint64(nr) || f.Value <= uint64(50*time.Millisecond) {
				t.Errorf("firing %+v: want tid %d, trigger 0, syscall %d, value above 50ms", f, tid, nr)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("firing %d of %d not read in 10s", i+1, slow)
		}
	}
	if st.FiringsLost != 0 {
		t.Errorf("%d firings lost", st.FiringsLost)
	}

	if err := w.SetFilter(Filter{PIDs: []uint32{tid}}); err != nil {
		t.Fatal(err)
	}
	if err := w.SetHistograms(HistSyscall); err != nil {
		t.Fatal(err)
	}
	const calls = 200
	for range calls {
		unix.Getppid()
	}
	hists, err := w.Histograms()
	if err != nil {
		t.Fatal(err)
	}
	h := hists[HistKey{Hist: HistSyscall, Label: unix.SYS_GETPPID}]
	if h == nil {
		t.Fatalf("no getppid histogram in %v", hists)
	}
	var n uint64
	for _, c := range h.Buckets {
		n += c
	}
	if n != calls || h.Sum == 0 {
		t.Errorf("getppid histogram: %d calls (sum %d ns), want %d", n, h.Sum, calls)
	}
	if err := w.SetTrigger(0, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.SetHistograms(0); err != nil {
		t.Fatal(err)
	}
	if a := w.Attached(); len(a) != 0 {
		t.Errorf("with no trigger or histogram, still attached to %v", a)
	}
}

// TestWatchBuilds attaches every watch program of both builds: tp_btf,
// and raw tracepoints relocated against the kernel's BTF read as a file,
// as for kernels without BTF of their own.
func TestWatchBuilds(t *testing.T) {
	testkernel.Require(t)
	for _, btfFile := range []string{"", "/sys/kernel/btf/vmlinux"} {
		t.Run("btf="+btfFile, func(t *testing.T) { testWatchBuild(t, btfFile) })
	}
}

func testWatchBuild(t *testing.T, btfFile string) {
	w, err := LoadWatch(WatchOptions{KernelBTF: btfFile})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for kind := WatchSyscall; kind <= WatchOOM; kind++ {
		if err := w.SetTrigger(kind%MaxWatchTriggers, &Condition{Kind: kind, Threshold: 1 << 40, Signals: 1 << 30}); err != nil {
			t.Errorf("kind %d: %v", kind, err)
		}
	}
	if err := w.SetHistograms(HistSyscall | HistRunq | HistOffCPU | HistBlock); err != nil {
		t.Error(err)
	}
	if got := len(w.Attached()); got != len(watchTracepoints) {
		t.Errorf("attached to %v, want all %d tracepoints", w.Attached(), len(watchTracepoints))
	}
}
