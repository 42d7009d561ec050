//go:build !(386 || amd64)

package bpf

import (
	"errors"

	"github.com/cilium/ebpf"
)

// errNoCompat says why there is no compat object here: it is built for x86
// only (gen.go).
var errNoCompat = errors.New("this kernel has no fetching BPF atomics (5.12 and later have them), and rewind's object without them is built for x86 only")

func loadRewindCompat() (*ebpf.CollectionSpec, error)    { return nil, errNoCompat }
func loadRewindRawCompat() (*ebpf.CollectionSpec, error) { return nil, errNoCompat }
