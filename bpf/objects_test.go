package bpf

import (
	"bytes"
	"encoding/binary"
	"os"
	"reflect"
	"testing"

	"github.com/cilium/ebpf"
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

// TestObjects loads every build of the programs on this kernel: the one it
// picks by itself, the one for kernels without fetching atomics, and both
// as raw tracepoints relocated against a BTF file (the kernel's own, read
// as a file). Each must support every event the first one does, attach as
// its build says, and carry this kernel's tracepoint argument sizes.
func TestObjects(t *testing.T) {
	testkernel.Require(t)
	const btfFile = "/sys/kernel/btf/vmlinux"
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	fetch, err := haveFetchAtomics()
	if err != nil {
		t.Fatal(err)
	}
	var base map[string]string
	for _, build := range []struct{ raw, compat bool }{{false, false}, {false, true}, {true, false}, {true, true}} {
		opts := Options{CPUs: 1, SlotsPerCPU: MinSlots, SelfTGID: uint32(os.Getpid()), Compat: build.compat}
		if build.raw {
			opts.KernelBTF = btfFile
		}
		o, err := Load(opts)
		if err != nil {
			t.Fatalf("load %+v: %v", build, err)
		}
		defer o.Close()
		if want := build.compat || !fetch; o.Compat() != want {
			t.Errorf("%+v: Compat() = %v with fetching atomics %v", build, o.Compat(), fetch)
		}
		if base == nil {
			base = o.Unsupported()
		}
		for name, why := range o.Unsupported() {
			if _, ok := base[name]; !ok {
				t.Errorf("%+v: %s cannot be recorded (%s), though the default build can", build, name, why)
			}
		}
		sizes := make([]uint8, o.coll.Variables["rw_tp_argsize"].Size())
		if err := o.coll.Variables["rw_tp_argsize"].Get(sizes); err != nil {
			t.Fatal(err)
		}
		for name, prog := range o.progs {
			e := o.events[name]
			if e.Tracepoint == "" {
				continue
			}
			if raw := prog.Type() == ebpf.RawTracepoint; raw != build.raw && name != "workqueue_execute_end" {
				t.Errorf("%+v: %s is a %s program", build, name, prog.Type())
			}
			args, err := TracepointArgs(kernel, e.Tracepoint)
			if err != nil {
				t.Fatal(err)
			}
			row := sizes[int(e.ID)*maxArgs:][:len(args)]
			for i, n := range args {
				if int(row[i]) != n {
					t.Errorf("%+v: %s argument %d is %d bytes in rw_tp_argsize, %d in the kernel's BTF", build, name, i, row[i], n)
				}
			}
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
