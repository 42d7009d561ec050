package record

import (
	"os"

	"github.com/rewindtrace/rewind/record/counters"
)

// TapCounters calls fn with every counter sample as the recorder's sampler
// takes it, from the next sample on, for as long as the recorder lives or
// until remove is called; once remove returns, fn is not called again.
// remove may be called twice, and after Close.
//
// The tap covers every source, those AddCounters adds later included:
// the recorder keeps one sampler from New to Close, and AddCounters and
// RemoveCounters change its sources, not the sampler. Samples come only
// while the recorder records (the sampler is stopped otherwise).
//
// fn runs on the sampling thread holding the sampler's lock (see
// counters.Sampler.Tap): it must return quickly, must not keep
// Sample.Values past the call, and must not call the Recorder (remove
// included), whose methods may be waiting for that lock.
func (r *Recorder) TapCounters(fn func(counters.Sample)) (remove func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == Closed {
		return nil, os.ErrClosed
	}
	return r.counters.Tap(fn)
}
