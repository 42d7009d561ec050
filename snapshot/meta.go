package snapshot

// Meta describes where, when and why a snapshot was taken. It is stored as
// JSON; fields are added, never renamed.
type Meta struct {
	Recorder string `json:"recorder"` // e.g. "rewind 0.1.0"
	Host     string `json:"host"`
	Kernel   Kernel `json:"kernel"`
	CPUs     int    `json:"cpus"`
	PageSize int    `json:"page_size,omitempty"`
	// Clock names the clock of every timestamp in the file: "boottime"
	// (CLOCK_BOOTTIME, ns).
	Clock     string     `json:"clock"`
	ClockRefs []ClockRef `json:"clock_refs"`
	StartedNS uint64     `json:"started_ns"` // recording started
	TakenNS   uint64     `json:"taken_ns"`   // the snapshot was triggered
	Trigger   Trigger    `json:"trigger"`
	Recording Recording  `json:"recording"`
	// ProgramMisses counts, per event, runs the kernel skipped because
	// another BPF program was running on that CPU (not per CPU: the kernel
	// keeps one count per program).
	ProgramMisses map[string]uint64 `json:"program_misses,omitempty"`
	// CPUDropped counts, per CPU, records the programs could not write since
	// recording started; those inside a chunk's range are in its Lost too.
	CPUDropped []uint64 `json:"cpu_dropped,omitempty"`
	// Enums names the values of the recording kernel's enums that fields of
	// kind enum_<name> hold, by enum name.
	Enums map[string][]EnumValue `json:"enums,omitempty"`
	// Unavailable lists events that were asked for (through a group) but
	// this kernel cannot record, with the reason.
	Unavailable map[string]string `json:"unavailable,omitempty"`
}

// EnumValue is one named value of a kernel enum.
type EnumValue struct {
	Name  string `json:"name"`
	Value int64  `json:"value"`
}

// EnumName returns the name of value v of the named enum, or "".
func (m *Meta) EnumName(enum string, v int64) string {
	for _, e := range m.Enums[enum] {
		if e.Value == v {
			return e.Name
		}
	}
	return ""
}

// Kernel is uname(2) of the recording machine.
type Kernel struct {
	Sysname string `json:"sysname"`
	Release string `json:"release"`
	Version string `json:"version"`
	Machine string `json:"machine"`
}

// ClockRef is one reading of the clocks, taken back to back, for mapping
// timestamps to wall time.
type ClockRef struct {
	Name        string `json:"name"`
	BoottimeNS  int64  `json:"boottime_ns"`
	MonotonicNS int64  `json:"monotonic_ns"`
	RealtimeNS  int64  `json:"realtime_ns"`
}

// Trigger kinds.
const (
	TriggerManual    = "manual"
	TriggerSignal    = "signal"
	TriggerDuration  = "duration"
	TriggerExit      = "exit"
	TriggerCondition = "condition"
	TriggerCrash     = "crash"
)

