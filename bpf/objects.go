package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// Ring geometry shared with include/ring.h; ringbuf/layout.go holds the
// full mirror of the slot layout.
const (
	SlotSize = 64
	HeadSize = 64
	// MinSlots and MaxSlots bound the slots per CPU: 4 KiB to 1 GiB.
	MinSlots = 64
	MaxSlots = 1 << 24
)

// Options configure the programs before they are loaded.
type Options struct {
	CPUs        int    // possible CPUs; rings are indexed by CPU number
	SlotsPerCPU uint32 // a power of two in [MinSlots, MaxSlots]
	SelfTGID    uint32 // the recorder's process, not recorded (but for interrupts landing on it)
	// KernelBTF is a BTF file to use when the kernel has none of its own
	// (/sys/kernel/btf/vmlinux); empty means the kernel's.
	KernelBTF string
	// Compat loads the object built for kernels without fetching atomics
	// (include/ring.h, rw_reserve) even where the kernel has them. Load
	// picks it by itself where the kernel lacks them. With KernelBTF, the
	// programs are raw tracepoints (include/ring.h, RW_TP).
	Compat bool
}

// Filter restricts recording to some tasks; zero values mean no restriction.
type Filter struct {
	PIDs      []uint32 // thread ids or process ids
	Comms     []string // task names (at most 15 bytes, as the kernel keeps them)
	CgroupIDs []uint64 // cgroup v2 ids
}

// Filter flags, mirroring RW_FILTER_* in include/ring.h.
const (
	filterPID    = 1
	filterComm   = 2
	filterCgroup = 4
)

// Objects are the loaded programs and maps. Methods are not safe for
// concurrent use (record.Recorder serialises them); Close is safe to call
// twice.
type Objects struct {
	coll   *ebpf.Collection // the maps and global variables
	progs  map[string]*ebpf.Program
	opts   Options
	events map[string]Event
	// unsupported says, per event, why this kernel cannot record it.
	unsupported map[string]string
	links       map[string]link.Link
	// samples are the CPU sample program's links and their perf events.
	samples []link.Link
	perf    []*os.File
	// filterSpec makes the map a new filter is built in.
	filterSpec *ebpf.MapSpec
	// compat is set when the object without fetching atomics is loaded.
	compat bool
	closed bool
}

// Load loads the maps and every program this kernel supports, attaching
// nothing; Unsupported says which events it could not load and why.
func Load(opts Options) (_ *Objects, err error) {
	if opts.CPUs < 1 {
		return nil, fmt.Errorf("load bpf: %d CPUs", opts.CPUs)
	}
	s := opts.SlotsPerCPU
	if s < MinSlots || s > MaxSlots || s&(s-1) != 0 {
		return nil, fmt.Errorf("load bpf: %d slots per CPU is not a power of two in [%d, %d]", s, MinSlots, MaxSlots)
	}
	if uint64(opts.CPUs)*uint64(s) > 1<<32-1 {
		return nil, fmt.Errorf("load bpf: %d CPUs × %d slots exceed one array map", opts.CPUs, s)
	}
	catalog, err := Catalog()
	if err != nil {
		return nil, err
	}
	compat := opts.Compat
	if !compat {
		fetch, err := haveFetchAtomics()
		if err != nil {
			return nil, err
		}
		compat = !fetch
	}
	spec, err := objectFor(opts.KernelBTF != "", compat)()
	if err != nil {
		return nil, err
	}
	spec.Maps[rewindMapRwRing].MaxEntries = uint32(opts.CPUs) * s
	spec.Maps[rewindMapRwHeads].MaxEntries = uint32(opts.CPUs)
	if err := spec.Variables[rewindVarRwSelfTgid].Set(opts.SelfTGID); err != nil {
		return nil, fmt.Errorf("set rw_self_tgid: %w", err)
	}
	if err := spec.Variables[rewindVarRwSlotMask].Set(s - 1); err != nil {
		return nil, fmt.Errorf("set rw_slot_mask: %w", err)
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones
	// to the cgroup, where this is a no-op.
	_ = rlimit.RemoveMemlock()

	var collOpts ebpf.CollectionOptions
	var kernel *btf.Spec
	if opts.KernelBTF != "" {
		if kernel, err = btf.LoadSpec(opts.KernelBTF); err != nil {
			return nil, fmt.Errorf("load kernel BTF %s: %w", opts.KernelBTF, err)
		}
		collOpts.Programs.KernelTypes = kernel
	}
	if err := setArgSizes(spec, catalog, kernel); err != nil {
		return nil, err
	}
	o := &Objects{opts: opts, compat: compat, events: map[string]Event{}, progs: map[string]*ebpf.Program{},
		unsupported: map[string]string{}, links: map[string]link.Link{},
		filterSpec: spec.Maps[rewindMapRwFilter].InnerMap.Copy()}
	defer func() {
		if err != nil {
			o.Close()
		}
	}()
	// The maps and global data first, shared by every program.
	maps := spec.Copy()
	maps.Programs = map[string]*ebpf.ProgramSpec{}
	if o.coll, err = ebpf.NewCollectionWithOptions(maps, collOpts); err != nil {
		return nil, fmt.Errorf("create bpf maps: %w", err)
	}
	// Then each event's program on its own, so that an event this kernel
	// lacks, or whose program it rejects, costs only that event.
	support := Support(kernel)
	for _, e := range catalog {
		o.events[e.Name] = e
		if why := support(e); why != "" {
			o.unsupported[e.Name] = why
			continue
		}
		prog, err := loadProgram(spec, e.Program, o.coll.Maps, collOpts)
		if err != nil {
			o.unsupported[e.Name] = err.Error()
			continue
		}
		o.progs[e.Name] = prog
	}
	return o, nil
}

// objectFor picks the build of the programs (gen.go): raw tracepoints when
// the kernel's types come from a BTF file (the kernel, without BTF of its
// own, cannot attach tp_btf programs), and the compat reservation where the
// kernel has no fetching atomics.
func objectFor(raw, compat bool) func() (*ebpf.CollectionSpec, error) {
	switch {
	case raw && compat:
		return loadRewindRawCompat
	case raw:
		return loadRewindRaw
	case compat:
		return loadRewindCompat
	}
	return loadRewind
}

// loadProgram loads one program of spec against maps created already.
func loadProgram(spec *ebpf.CollectionSpec, name string, maps map[string]*ebpf.Map, opts ebpf.CollectionOptions) (*ebpf.Program, error) {
	one := spec.Copy()
	for n := range one.Programs {
		if n != name {
			delete(one.Programs, n)
		}
	}
	opts.MapReplacements = maps
	coll, err := ebpf.NewCollectionWithOptions(one, opts)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("the verifier rejects %s: %s", name, verifierTail(ve))
		}
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	defer coll.Close()
	return coll.DetachProgram(name), nil
}

