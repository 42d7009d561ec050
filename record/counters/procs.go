package counters

import (
	"runtime"
	"sync"
)

// A sampling thread sleeps in clock_nanosleep holding a P until the
// runtime's sysmon takes it back, which can take up to 10 ms: so that no
// other goroutine waits for it, each sampler gives itself a P of its own
// (GOMAXPROCS + 1) while its thread sleeps between samples, and gives it
// back when it stops or has nothing to sample. Several samplers in one
// process (recording sessions of one daemon) each add one. The change is
// relative to whatever GOMAXPROCS is, made under one lock, so samplers
// starting and stopping at once neither lose nor double an adjustment, and
// a GOMAXPROCS set by the program in between is kept.
//
// Setting GOMAXPROCS stops the world for a moment: it happens when a
// sampler starts or stops sampling, never per sample.
var extraProcs struct {
	sync.Mutex
	n int // Ps added, one per sampler sleeping between samples
}

func takeP() {
	extraProcs.Lock()
	defer extraProcs.Unlock()
	extraProcs.n++
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
}

func giveP() {
	extraProcs.Lock()
	defer extraProcs.Unlock()
	extraProcs.n--
	if p := runtime.GOMAXPROCS(0); p > 1 {
		runtime.GOMAXPROCS(p - 1)
	}
}

// extraPs is how many Ps the samplers have added.
func extraPs() int {
	extraProcs.Lock()
	defer extraProcs.Unlock()
	return extraProcs.n
}