// Trigger says why the snapshot was taken.
type Trigger struct {
	Kind   string `json:"kind"`
	Signal string `json:"signal,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Firing is the condition that fired, for kind "condition" (a trigger
	// set on a session, or an Alertmanager alert).
	Firing *Firing `json:"firing,omitempty"`
}

// Firing is one firing of a trigger: the condition, and the event that
// matched it.
type Firing struct {
	Trigger   string `json:"trigger"`   // the trigger's name
	Condition string `json:"condition"` // as it was given, e.g. "syscall > 50ms"
	// TS is when the matching event happened (CLOCK_BOOTTIME ns): for a
	// latency, its end.
	TS  uint64 `json:"ts_ns"`
	CPU int    `json:"cpu"`
	TID uint32 `json:"tid,omitempty"`
	PID uint32 `json:"pid,omitempty"`
	// Comm is the matching task's name.
	Comm string `json:"comm,omitempty"`
	// Value is what crossed the threshold, in Unit: a latency in ns, a
	// signal number, an exit status, a counter's value.
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
	// What names the matching event's subject: the system call, the
	// signal, the device and operation, the counter.
	What string `json:"what,omitempty"`
	// Count is how many times the condition has matched since the trigger
	// was set, this firing included; a rate policy may have passed some.
	Count uint64 `json:"count,omitempty"`
	// DelayNS is how long recording went on after the firing before the
	// snapshot was taken (the post-trigger delay).
	DelayNS uint64 `json:"delay_ns,omitempty"`
	// Labels are an Alertmanager alert's labels.
	Labels map[string]string `json:"labels,omitempty"`
}

// Recording is the configuration the events were recorded with.
type Recording struct {
	Events      []string `json:"events"`
	SlotSize    int      `json:"slot_size"`
	SlotsPerCPU uint64   `json:"slots_per_cpu"`
	BufferBytes uint64   `json:"buffer_bytes_per_cpu"`
	Filter      Filter   `json:"filter"`
	// History is the compressed tier's configuration and state, when the
	// recording had one.
	History *History `json:"history,omitempty"`
	// Counters is the counter sampler's configuration and state, when
	// counters were sampled (format 1.1).
	Counters *Counters `json:"counters,omitempty"`
	// StackRate is the CPU sample rate per CPU (cpu_sample), 0 when none.
	StackRate int `json:"stack_rate_hz,omitempty"`
}

// Counters describes the counter sampler at snapshot time.
type Counters struct {
	// Sources are the sources sampled, with their rates in samples a second.
	Sources map[string]float64 `json:"sources"`
	KeepNS  uint64             `json:"keep_ns"` // how long samples are kept
	// SamplerCPUNS is the sampling thread's CPU time since it started.
	SamplerCPUNS uint64 `json:"sampler_cpu_ns"`
	// Missed counts samples skipped because the sampler was late.
	Missed uint64 `json:"missed"`
	// Unavailable lists sources, or parts of them, this machine cannot
	// read, with the reason.
	Unavailable map[string]string `json:"unavailable,omitempty"`
	// Error is the first read error, if sampling hit one.
	Error string `json:"error,omitempty"`
}

// History describes the compressed history tier at snapshot time.
type History struct {
	BudgetBytes   uint64 `json:"budget_bytes,omitempty"` // 0: no budget
	MaxAgeNS      uint64 `json:"max_age_ns,omitempty"`   // 0: no age limit
	HeldEvents    uint64 `json:"held_events"`
	HeldBytes     uint64 `json:"held_bytes"`
	EvictedEvents uint64 `json:"evicted_events"` // dropped, oldest first, to fit
	DrainedEvents uint64 `json:"drained_events"`
	// LostEvents are sequence numbers the kernel tier overwrote before a
	// drain reached them; the chunks' lost counts include them.
	LostEvents uint64 `json:"lost_events"`
	DrainCPUNS uint64 `json:"drain_cpu_ns"`
	// Error is why the last drain failed, if it did.
	Error string `json:"error,omitempty"`
}

// Filter is the in-kernel filter that was active.
type Filter struct {
	PIDs    []uint32 `json:"pids,omitempty"`
	Comms   []string `json:"comms,omitempty"`
	Cgroups []string `json:"cgroups,omitempty"`
}

// WallNS converts a boottime timestamp to wall-clock ns since the epoch
// with the last clock reference, or returns false without one.
func (m *Meta) WallNS(boot uint64) (int64, bool) {
	if len(m.ClockRefs) == 0 {
		return 0, false
	}
	r := m.ClockRefs[len(m.ClockRefs)-1]
	return int64(boot) - r.BoottimeNS + r.RealtimeNS, true
}

// Proc is one process in the process table taken at snapshot time.
type Proc struct {
	PID     int      `json:"pid"`
	PPID    int      `json:"ppid"`
	Comm    string   `json:"comm"`
	Cmdline []string `json:"cmdline,omitempty"`
	Threads []Thread `json:"threads,omitempty"`
}

// Thread is one thread of a Proc.
type Thread struct {
	TID  int    `json:"tid"`
	Comm string `json:"comm"`
}

// Event is one record going into a chunk. Data is the payload laid out as
// the event's C struct: schema field offsets index into it, and bytes past
// its end read as zero.
type Event struct {
	TS   uint64 // CLOCK_BOOTTIME ns
	Seq  uint64 // per-CPU sequence number
	TID  uint32
	PID  uint32
	Type uint16
	Data []byte
}
