//go:build !(386 || amd64)

package bpf

import (
	"errors"

	"github.com/cilium/ebpf"
)

// loadRewindCompat stands in for the compat object, which is built for x86
// only (gen.go).
func loadRewindCompat() (*ebpf.CollectionSpec, error) {
	return nil, errors.New("this kernel has no fetching BPF atomics (5.12 and later have them), and rewind's object without them is built for x86 only")
}
