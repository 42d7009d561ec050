package kinds

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/rewindtrace/rewind/internal/syscalls"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot/schema"
)

// Env is what naming values may take from the snapshot they come from. A
// nil *Env names no syscall and no kernel enum.
type Env struct {
	// Machine is the recording machine (uname -m), whose ABI numbers the
	// syscalls.
	Machine string
	// Enums names values of the recording kernel's enums, which the
	// snapshot's metadata carries (*snapshot.Meta is an EnumNamer).
	Enums EnumNamer
}

// EnumNamer names a value of a kernel enum, or returns "".
type EnumNamer interface {
	EnumName(enum string, v int64) string
}

// Kind is a field kind: how a field's values print and what they name.
// Kinds are immutable and safe for concurrent use.
type Kind struct {
	// Name is the kind as the schema stores it (schema.Kind*): <name> in
	// the rw_<name>_t typedef of bpf/include/events.h that gives it.
	Name string
	// Hexadecimal values print as "0x7ffd...", which JSON gets as a
	// string so that readers using doubles keep every bit.
	Hexadecimal bool
	// Key is the JSON key view writes the name a value stands for under,
	// next to the value: "" for the field's name and "_str".
	Key string

	name func(env *Env, k *Kind, v uint64) string
	enum string // the kernel enum, for an enum_<enum> kind
}

// The field kinds.
var (
	// None is the kind of a field with no kind, or with one this table
	// does not know (a newer recorder's): plain numbers and strings.
	None = &Kind{}

	Comm      = &Kind{Name: schema.KindComm}
	TID       = &Kind{Name: schema.KindTID}
	PID       = &Kind{Name: schema.KindPID}
	Prio      = &Kind{Name: schema.KindPrio}
	TaskState = &Kind{Name: schema.KindTaskState, name: func(_ *Env, _ *Kind, v uint64) string { return taskStateName(v) }}
	// Syscall is named for the recording machine's ABI.
	Syscall = &Kind{Name: schema.KindSyscall, Key: "syscall", name: syscallName}
	// ErrnoRet names a negative value by its errno ("ENOENT").
	ErrnoRet = &Kind{Name: schema.KindErrnoRet, Key: "errno", name: errnoName}
	Hex      = &Kind{Name: schema.KindHex, Hexadecimal: true}
	CPU      = &Kind{Name: schema.KindCPU}
	// Dev is a kernel dev_t, major << 20 | minor, named "major:minor".
	Dev       = &Kind{Name: schema.KindDev, name: func(_ *Env, _ *Kind, v uint64) string { return devName(v) }}
	RWBS      = &Kind{Name: schema.KindRWBS}
	BlkStatus = &Kind{Name: schema.KindBlkStatus, name: indexName(blkStatus)}
	Softirq   = &Kind{Name: schema.KindSoftirq, name: indexName(softirqs)}
	Signal    = &Kind{Name: schema.KindSignal, name: func(_ *Env, _ *Kind, v uint64) string { return sysx.SignalName(int(int64(v))) }}
	Family    = &Kind{Name: schema.KindFamily, name: familyName}
	Port      = &Kind{Name: schema.KindPort}
	// InetAddr prints as FormatInetAddr does, for the family in the
	// event's field of kind Family.
	InetAddr = &Kind{Name: schema.KindInetAddr}
	TCPState = &Kind{Name: schema.KindTCPState, name: indexName(tcpStates)}
	Ksym     = &Kind{Name: schema.KindKsym, Hexadecimal: true}
	// Stack holds return addresses, innermost first: the event's kframes
	// (FieldKframes) kernel frames, then its uframes user frames.
	Stack = &Kind{Name: schema.KindStack, Hexadecimal: true}
	// Enum stands for every enum_<enum> kind: a value of the recording
	// kernel's enum <enum>, named from the snapshot's metadata.
	Enum = &Kind{Name: schema.KindEnumPrefix, name: enumName}
)

// Kinds are every field kind, in the order bpf/include/events.h declares
// their typedefs. The slice must not be modified.
var Kinds = []*Kind{Comm, TID, PID, Prio, TaskState, Syscall, ErrnoRet, Hex, CPU, Dev, RWBS, BlkStatus,
	Softirq, Signal, Family, Port, InetAddr, TCPState, Ksym, Stack, Enum}

// LookupKind returns the named field kind, or nil when the table does not
// know it. Each enum_<enum> name is a Kind of its own, like Enum.
func LookupKind(name string) *Kind {
	for _, k := range Kinds {
		if k.Name == name && k != Enum {
			return k
		}
	}
	if enum, ok := strings.CutPrefix(name, schema.KindEnumPrefix); ok && enum != "" {
		k := *Enum
		k.Name, k.enum = name, enum
		return &k
	}
	return nil
}

