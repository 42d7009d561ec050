package main

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/bpf"
)

// watch loads the trigger and live histogram programs (with the BTF file
// on the pass without the kernel's BTF), sets a trigger of every kind and
// every histogram, so that each program passes this kernel's verifier and
// attaches, then checks that "nanosleep slower than 30ms" on this thread
// fires exactly for its one slow call.
func (g *guest) watch(ctx context.Context) error {
	var opts bpf.WatchOptions
	if g.pass != &g.res.Pass {
		opts.KernelBTF = g.recordArgs[len(g.recordArgs)-1]
	}
	w, err := bpf.LoadWatch(opts)
	if err != nil {
		return err
	}
	defer w.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for kind := bpf.WatchRunq; kind <= bpf.WatchOOM; kind++ {
		if err := w.SetTrigger(kind, &bpf.Condition{Kind: kind, Threshold: 1 << 40, Signals: 1 << 30, PID: 1}); err != nil {
			return fmt.Errorf("trigger kind %d: %w", kind, err)
		}
	}
	if err := w.SetHistograms(bpf.HistSyscall | bpf.HistRunq | bpf.HistOffCPU | bpf.HistBlock); err != nil {
		return err
	}
	nr := int32(unix.SYS_NANOSLEEP)
	if err := w.SetTrigger(0, &bpf.Condition{Kind: bpf.WatchSyscall, Threshold: uint64(30 * time.Millisecond), Syscall: &nr, PID: uint32(unix.Gettid())}); err != nil {
		return err
	}
	slow := 0
	for _, d := range []time.Duration{time.Millisecond, 100 * time.Millisecond, time.Millisecond} {
		ts := unix.NsecToTimespec(int64(d))
		start := time.Now()
		if err := unix.Nanosleep(&ts, nil); err != nil {
			return fmt.Errorf("nanosleep: %w", err)
		}
		if time.Since(start) > 30*time.Millisecond {
			slow++
		}
	}
	st, err := w.Stats()
	if err != nil {
		return err
	}
	if st.Matched[0] != uint64(slow) {
		return fmt.Errorf("the syscall trigger matched %d times; %d nanosleep calls took over 30ms", st.Matched[0], slow)
	}
	f, err := w.ReadFiring()
	if err != nil {
		return err
	}
	if f.Arg != uint64(nr) || f.TID != uint32(unix.Gettid()) || f.Value < uint64(30*time.Millisecond) {
		return fmt.Errorf("firing %+v: want nanosleep of this thread above 30ms", f)
	}
	hists, err := w.Histograms()
	if err != nil {
		return err
	}
	if h := hists[bpf.HistKey{Hist: bpf.HistSyscall, Label: uint32(nr)}]; h == nil || len(h.Buckets) == 0 {
		return fmt.Errorf("no live nanosleep histogram")
	}
	return nil
}
