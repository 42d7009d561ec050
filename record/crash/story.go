package crash

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rewindtrace/rewind/analyze"
	"github.com/rewindtrace/rewind/formats/view"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// Story is what a snapshot in a crash record says of the seconds before
// the crash: the crashing thread's last system calls and signals, the CPU
// it crashed on and who else ran there, and how long it waited to run or
// was off CPU.
type Story struct {
	Snapshot string
	// Crash is when the crashing thread got its signal (signal_generate),
	// or the trigger's time when the snapshot holds none.
	Crash uint64
	CPU   int // -1: unknown
	// Last are the thread's last events (system calls, signals) before
	// the crash, as rewind view prints them.
	Last []string
	// Window is the span the figures below cover: up to StoryWindow
	// before the crash, as far as the snapshot reaches.
	Window time.Duration
	// RunqWait and OffCPU are the crashing process's time waiting to run
	// and off CPU in the window.
	RunqWait, OffCPU time.Duration
	// Others are the other processes on the crash's CPU in the window,
	// by time on it.
	Others []analyze.Process
}

// StoryWindow is how far back before the crash Story looks.
const StoryWindow = 5 * time.Second

// storyEvents are the events of the thread Story lists.
var storyEvents = []string{kinds.SysEnter, kinds.SysExit, kinds.SignalGenerate, kinds.SignalDeliver}

// ReadStory tells a record's snapshot's story of the crash.
func ReadStory(path string, r *Record) (*Story, error) {
	sr, err := snapshot.Open(path)
	if err != nil {
		return nil, err
	}
	defer sr.Close()
	st := &Story{Snapshot: path, CPU: -1}
	if f := sr.Meta().Trigger.Firing; f != nil {
		st.Crash = f.TS
	}
	// The crash: the thread's last signal_generate of the signal.
	if gen := sr.Schema().ByName(kinds.SignalGenerate); gen != nil {
		sig := gen.Field("sig")
		var c snapshot.Chunk
		for _, sec := range sr.Chunks() {
			if err := sr.ReadChunk(sec, &c); err != nil {
				continue // damage is the reader's to report
			}
			for i := 0; i < c.Len(); i++ {
				if c.Type[i] != gen.ID || c.TID[i] != uint32(r.TID) {
					continue
				}
				if sig >= 0 && int32(c.Column(gen.ID, sig).Int(int(c.Row[i]))) != int32(r.Signal) {
					continue
				}
				if c.TS[i] >= st.Crash || st.CPU < 0 {
					st.Crash, st.CPU = c.TS[i], c.CPU
				}
			}
		}
	}
	first, _ := sr.Span()
	from := first
	if st.Crash > uint64(StoryWindow) && st.Crash-uint64(StoryWindow) > first {
		from = st.Crash - uint64(StoryWindow)
	}
	rng := snapshot.Range{From: from, To: st.Crash}
	st.Window = time.Duration(st.Crash - from)

	var out bytes.Buffer
	if err := view.Write(&out, sr, view.Options{TID: uint32(r.TID), CPU: -1, Events: storyEvents, Range: rng}); err == nil {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		if len(lines) == 1 && lines[0] == "" {
			lines = nil
		}
		st.Last = lines
	}
	if res, err := analyze.Run(sr, analyze.Options{Only: []string{analyze.Processes}, PIDs: []uint32{uint32(r.PID)}, Range: rng}); err == nil {
		for _, p := range res.Processes {
			if p.PID == uint32(r.PID) {
				st.RunqWait, st.OffCPU = time.Duration(p.RunqWait), time.Duration(p.OffCPU)
			}
		}
	}
	if st.CPU >= 0 {
		if res, err := analyze.Run(sr, analyze.Options{Only: []string{analyze.Processes}, CPUs: []int{st.CPU}, Range: rng}); err == nil {
			for _, p := range res.Processes {
				if p.PID != uint32(r.PID) && p.PID != 0 && p.OnCPU > 0 {
					st.Others = append(st.Others, p)
				}
			}
			sort.Slice(st.Others, func(i, j int) bool { return st.Others[i].OnCPU > st.Others[j].OnCPU })
			if len(st.Others) > 5 {
				st.Others = st.Others[:5]
			}
		}
	}
	return st, nil
}

// String renders the story for crash show.
func (st *Story) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the %v before the crash, from %s:\n", st.Window.Round(time.Millisecond), st.Snapshot)
	if len(st.Last) == 0 {
		b.WriteString("  the crashing thread's last system calls and signals: none recorded\n")
	} else {
		b.WriteString("  the crashing thread's last system calls and signals:\n")
		for _, l := range st.Last {
			b.WriteString("    " + l + "\n")
		}
	}
	fmt.Fprintf(&b, "  its process waited %v to run and was off CPU %v\n", st.RunqWait.Round(time.Microsecond), st.OffCPU.Round(time.Microsecond))
	if st.CPU >= 0 {
		if len(st.Others) == 0 {
			fmt.Fprintf(&b, "  nothing else ran on cpu %d\n", st.CPU)
		} else {
			fmt.Fprintf(&b, "  also on cpu %d:\n", st.CPU)
			for _, p := range st.Others {
				fmt.Fprintf(&b, "    %s (pid %d) %v on CPU\n", p.Comm, p.PID, time.Duration(p.OnCPU).Round(time.Microsecond))
			}
		}
	}
	return b.String()
}
