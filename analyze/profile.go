package analyze

import (
	"encoding/binary"
	"slices"
	"sort"
	"strings"

	"github.com/rewindtrace/rewind/internal/symbolize"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// Profile is the stack samples of one event, named and counted: the
// functions they were in and their most frequent stacks.
type Profile struct {
	// Event is cpu_sample (what ran) or offcpu_sample (where tasks
	// blocked).
	Event   string
	Samples int
	// Functions are by samples in the function itself (the innermost
	// frame), then by samples with the function anywhere on the stack.
	Functions []FuncCount
	// Stacks are the distinct stacks, most frequent first.
	Stacks []StackCount
}

// FuncCount is one function's samples.
type FuncCount struct {
	Name   string // the function, or its address when it has no name
	Module string // kernel module or file, "" for the kernel
	Kernel bool
	Self   int // samples in it
	Total  int // samples with it on the stack
}

// StackCount is one stack's samples.
type StackCount struct {
	PID   uint32
	Comm  string
	Count int
	// Frames are outermost first, the user stack then the kernel's.
	Frames []string
}

// maxStacks bounds the stacks a profile keeps.
const maxStacks = 1000

// profiles reads the stack samples into one Profile per stack event;
// comm names processes.
func (a *analyzer) profiles(comm func(uint32) string) ([]Profile, error) {
	s := a.r.Schema()
	type evIDs struct {
		id         uint16
		kf, uf, ff int
	}
	var events []evIDs
	var want snapshot.Want
	for _, name := range stackEvents {
		e := s.ByName(name)
		if e == nil {
			continue
		}
		ev := evIDs{id: e.ID, kf: e.Field(kinds.FieldKframes), uf: e.Field(kinds.FieldUframes), ff: e.Field(kinds.FieldFrames)}
		if ev.kf < 0 || ev.uf < 0 || ev.ff < 0 {
			continue
		}
		events = append(events, ev)
		for _, f := range []string{kinds.FieldKframes, kinds.FieldUframes, kinds.FieldFrames} {
			want.Field(s, name, f)
		}
	}
	if len(events) == 0 {
		return nil, nil
	}
	type key struct {
		event int
		pid   uint32
		raw   string // kframes u16, then the frames
	}
	counts := map[key]int{}
	var c snapshot.Chunk
	var buf []byte
	for _, sec := range a.r.Chunks() {
		if sec.LastTS < a.rng.From || sec.FirstTS > a.rng.To || !a.filter.cpu(sec.CPU) {
			continue
		}
		if err := a.r.ReadChunkWant(sec, &c, &want); err != nil {
			continue // damage is reported with the rest
		}
		for i, t := range c.Type {
			ts := c.TS[i]
			if ts < a.rng.From || ts > a.rng.To || !a.filter.task(c.TID[i], c.PID[i]) {
				continue
			}
			for ei, e := range events {
				if t != e.id {
					continue
				}
				row := int(c.Row[i])
				k := int(c.Column(t, e.kf).Uint(row))
				u := int(c.Column(t, e.uf).Uint(row))
				col := c.Column(t, e.ff)
				buf = binary.LittleEndian.AppendUint16(buf[:0], uint16(k))
				for j := 0; j < k+u && j < col.Field.Count; j++ {
					buf = binary.LittleEndian.AppendUint64(buf, col.UintAt(row, j))
				}
				counts[key{ei, c.PID[i], string(buf)}]++
			}
		}
	}
	syms, _ := a.r.Symbols() // damage is reported with the rest
	sym := symbolize.New(syms)
	var out []Profile
	for ei, e := range events {
		p := Profile{Event: s.ByID(e.id).Name}
		funcs := map[string]*FuncCount{}
		stacks := map[string]*StackCount{}
		for k, n := range counts {
			if k.event != ei {
				continue
			}
			p.Samples += n
			kframes := int(binary.LittleEndian.Uint16([]byte(k.raw)))
			var frames []symbolize.Frame // innermost first
			for j := 2; j+8 <= len(k.raw); j += 8 {
				addr := binary.LittleEndian.Uint64([]byte(k.raw[j:]))
				idx := (j - 2) / 8
				if idx < kframes {
					frames = append(frames, sym.Kernel(addr))
				} else {
					frames = append(frames, sym.User(k.pid, addr, idx == kframes))
				}
			}
			seen := map[string]bool{}
			names := make([]string, len(frames))
			for j, f := range frames {
				name := f.String()
				names[len(frames)-1-j] = name
				fc := funcs[name]
				if fc == nil {
					fc = &FuncCount{Name: name, Module: f.Module, Kernel: f.Kernel}
					funcs[name] = fc
				}
				if j == 0 {
					fc.Self += n
				}
				if !seen[name] {
					seen[name] = true
					fc.Total += n
				}
			}
			comm := comm(k.pid)
			sk := comm + "\x00" + strings.Join(names, "\x00")
			st := stacks[sk]
			if st == nil {
				st = &StackCount{PID: k.pid, Comm: comm, Frames: names}
				stacks[sk] = st
			}
			st.Count += n
		}
		for _, f := range funcs {
			p.Functions = append(p.Functions, *f)
		}
		sort.Slice(p.Functions, func(i, j int) bool {
			x, y := p.Functions[i], p.Functions[j]
			if x.Self != y.Self {
				return x.Self > y.Self
			}
			if x.Total != y.Total {
				return x.Total > y.Total
			}
			return x.Name < y.Name
		})
		for _, st := range stacks {
			p.Stacks = append(p.Stacks, *st)
		}
		sort.Slice(p.Stacks, func(i, j int) bool {
			x, y := p.Stacks[i], p.Stacks[j]
			if x.Count != y.Count {
				return x.Count > y.Count
			}
			return slices.Compare(x.Frames, y.Frames) < 0
		})
		if len(p.Stacks) > maxStacks {
			p.Stacks = p.Stacks[:maxStacks]
		}
		if p.Samples > 0 {
			out = append(out, p)
		}
	}
	return out, nil
}
