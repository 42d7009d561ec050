package bpf

import (
	"bytes"
	"encoding/binary"
	"os"
	"reflect"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/rewindtrace/rewind/internal/testkernel"
)

// TestTracepointArgs reads argument sizes from a prototype built here: the
// context pointer is skipped, each argument sized by its type.
func TestTracepointArgs(t *testing.T) {
	u8 := &btf.Int{Name: "u8", Size: 1}
	i32 := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	ptr := &btf.Pointer{Target: &btf.Void{}}
	proto := &btf.FuncProto{Return: &btf.Void{}, Params: []btf.FuncParam{
		{Name: "__data", Type: ptr}, {Name: "skb", Type: ptr}, {Name: "reason", Type: &btf.Typedef{Name: "blk_status_t", Type: u8}}, {Name: "err", Type: i32},
	}}
	var b btf.Builder
	if _, err := b.Add(&btf.Typedef{Name: "btf_trace_example", Type: &btf.Pointer{Target: proto}}); err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	got, err := TracepointArgs(spec, "example")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{8, 1, 4}; !reflect.DeepEqual(got, want) {
		t.Errorf("argument sizes %v, want %v", got, want)
	}
	if _, err := TracepointArgs(spec, "missing"); err == nil {
		t.Error("a tracepoint missing from BTF gave no error")
	}
}

// TestObjects loads both objects on this kernel: the one it picks by
// itself, and the one for kernels without fetching atomics. The latter must
// support every event the former does, and both carry this kernel's
// tracepoint argument sizes.
func TestObjects(t *testing.T) {
	testkernel.Require(t)
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	fetch, err := haveFetchAtomics()
	if err != nil {
		t.Fatal(err)
	}
	unsupported := map[bool]map[string]string{}
	for _, compat := range []bool{false, true} {
		o, err := Load(Options{CPUs: 1, SlotsPerCPU: MinSlots, SelfTGID: uint32(os.Getpid()), Compat: compat})
		if err != nil {
			t.Fatalf("load (compat %v): %v", compat, err)
		}
		defer o.Close()
		if want := compat || !fetch; o.Compat() != want {
			t.Errorf("Compat() = %v with Options.Compat %v and fetching atomics %v", o.Compat(), compat, fetch)
		}
		unsupported[compat] = o.Unsupported()
		sizes := make([]uint8, o.coll.Variables["rw_tp_argsize"].Size())
		if err := o.coll.Variables["rw_tp_argsize"].Get(sizes); err != nil {
			t.Fatal(err)
		}
		for _, e := range o.events {
			if e.Tracepoint == "" {
				continue
			}
			args, err := TracepointArgs(kernel, e.Tracepoint)
			if err != nil {
				continue
			}
			row := sizes[int(e.ID)*maxArgs:][:len(args)]
			for i, n := range args {
				if int(row[i]) != n {
					t.Errorf("%s (compat %v): argument %d is %d bytes in rw_tp_argsize, %d in the kernel's BTF", e.Name, compat, i, row[i], n)
				}
			}
		}
	}
	for name, why := range unsupported[true] {
		if _, ok := unsupported[false][name]; !ok {
			t.Errorf("%s: the compat object cannot record it (%s), the other one can", name, why)
		}
	}
}

// TestFetchProbeEncoding checks that the probe sends the kernel a fetching
// add (imm BPF_ADD | BPF_FETCH), not the plain add every kernel takes.
func TestFetchProbeEncoding(t *testing.T) {
	var b bytes.Buffer
	if err := fetchProbe().Marshal(&b, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	raw := b.Bytes()
	for i := 0; i+8 <= len(raw); i += 8 {
		if raw[i] == 0xdb { // BPF_STX | BPF_DW | BPF_ATOMIC
			if imm := binary.LittleEndian.Uint32(raw[i+4:]); imm != 0x01 {
				t.Fatalf("atomic instruction % x has imm %#x, want BPF_FETCH (0x1)", raw[i:i+8], imm)
			}
			return
		}
	}
	t.Fatalf("no atomic instruction in % x", raw)
}