func verifierTail(ve *ebpf.VerifierError) string {
	log := ve.Log
	if len(log) > 3 {
		log = log[len(log)-3:]
	}
	return strings.Join(log, "; ")
}

// Compat reports whether the object for kernels without fetching atomics
// is loaded.
func (o *Objects) Compat() bool { return o.compat }

// Build says which build of the programs is loaded (gen.go): how they
// attach and how they reserve ring slots.
func (o *Objects) Build() string {
	attach := "tp_btf programs (the kernel's BTF)"
	if o.opts.KernelBTF != "" {
		attach = "raw tracepoint programs (BTF from " + o.opts.KernelBTF + ")"
	}
	reserve := "slots reserved by atomic add"
	if o.compat {
		reserve = "slots reserved under a flag (no fetching atomics)"
	}
	return attach + ", " + reserve
}

// Unsupported returns, for each event this kernel cannot record, why.
func (o *Objects) Unsupported() map[string]string { return o.unsupported }

// RingFD and HeadsFD are the file descriptors of the ring array and the
// per-CPU heads, for mmap.
func (o *Objects) RingFD() int  { return o.coll.Maps[rewindMapRwRing].FD() }
func (o *Objects) HeadsFD() int { return o.coll.Maps[rewindMapRwHeads].FD() }

// Enable attaches the event's program, if it is not attached yet, and turns
// the event on.
func (o *Objects) Enable(name string) error {
	e, ok := o.events[name]
	if !ok {
		return fmt.Errorf("enable %s: no such event", name)
	}
	if why, ok := o.unsupported[name]; ok {
		return fmt.Errorf("enable %s: not supported by this kernel: %s", name, why)
	}
	if e.PerfEvent() {
		return fmt.Errorf("enable %s: it samples at a rate: use EnableSamples", name)
	}
	if _, ok := o.links[name]; !ok {
		prog := o.progs[name]
		var l link.Link
		var err error
		if prog.Type() == ebpf.RawTracepoint {
			l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: e.Tracepoint, Program: prog})
		} else {
			l, err = link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
		}
		if err != nil {
			return fmt.Errorf("attach %s to tracepoint %s: %w", e.Program, e.Tracepoint, err)
		}
		o.links[name] = l
	}
	return o.setEnabled(e.ID, true)
}

