package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rewindtrace/rewind/test/kernels/result"
)

// consoleLines is how much of a failed boot's console the report shows.
const consoleLines = 40

// matrix runs kernels: fetch, boot, read the result, judge.
type matrix struct {
	cache, work, initramfs string
	accel                  string
	timeout                time.Duration
	exp                    expectations
}

// runAll runs the kernels, jobs at a time, and returns their outcomes in
// the kernels' order.
func (m *matrix) runAll(ctx context.Context, ks []kernel, jobs int) []*outcome {
	outcomes := make([]*outcome, len(ks))
	slots := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for i, k := range ks {
		slots <- struct{}{} // in the kernels' order
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			outcomes[i] = m.run(ctx, k)
		}()
	}
	wg.Wait()
	return outcomes
}

// run fetches and boots one kernel and judges what the guest reported.
func (m *matrix) run(ctx context.Context, k kernel) *outcome {
	o := &outcome{kernel: k, dir: filepath.Join(m.work, k.name)}
	defer func() { o.judge(m.exp, getppidCalls) }()
	if ctx.Err() != nil {
		o.err = ctx.Err()
		return o
	}
	start := time.Now()
	if o.img, o.err = fetch(ctx, m.cache, k); o.err != nil {
		o.err = fmt.Errorf("fetch %s kernel: %w", k.name, o.err)
		logf("%s: %v", k.name, o.err)
		return o
	}
	how := "downloaded"
	if o.img.cached {
		how = "cached"
	}
	logf("%s: %s %s (%s, %s) in %.0f s; booting", k.name, o.img.pkg.name, o.img.pkg.version, o.img.pkg.suite, how, time.Since(start).Seconds())
	if o.err = os.MkdirAll(o.dir, 0o755); o.err != nil {
		return o
	}
	v := &vm{vmlinuz: o.img.vmlinuz, initramfs: m.initramfs, dir: o.dir, accel: m.accel, timeout: m.timeout}
	start = time.Now()
	bootErr := v.boot(ctx)
	o.seconds = time.Since(start).Seconds()
	o.readConsole(consoleLines)
	o.out, o.err = readResults(o.dir)
	if bootErr != nil {
		o.err = bootErr
	}
	if bootErr != nil {
		logf("%s: %s: %v", k.name, o.img.release, bootErr)
	} else {
		logf("%s: %s ran in %.0f s", k.name, o.img.release, o.seconds)
	}
	return o
}

// readResults parses what the guest wrote on its result port.
func readResults(dir string) (result.Output, error) {
	b, err := os.ReadFile(filepath.Join(dir, resultsFile))
	if err != nil {
		return result.Output{}, fmt.Errorf("read the guest's results: %w", err)
	}
	out, err := result.Parse(b)
	if err != nil {
		return out, fmt.Errorf("%s: %w", filepath.Join(dir, resultsFile), err)
	}
	return out, nil
}