// KindOf returns the kind of field f: None when it has none, or one this
// table does not know. Look kinds up once per schema, not per event.
func KindOf(f schema.Field) *Kind {
	if k := LookupKind(f.Kind); k != nil {
		return k
	}
	return None
}

// Names reports whether values of the kind stand for names.
func (k *Kind) Names() bool { return k.name != nil }

// ValueName returns what v stands for: a syscall's name, a task state's
// letters, an errno's, a signal's, a device's "major:minor", ... or ""
// when the kind names nothing or v has no name.
func (k *Kind) ValueName(env *Env, v uint64) string {
	if k.name == nil {
		return ""
	}
	return k.name(env, k, v)
}

// NameKey is the JSON key of the name a value of the named field stands
// for.
func (k *Kind) NameKey(field string) string {
	if k.Key != "" {
		return k.Key
	}
	return field + "_str"
}

// AppendValue appends v as the kind prints it: in hex for hexadecimal
// kinds, else in decimal, signed when the field's type is.
func (k *Kind) AppendValue(b []byte, v uint64, signed bool) []byte {
	switch {
	case k.Hexadecimal:
		b = append(b, "0x"...)
		return strconv.AppendUint(b, v, 16)
	case signed:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendUint(b, v, 10)
}

// Label is what analyses label a value with: its name, or, when it has
// none, the value as it prints.
func (k *Kind) Label(env *Env, v int64) string {
	if name := k.ValueName(env, uint64(v)); name != "" {
		return name
	}
	return string(k.AppendValue(nil, uint64(v), true))
}

func syscallName(env *Env, _ *Kind, v uint64) string {
	if env == nil {
		return ""
	}
	return syscalls.Name(env.Machine, int64(v))
}

func errnoName(_ *Env, _ *Kind, v uint64) string {
	if ret := int64(v); ret < 0 {
		return sysx.ErrnoName(int(-ret))
	}
	return ""
}

func enumName(env *Env, k *Kind, v uint64) string {
	if env == nil || env.Enums == nil || k.enum == "" {
		return ""
	}
	return env.Enums.EnumName(k.enum, int64(v))
}

// devName names a kernel dev_t, major << 20 | minor, "major:minor".
func devName(dev uint64) string {
	return strconv.FormatUint(dev>>20, 10) + ":" + strconv.FormatUint(dev&0xfffff, 10)
}

// indexName names values by a table indexed by them.
func indexName(names []string) func(*Env, *Kind, uint64) string {
	return func(_ *Env, _ *Kind, v uint64) string {
		if v < uint64(len(names)) {
			return names[v]
		}
		return ""
	}
}

// softirqs index <linux/interrupt.h>'s softirq vectors.
var softirqs = []string{"HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU"}

// tcpStates index <net/tcp_states.h>.
var tcpStates = []string{"", "TCP_ESTABLISHED", "TCP_SYN_SENT", "TCP_SYN_RECV", "TCP_FIN_WAIT1", "TCP_FIN_WAIT2",
	"TCP_TIME_WAIT", "TCP_CLOSE", "TCP_CLOSE_WAIT", "TCP_LAST_ACK", "TCP_LISTEN", "TCP_CLOSING", "TCP_NEW_SYN_RECV", "TCP_BOUND_INACTIVE"}

// blkStatus index the BLK_STS_* codes of <linux/blk_types.h>.
var blkStatus = []string{"OK", "NOTSUPP", "TIMEOUT", "NOSPC", "TRANSPORT", "TARGET", "RESV_CONFLICT", "MEDIUM",
	"PROTECTION", "RESOURCE", "IOERR", "DM_REQUEUE", "AGAIN", "DEV_RESOURCE", "ZONE_OPEN_RESOURCE",
	"ZONE_ACTIVE_RESOURCE", "OFFLINE", "DURATION_LIMIT"}

// Address families of <linux/socket.h>.
const (
	afInet  = 2
	afInet6 = 10
)

func familyName(_ *Env, _ *Kind, v uint64) string {
	switch v {
	case afInet:
		return "AF_INET"
	case afInet6:
		return "AF_INET6"
	}
	return ""
}

// FormatInetAddr renders the 16 bytes of an InetAddr field for its
// family: IPv4 in the first 4, or IPv6; "" for another family.
func FormatInetAddr(b []byte, family uint64) string {
	switch {
	case family == afInet && len(b) >= 4:
		return netip.AddrFrom4([4]byte(b[:4])).String()
	case family == afInet6 && len(b) >= 16:
		return netip.AddrFrom16([16]byte(b[:16])).String()
	}
	return ""
}