// EnableSamples attaches the CPU sample program to a cpu-clock perf event
// on every online CPU, hz times a second, and turns CPU samples on.
func (o *Objects) EnableSamples(hz int) (err error) {
	const name = kinds.CPUSample
	e := o.events[name]
	if why, ok := o.unsupported[name]; ok {
		return fmt.Errorf("stack samples: not supported by this kernel: %s", why)
	}
	if len(o.samples) > 0 {
		return fmt.Errorf("stack samples: already on")
	}
	online, err := sysx.OnlineCPUs()
	if err != nil {
		return fmt.Errorf("stack samples: %w", err)
	}
	defer func() {
		if err != nil {
			o.closeSamples()
		}
	}()
	for cpu := 0; cpu < o.opts.CPUs; cpu++ {
		if !online[cpu] {
			continue
		}
		f, err := sysx.PerfSample(cpu, uint64(hz))
		if err != nil {
			return fmt.Errorf("stack samples: perf_event_open cpu-clock on cpu %d: %w", cpu, err)
		}
		o.perf = append(o.perf, f)
		l, err := link.AttachRawLink(link.RawLinkOptions{Target: int(f.Fd()), Program: o.progs[name], Attach: ebpf.AttachPerfEvent})
		if errors.Is(err, unix.EINVAL) {
			// Before 5.15 a perf event takes its program by ioctl, and
			// closing the event (closeSamples) detaches it.
			err = unix.IoctlSetInt(int(f.Fd()), unix.PERF_EVENT_IOC_SET_BPF, o.progs[name].FD())
			if err == nil {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("stack samples: attach %s to cpu %d: %w", e.Program, cpu, err)
		}
		o.samples = append(o.samples, l)
	}
	return o.setEnabled(e.ID, true)
}

// DisableSamples turns CPU samples off and closes their perf events, so
// that they cost nothing until EnableSamples.
func (o *Objects) DisableSamples() error {
	e, ok := o.events[kinds.CPUSample]
	if !ok {
		return fmt.Errorf("stack samples: no cpu_sample event")
	}
	return errors.Join(o.setEnabled(e.ID, false), o.closeSamples())
}

func (o *Objects) closeSamples() error {
	var errs []error
	for _, l := range o.samples {
		errs = append(errs, l.Close())
	}
	for _, f := range o.perf {
		errs = append(errs, f.Close())
	}
	o.samples, o.perf = nil, nil
	return errors.Join(errs...)
}

// Detach turns the event off and detaches its program, so that its
// tracepoint costs nothing until Enable attaches it again.
func (o *Objects) Detach(name string) error {
	if err := o.Disable(name); err != nil {
		return err
	}
	l, ok := o.links[name]
	if !ok {
		return nil
	}
	delete(o.links, name)
	if err := l.Close(); err != nil {
		return fmt.Errorf("detach %s: %w", name, err)
	}
	return nil
}

// Disable turns the event off without detaching or reloading anything.
func (o *Objects) Disable(name string) error {
	e, ok := o.events[name]
	if !ok {
		return fmt.Errorf("disable %s: no such event", name)
	}
	return o.setEnabled(e.ID, false)
}

func (o *Objects) setEnabled(id uint16, on bool) error {
	v := o.coll.Variables[rewindVarRwEnabled]
	flags := make([]uint8, v.Size())
	if err := v.Get(flags); err != nil {
		return fmt.Errorf("read rw_enabled: %w", err)
	}
	if int(id) >= len(flags) {
		return fmt.Errorf("event id %d beyond rw_enabled[%d]", id, len(flags))
	}
	flags[id] = 0
	if on {
		flags[id] = 1
	}
	if err := v.Set(flags); err != nil {
		return fmt.Errorf("write rw_enabled: %w", err)
	}
	return nil
}

// filterKey mirrors struct rw_filter_key in include/ring.h: a kind, four
// bytes of padding, then an id (little-endian) or a task name.
type filterKey [24]byte

// Filter key kinds, mirroring enum rw_filter_kind.
const (
	filterKindFlags  = 0
	filterKindID     = 1
	filterKindComm   = 2
	filterKindCgroup = 3
)

func newFilterKey(kind uint32, id uint64) filterKey {
	var k filterKey
	binary.LittleEndian.PutUint32(k[0:], kind)
	binary.LittleEndian.PutUint64(k[8:], id)
	return k
}

// SetFilter replaces the active filter; a zero Filter lifts it. The new
// filter is built whole in a map of its own and swapped in with one update,
// so every event is judged by the old filter or the new one: none passes
// unfiltered and none that both keep is dropped. Events already recorded
// stay.
func (o *Objects) SetFilter(f Filter) error {
	return setFilter(o.coll, o.filterSpec, f)
}

// setFilter builds f in a new map of filterSpec's and swaps it into coll's
// rw_filter (include/filter.h).
func setFilter(coll *ebpf.Collection, filterSpec *ebpf.MapSpec, f Filter) error {
	on := coll.Variables[rewindVarRwFilterOn]
	if len(f.PIDs)+len(f.Comms)+len(f.CgroupIDs) == 0 {
		// The old set stays in place, unused, until the next filter.
		if err := on.Set(uint32(0)); err != nil {
			return fmt.Errorf("write rw_filter_on: %w", err)
		}
		return nil
	}
	if n := len(f.PIDs) + len(f.Comms) + len(f.CgroupIDs); n >= int(filterSpec.MaxEntries) {
		return fmt.Errorf("filter: %d pids, names and cgroups; at most %d", n, filterSpec.MaxEntries-1)
	}
	set, err := ebpf.NewMap(filterSpec)
	if err != nil {
		return fmt.Errorf("create filter map: %w", err)
	}
	defer set.Close() // the outer map holds a reference of its own
	var flags uint32
	for _, p := range f.PIDs {
		if err := set.Put(newFilterKey(filterKindID, uint64(p)), uint32(1)); err != nil {
			return fmt.Errorf("add pid %d to filter: %w", p, err)
		}
		flags |= filterPID
	}
	for _, c := range f.Comms {
		if len(c) > 15 {
			return fmt.Errorf("comm %q is longer than the kernel's 15 bytes", c)
		}
		k := newFilterKey(filterKindComm, 0)
		copy(k[8:], c)
		if err := set.Put(k, uint32(1)); err != nil {
			return fmt.Errorf("add comm %q to filter: %w", c, err)
		}
		flags |= filterComm
	}
	for _, id := range f.CgroupIDs {
		if err := set.Put(newFilterKey(filterKindCgroup, id), uint32(1)); err != nil {
			return fmt.Errorf("add cgroup %d to filter: %w", id, err)
		}
		flags |= filterCgroup
	}
	if err := set.Put(newFilterKey(filterKindFlags, 0), flags); err != nil {
		return fmt.Errorf("write filter flags: %w", err)
	}
	if err := coll.Maps[rewindMapRwFilter].Put(uint32(0), set); err != nil {
		return fmt.Errorf("install filter: %w", err)
	}
	if err := on.Set(uint32(1)); err != nil {
		return fmt.Errorf("write rw_filter_on: %w", err)
	}
	return nil
}

// SetWake makes the programs signal WakeMap each time a CPU's reservations
// cross a multiple of every slots (a power of two); 0 stops the signals.
func (o *Objects) SetWake(every uint64) error {
	var shift uint32
	if every > 0 {
		if every&(every-1) != 0 {
			return fmt.Errorf("wake every %d slots: not a power of two", every)
		}
		shift = uint32(bits.TrailingZeros64(every))
	}
	if err := o.coll.Variables[rewindVarRwWakeShift].Set(shift); err != nil {
		return fmt.Errorf("write rw_wake_shift: %w", err)
	}
	return nil
}

// WakeMap is the ring buffer the programs signal on (SetWake): each record
// is the number (u32) of the CPU whose ring crossed the mark.
func (o *Objects) WakeMap() *ebpf.Map { return o.coll.Maps[rewindMapRwWake] }

// Counts returns, per event, the records the programs have written on
// every CPU since the objects were loaded (rw_counts).
func (o *Objects) Counts() (map[string]uint64, error) {
	m := o.coll.Maps["rw_counts"]
	out := map[string]uint64{}
	var perCPU []uint64
	for name, e := range o.events {
		if err := m.Lookup(uint32(e.ID), &perCPU); err != nil {
			return nil, fmt.Errorf("read rw_counts of %s: %w", name, err)
		}
		var n uint64
		for _, v := range perCPU {
			n += v
		}
		if n > 0 {
			out[name] = n
		}
	}
	return out, nil
}

// Misses returns, per attached event, how many times the kernel skipped its
// program because another BPF program was already running on that CPU
// (bpf_prog_info.recursion_misses). The kernel counts these per program,
// not per CPU.
func (o *Objects) Misses() (map[string]uint64, error) {
	out := map[string]uint64{}
	for name := range o.links {
		stats, err := o.progs[name].Stats()
		if err != nil {
			return nil, fmt.Errorf("program stats %s: %w", name, err)
		}
		out[name] = stats.RecursionMisses
	}
	return out, nil
}

// Close detaches every program and frees the maps.
func (o *Objects) Close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	errs := []error{o.closeSamples()}
	for name, l := range o.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %w", name, err))
		}
	}
	for _, p := range o.progs {
		p.Close()
	}
	if o.coll != nil {
		o.coll.Close()
	}
	return errors.Join(errs...)
}
