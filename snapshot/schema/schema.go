// Package schema describes rewind's events: ids, names and typed fields.
//
// The recorder builds a Schema from the BPF object's BTF (bpf.Catalog), the
// snapshot writer stores it in every file, and readers, analyses and exporters
// look events and fields up by name in the Schema the file carries, so none of
// them hard-codes a layout.
package schema

import (
	"fmt"
	"sort"
)

// Type is the stored type of a field's elements.
type Type string

const (
	U8  Type = "u8"
	U16 Type = "u16"
	U32 Type = "u32"
	U64 Type = "u64"
	S8  Type = "s8"
	S16 Type = "s16"
	S32 Type = "s32"
	S64 Type = "s64"
	// Str is a NUL-terminated string of at most Count bytes.
	Str Type = "str"
)

// Size is the size of one element in the recorder's raw payload.
func (t Type) Size() int {
	switch t {
	case U8, S8, Str:
		return 1
	case U16, S16:
		return 2
	case U32, S32:
		return 4
	case U64, S64:
		return 8
	}
	return 0
}

// Signed reports whether t is a signed integer type.
func (t Type) Signed() bool { return t == S8 || t == S16 || t == S32 || t == S64 }

// Valid reports whether t is one of the types above.
func (t Type) Valid() bool { return t.Size() != 0 }

// Kinds say how a field should be read and shown; they come from the
// rw_<kind>_t typedefs in bpf/include/events.h. Package kinds holds what
// each one means: how its values print and what they name.
const (
	KindComm      = "comm"       // task name
	KindTID       = "tid"        // thread id
	KindPID       = "pid"        // process id (tgid)
	KindPrio      = "prio"       // kernel priority 0..139
	KindTaskState = "task_state" // sched_switch prev_state, report encoding
	KindSyscall   = "syscall_nr" // syscall number in the recording machine's ABI
	KindErrnoRet  = "errno_ret"  // return value, -errno on failure
	KindHex       = "hex"        // shown in hexadecimal
	KindCPU       = "cpu"        // CPU number
	KindDev       = "dev"        // block device, kernel dev_t (major << 20 | minor)
	KindRWBS      = "rwbs"       // block request type and flags, as blktrace writes them
	KindBlkStatus = "blk_status" // blk_status_t
	KindSoftirq   = "softirq"    // softirq vector
	KindSignal    = "signal"     // signal number
	KindFamily    = "inet_family"
	KindPort      = "port"      // host byte order
	KindInetAddr  = "inet_addr" // 16 bytes: IPv4 in the first 4, or IPv6; read with the event's inet_family field
	KindTCPState  = "tcp_state"
	KindKsym      = "ksym" // kernel function address
	// KindStack is an array of return addresses, innermost first: the
	// event's kframes kernel frames, then its uframes user frames.
	KindStack = "stack"
	// KindEnumPrefix starts kinds naming a kernel enum ("enum_skb_drop_reason"):
	// the snapshot's metadata carries that enum's names.
	KindEnumPrefix = "enum_"
)

// Field is one named field of an event payload.
type Field struct {
	Name string `json:"name"`
	Type Type   `json:"type"`
	// Count is the number of elements: 1 for a scalar, the array length for
	// an array, the maximum length in bytes for a Str.
	Count int `json:"count"`
	// Offset is the byte offset in the recorder's raw payload. Files store
	// fields column by column, so readers do not need it.
	Offset int    `json:"offset"`
	Kind   string `json:"kind,omitempty"`
}

// Event is one event type.
type Event struct {
	ID     uint16  `json:"id"`
	Name   string  `json:"name"`
	Group  string  `json:"group,omitempty"`
	Size   int     `json:"size"` // raw payload bytes
	Fields []Field `json:"fields"`
}

// Field returns the index of the named field, or -1.
func (e *Event) Field(name string) int {
	for i := range e.Fields {
		if e.Fields[i].Name == name {
			return i
		}
	}
	return -1
}

// Schema is a set of events indexed by id and name. The zero value is empty;
// build one with New. A Schema is immutable and safe for concurrent use.
type Schema struct {
	events []Event
	byID   []int // id -> index into events, -1 when unknown
}

// New validates events and indexes them.
func New(events []Event) (*Schema, error) {
	s := &Schema{events: append([]Event(nil), events...)}
	sort.Slice(s.events, func(i, j int) bool { return s.events[i].ID < s.events[j].ID })
	names := map[string]bool{}
	maxID := 0
	for i := range s.events {
		e := &s.events[i]
		if e.ID == 0 {
			return nil, fmt.Errorf("event %q: id 0 is reserved", e.Name)
		}
		if e.Name == "" || names[e.Name] {
			return nil, fmt.Errorf("event id %d: missing or repeated name %q", e.ID, e.Name)
		}
		names[e.Name] = true
		if i > 0 && s.events[i-1].ID == e.ID {
			return nil, fmt.Errorf("events %q and %q share id %d", s.events[i-1].Name, e.Name, e.ID)
		}
		seen := map[string]bool{}
		for _, f := range e.Fields {
			if !f.Type.Valid() || f.Count < 1 || f.Count > 1<<16 {
				return nil, fmt.Errorf("event %q field %q: bad type %q or count %d", e.Name, f.Name, f.Type, f.Count)
			}
			if f.Name == "" || seen[f.Name] || reserved[f.Name] {
				return nil, fmt.Errorf("event %q: missing, repeated or reserved field name %q", e.Name, f.Name)
			}
			seen[f.Name] = true
			if f.Offset < 0 || f.Offset+f.Type.Size()*f.Count > e.Size {
				return nil, fmt.Errorf("event %q field %q: offset %d outside payload of %d bytes", e.Name, f.Name, f.Offset, e.Size)
			}
		}
		if int(e.ID) > maxID {
			maxID = int(e.ID)
		}
	}
	s.byID = make([]int, maxID+1)
	for i := range s.byID {
		s.byID[i] = -1
	}
	for i := range s.events {
		s.byID[s.events[i].ID] = i
	}
	return s, nil
}

// reserved are the names every record carries besides its fields.
var reserved = map[string]bool{"ts_ns": true, "cpu": true, "seq": true, "tid": true, "pid": true, "comm": true, "event": true}

// Events returns the events in id order. The slice must not be modified.
func (s *Schema) Events() []Event { return s.events }

// ByID returns the event with the id, or nil when the schema does not know it.
func (s *Schema) ByID(id uint16) *Event {
	if int(id) >= len(s.byID) || s.byID[id] < 0 {
		return nil
	}
	return &s.events[s.byID[id]]
}

// ByName returns the named event, or nil.
func (s *Schema) ByName(name string) *Event {
	for i := range s.events {
		if s.events[i].Name == name {
			return &s.events[i]
		}
	}
	return nil
}

// MaxID is the largest event id.
func (s *Schema) MaxID() uint16 { return uint16(len(s.byID) - 1) }
