package ringbuf

import "sync/atomic"

// loadAfterCopy reloads a slot's sequence after copying it. x86 keeps loads
// in program order, so a plain atomic load cannot pass the copy.
func loadAfterCopy(p *uint32) uint32 { return atomic.LoadUint32(p) }
