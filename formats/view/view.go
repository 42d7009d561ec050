// Package view prints a snapshot's events one per line in time order, as
// text like babeltrace's or as JSON lines (docs/JSON.md).
package view

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"time"

	"github.com/rewindtrace/rewind/internal/symbolize"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// Options select and shape what is printed.
type Options struct {
	JSON bool
	// PID and TID keep events of that process or thread (0: all).
	PID, TID uint32
	// CPU keeps events of one CPU (-1: all).
	CPU int
	// Events keeps the named events (empty: all).
	Events []string
	// Range keeps events in it.
	Range snapshot.Range
	// Limit stops after that many events (0: no limit).
	Limit int
	// Counters adds the samples of these counter sources ("all": every
	// one) to the output, in time order with the events.
	Counters []string
	// NoEvents prints counter samples only.
	NoEvents bool
}

// Write prints the events of r that opts select.
func Write(w io.Writer, r *snapshot.Reader, opts Options) error {
	s := r.Schema()
	v := &viewer{
		bw:      bufio.NewWriterSize(w, 1<<16),
		meta:    r.Meta(),
		env:     kinds.Env{Machine: r.Meta().Kernel.Machine, Enums: r.Meta()},
		schema:  s,
		opts:    opts,
		comms:   map[uint32]string{},
		keep:    make([]bool, int(s.MaxID())+1),
		special: make([]special, int(s.MaxID())+1),
		fields:  make([][]fieldKind, int(s.MaxID())+1),
	}
	for _, p := range r.Procs() {
		for _, t := range p.Threads {
			v.comms[uint32(t.TID)] = t.Comm
		}
	}
	for _, e := range s.Events() {
		v.keep[e.ID] = len(opts.Events) == 0
		for _, name := range opts.Events {
			if name == e.Name {
				v.keep[e.ID] = true
			}
		}
		v.special[e.ID] = specialOf(&e)
		v.fields[e.ID] = fieldKinds(&e)
	}
	for _, name := range opts.Events {
		if s.ByName(name) == nil {
			return &NotFoundError{What: "event", Name: name}
		}
	}
	if err := v.loadCounters(r); err != nil {
		return err
	}
	syms, _ := r.Symbols() // damage is reported with the rest
	v.sym = symbolize.New(syms)
	var err error
	if !opts.NoEvents {
		err = r.Each(opts.Range.From, opts.Range.To, v.event)
	}
	if err == nil {
		err = v.flushCounters(^uint64(0))
	}
	if err == errLimit {
		err = nil
	}
	if ferr := v.bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

var errLimit = errors.New("limit reached")

type viewer struct {
	bw      *bufio.Writer
	meta    *snapshot.Meta
	env     kinds.Env
	schema  *schema.Schema
	opts    Options
	comms   map[uint32]string // by tid, as last seen
	keep    []bool            // by event id
	special []special         // by event id
	fields  [][]fieldKind     // by event id, by field
	printed int
	prevTS  uint64
	buf     []byte
	series  []*seriesCursor // counter samples still to print
	sym     *symbolize.Symbolizer
}

// special says which fields of an event change what a thread is called.
type special struct {
	kind       int // 0 none, or one of the constants below
	f1, f2, f3 int // field indexes
}

const (
	specSwitch = iota + 1 // prev_comm (current task), next_tid + next_comm
	specTarget            // target_tid + target_comm
	specFork              // child_tid + child_comm
	specExec              // filename: the current task's new name
)

func specialOf(e *schema.Event) special {
	prevComm, nextTID, nextComm := e.Field(kinds.FieldPrevComm), e.Field(kinds.FieldNextTID), e.Field(kinds.FieldNextComm)
	targetTID, targetComm := e.Field(kinds.FieldTargetTID), e.Field(kinds.FieldTargetComm)
	childTID, childComm := e.Field(kinds.FieldChildTID), e.Field(kinds.FieldChildComm)
	switch {
	case nextTID >= 0 && nextComm >= 0 && prevComm >= 0:
		return special{specSwitch, prevComm, nextTID, nextComm}
	case targetTID >= 0 && targetComm >= 0:
		return special{kind: specTarget, f1: targetTID, f2: targetComm}
	case childTID >= 0 && childComm >= 0:
		return special{kind: specFork, f1: childTID, f2: childComm}
	case e.Name == kinds.SchedProcessExec && e.Field(kinds.FieldFilename) >= 0:
		return special{kind: specExec, f1: e.Field(kinds.FieldFilename)}
	}
	return special{}
}

// fieldKind is how one field of an event prints, looked up once per event
// type.
type fieldKind struct {
	kind *kinds.Kind
	key  string // the JSON key of the name a value stands for
	// family is the index of the event's address family field, for an
	// InetAddr field (-1: none).
	family int
}

func fieldKinds(e *schema.Event) []fieldKind {
	out := make([]fieldKind, len(e.Fields))
	family := -1
	for i, f := range e.Fields {
		k := kinds.KindOf(f)
		out[i] = fieldKind{kind: k, key: k.NameKey(f.Name)}
		if k == kinds.Family {
			family = i
		}
	}
	for i := range out {
		out[i].family = family
	}
	return out
}

// comm is the name of event i's thread as last seen. Thread id 0 is each
// CPU's idle task, which the kernel names swapper/<cpu>.
func (v *viewer) comm(c *snapshot.Chunk, i int) string {
	if c.TID[i] == 0 {
		return "swapper/" + strconv.Itoa(c.CPU)
	}
	return v.comms[c.TID[i]]
}

// track updates thread names from event i before it is printed.
func (v *viewer) track(c *snapshot.Chunk, i int) {
	t := c.Type[i]
	if int(t) >= len(v.special) {
		return
	}
	sp := v.special[t]
	row := int(c.Row[i])
	col := func(f int) *snapshot.Column { return c.Column(t, f) }
	switch sp.kind {
	case specSwitch:
		v.comms[c.TID[i]] = string(col(sp.f1).Bytes(row))
		v.comms[uint32(col(sp.f2).Uint(row))] = string(col(sp.f3).Bytes(row))
	case specTarget, specFork:
		v.comms[uint32(col(sp.f1).Uint(row))] = string(col(sp.f2).Bytes(row))
	case specExec:
		name := path.Base(string(col(sp.f1).Bytes(row)))
		if len(name) > 15 {
			name = name[:15]
		}
		v.comms[c.TID[i]] = name
	}
}

func (v *viewer) event(c *snapshot.Chunk, i int) error {
	v.track(c, i)
	t := c.Type[i]
	et := v.schema.ByID(t)
	if et == nil || !v.keep[t] {
		return nil
	}
	o := v.opts
	if o.CPU >= 0 && c.CPU != o.CPU || o.PID != 0 && c.PID[i] != o.PID || o.TID != 0 && c.TID[i] != o.TID {
		return nil
	}
	if err := v.flushCounters(c.TS[i]); err != nil {
		return err
	}
	if o.Limit > 0 && v.printed >= o.Limit {
		return errLimit
	}
	v.printed++
	b := v.buf[:0]
	if o.JSON {
		b = v.appendJSON(b, c, i, et)
	} else {
		b = v.appendText(b, c, i, et)
	}
	v.buf = b
	_, err := v.bw.Write(b)
	return err
}

// appendDelta writes " (+s.nnnnnnnnn)", the time since the line before.
func (v *viewer) appendDelta(b []byte, ts uint64) []byte {
	b = append(b, " (+"...)
	if v.prevTS != 0 && ts >= v.prevTS {
		b = strconv.AppendFloat(b, float64(ts-v.prevTS)/1e9, 'f', 9, 64)
	} else {
		b = append(b, "?.?????????"...)
	}
	v.prevTS = ts
	return append(b, ')')
}

func (v *viewer) appendJSON(b []byte, c *snapshot.Chunk, i int, et *schema.Event) []byte {
	b = append(b, `{"ts_ns":`...)
	b = strconv.AppendUint(b, c.TS[i], 10)
	b = append(b, `,"cpu":`...)
	b = strconv.AppendInt(b, int64(c.CPU), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, c.Seq[i], 10)
	b = append(b, `,"event":`...)
	b = strconv.AppendQuote(b, et.Name)
	b = append(b, `,"tid":`...)
	b = strconv.AppendUint(b, uint64(c.TID[i]), 10)
	b = append(b, `,"pid":`...)
	b = strconv.AppendUint(b, uint64(c.PID[i]), 10)
	b = append(b, `,"comm":`...)
	b = strconv.AppendQuote(b, v.comm(c, i))
	b = v.appendFields(b, c, i, et)
	return append(b, "}\n"...)
}

func (v *viewer) appendText(b []byte, c *snapshot.Chunk, i int, et *schema.Event) []byte {
	ts := c.TS[i]
	if wall, ok := v.meta.WallNS(ts); ok {
		b = time.Unix(0, wall).AppendFormat(b, "15:04:05.000000000")
	} else {
		b = strconv.AppendUint(b, ts, 10)
	}
	b = v.appendDelta(b, ts)
	b = append(b, " cpu"...)
	b = strconv.AppendInt(b, int64(c.CPU), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(c.PID[i]), 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(c.TID[i]), 10)
	b = append(b, ' ')
	comm := v.comm(c, i)
	if comm == "" {
		comm = "?"
	}
	b = append(b, comm...)
	b = append(b, ' ')
	b = append(b, et.Name...)
	b = append(b, ':')
	b = v.appendFields(b, c, i, et)
	return append(b, '\n')
}

// appendFields writes an event's own fields, `,"name":value` in JSON and
// ` name=value` in text, each scalar followed by what its kind derives (the
// syscall's name, the task state's letters, the errno's name, ...).
func (v *viewer) appendFields(b []byte, c *snapshot.Chunk, i int, et *schema.Event) []byte {
	row := int(c.Row[i])
	fks := v.fields[et.ID]
	for fi, f := range et.Fields {
		col := c.Column(et.ID, fi)
		fk := &fks[fi]
		b = v.appendKey(b, f.Name)
		switch {
		case f.Type == schema.Str:
			b = strconv.AppendQuote(b, string(col.Bytes(row)))
		case fk.kind == kinds.InetAddr:
			b = v.appendAddr(b, c, i, et, col, fk.family)
		case fk.kind == kinds.Stack:
			b = v.appendStack(b, c, i, et, col)
		case f.Count > 1:
			b = append(b, '[')
			for k := 0; k < f.Count; k++ {
				if k > 0 {
					b = append(b, ',')
				}
				b = v.appendValue(b, f, fk.kind, col.UintAt(row, k))
			}
			b = append(b, ']')
		default:
			val := col.Uint(row)
			b = v.appendValue(b, f, fk.kind, val)
			b = v.appendDerived(b, fk, val)
		}
	}
	return b
}

// appendAddr writes an address field as text, read for the family the
// event's field of index family gives.
func (v *viewer) appendAddr(b []byte, c *snapshot.Chunk, i int, et *schema.Event, col *snapshot.Column, family int) []byte {
	row := int(c.Row[i])
	var fam uint64
	if family >= 0 {
		fam = c.Column(et.ID, family).Uint(row)
	}
	var raw [16]byte
	for k := range raw {
		if k < col.Field.Count {
			raw[k] = byte(col.UintAt(row, k))
		}
	}
	s := kinds.FormatInetAddr(raw[:], fam)
	if v.opts.JSON {
		return strconv.AppendQuote(b, s)
	}
	if s == "" {
		s = "?"
	}
	return append(b, s...)
}

func (v *viewer) appendKey(b []byte, name string) []byte {
	if v.opts.JSON {
		b = append(b, ',')
		b = strconv.AppendQuote(b, name)
		return append(b, ':')
	}
	b = append(b, ' ')
	b = append(b, name...)
	return append(b, '=')
}

// appendValue writes an integer as its kind prints it: in decimal, or in
// hex for hexadecimal kinds, which JSON gets as strings ("0x7ffd...") so
// that readers using doubles keep every bit.
func (v *viewer) appendValue(b []byte, f schema.Field, k *kinds.Kind, val uint64) []byte {
	if k.Hexadecimal && v.opts.JSON {
		b = append(b, '"')
		b = k.AppendValue(b, val, false)
		return append(b, '"')
	}
	return k.AppendValue(b, val, f.Type.Signed())
}

// appendDerived writes the name a field's value stands for: `,"key":"name"`
// in JSON, `(name)` in text.
func (v *viewer) appendDerived(b []byte, fk *fieldKind, val uint64) []byte {
	if !fk.kind.Names() {
		return b
	}
	name := fk.kind.ValueName(&v.env, val)
	if name == "" {
		return b
	}
	if v.opts.JSON {
		b = v.appendKey(b, fk.key)
		return strconv.AppendQuote(b, name)
	}
	b = append(b, '(')
	b = append(b, name...)
	return append(b, ')')
}

// NotFoundError says that an event, or counter series, asked for by name
// is not in the snapshot. What is "event" or "counters".
type NotFoundError struct {
	What, Name string
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %q: %s", e.What, e.Name, e.Reason()) }

// Reason is the error without the name.
func (e *NotFoundError) Reason() string {
	if e.What == "counters" {
		return "the snapshot has no such counter series"
	}
	return "the snapshot has no such event"
}
