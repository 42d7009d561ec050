package bpf

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// Event is a catalogue entry: the schema of one event and where it attaches.
type Event struct {
	schema.Event
	// Program is the BPF program that records the event.
	Program string
	// Tracepoint is the kernel tracepoint the program attaches to; empty
	// for a perf_event program (CPU samples), which attaches to a perf
	// event on each CPU instead.
	Tracepoint string
}

// PerfEvent reports whether the event's program attaches to perf events.
func (e Event) PerfEvent() bool { return e.Program != "" && e.Tracepoint == "" }

var catalog struct {
	once   sync.Once
	events []Event
	err    error
}

// Catalog returns every event rewind can record, in id order, derived from
// the compiled object's BTF: enum rw_event_type names the events and
// struct rw_ev_<name> gives each one's fields. Each event's group comes
// from the table of event kinds (package kinds), which must know it.
func Catalog() ([]Event, error) {
	catalog.once.Do(func() {
		spec, err := loadRewind()
		if err != nil {
			catalog.err = err
			return
		}
		catalog.events, catalog.err = catalogFromSpec(spec)
	})
	return catalog.events, catalog.err
}

// Schema returns the catalogue as a schema.Schema.
func Schema() (*schema.Schema, error) {
	events, err := Catalog()
	if err != nil {
		return nil, err
	}
	list := make([]schema.Event, len(events))
	for i, e := range events {
		list[i] = e.Event
	}
	return schema.New(list)
}

func catalogFromSpec(spec *ebpf.CollectionSpec) ([]Event, error) {
	var ids *btf.Enum
	if err := spec.Types.TypeByName("rw_event_type", &ids); err != nil {
		return nil, fmt.Errorf("find enum rw_event_type: %w", err)
	}
	var events []Event
	for _, v := range ids.Values {
		name := strings.ToLower(strings.TrimPrefix(v.Name, "RW_EV_"))
		if name == "cont" || name == "max" {
			continue
		}
		e, err := catalogEvent(spec, name, v.Value)
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	sort.Slice(events, func(i, j int) bool { return events[i].ID < events[j].ID })
	return events, nil
}

func catalogEvent(spec *ebpf.CollectionSpec, name string, id uint64) (Event, error) {
	k := kinds.LookupEvent(name)
	if k == nil {
		return Event{}, fmt.Errorf("event %s: not in the table of event kinds (snapshot/schema/kinds)", name)
	}
	e := Event{Event: schema.Event{ID: uint16(id), Name: name, Group: k.Group}, Program: "rw_" + name}
	// An architecture may lack an event's tracepoint (page faults are
	// x86's), and so its object the program: the event stays in the
	// schema, with no program, and Support says why.
	e.Tracepoint = name
	if prog, ok := spec.Programs[e.Program]; ok {
		_, tp, ok := strings.Cut(prog.SectionName, "/")
		if prog.SectionName == "perf_event" {
			tp, ok = "", true
		}
		if !ok {
			return e, fmt.Errorf("event %s: program section %q names no tracepoint", name, prog.SectionName)
		}
		e.Tracepoint = tp
	} else {
		e.Program = ""
	}

	var st *btf.Struct
	if err := spec.Types.TypeByName("rw_ev_"+name, &st); err != nil {
		return e, fmt.Errorf("event %s: find struct rw_ev_%s: %w", name, name, err)
	}
	e.Size = int(st.Size)
	for _, m := range st.Members {
		if strings.HasPrefix(m.Name, "__") {
			continue
		}
		if m.BitfieldSize != 0 || m.Offset%8 != 0 {
			return e, fmt.Errorf("event %s field %s: bitfields are not supported", name, m.Name)
		}
		f, err := fieldOf(m.Type)
		if err != nil {
			return e, fmt.Errorf("event %s field %s: %w", name, m.Name, err)
		}
		f.Name = m.Name
		f.Offset = int(m.Offset / 8)
		e.Fields = append(e.Fields, f)
	}
	return e, nil
}

// fieldOf maps a BTF member type to a schema field. A typedef named
// rw_<kind>_t sets the field's kind.
func fieldOf(t btf.Type) (schema.Field, error) {
	f := schema.Field{Count: 1}
	for {
		switch v := t.(type) {
		case *btf.Typedef:
			if f.Kind == "" && strings.HasPrefix(v.Name, "rw_") && strings.HasSuffix(v.Name, "_t") {
				f.Kind = strings.TrimSuffix(strings.TrimPrefix(v.Name, "rw_"), "_t")
			}
			t = v.Type
		case *btf.Volatile:
			t = v.Type
		case *btf.Const:
			t = v.Type
		case *btf.Array:
			if f.Count != 1 {
				return f, errors.New("nested arrays are not supported")
			}
			f.Count = int(v.Nelems)
			t = v.Type
			if i, ok := btf.UnderlyingType(v.Type).(*btf.Int); ok && isChar(i) {
				f.Type = schema.Str
				return f, nil
			}
		case *btf.Int:
			f.Type = intType(v)
			if f.Type == "" {
				return f, fmt.Errorf("unsupported integer of %d bytes", v.Size)
			}
			return f, nil
		case *btf.Enum:
			f.Type = schema.U32
			if v.Signed {
				f.Type = schema.S32
			}
			if v.Size != 4 {
				return f, fmt.Errorf("unsupported enum of %d bytes", v.Size)
			}
			return f, nil
		default:
			return f, fmt.Errorf("unsupported type %v", t)
		}
	}
}

func intType(i *btf.Int) schema.Type {
	signed := i.Encoding&btf.Signed != 0
	switch i.Size {
	case 1:
		if signed {
			return schema.S8
		}
		return schema.U8
	case 2:
		if signed {
			return schema.S16
		}
		return schema.U16
	case 4:
		if signed {
			return schema.S32
		}
		return schema.U32
	case 8:
		if signed {
			return schema.S64
		}
		return schema.U64
	}
	return ""
}

// isChar reports whether i is C's char (clang encodes it as a signed byte).
func isChar(i *btf.Int) bool {
	return i.Size == 1 && (i.Encoding&btf.Char != 0 || i.Name == "char")
}
