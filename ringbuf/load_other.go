//go:build !amd64

package ringbuf

import "sync/atomic"

// loadAfterCopy reloads a slot's sequence after copying it. On weakly
// ordered CPUs the copy's loads could pass a plain load, so read with an
// atomic add of zero, which orders every access before it.
func loadAfterCopy(p *uint32) uint32 { return atomic.AddUint32(p, 0) }
