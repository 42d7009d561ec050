package counters

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot"
)

// perfEvent is one counter perf_event_open can count.
type perfEvent struct {
	name   string
	typ    uint32
	config uint64
	unit   string
}

var perfEvents = []perfEvent{
	{"context_switches", sysx.PerfSoftware, sysx.PerfContextSwitches, "count"},
	{"cpu_migrations", sysx.PerfSoftware, sysx.PerfCPUMigrations, "count"},
	{"page_faults", sysx.PerfSoftware, sysx.PerfPageFaults, "count"},
	{"cycles", sysx.PerfHardware, sysx.PerfCycles, "count"},
	{"instructions", sysx.PerfHardware, sysx.PerfInstructions, "count"},
	{"cache_misses", sysx.PerfHardware, sysx.PerfCacheMisses, "count"},
	{"branch_misses", sysx.PerfHardware, sysx.PerfBranchMisses, "count"},
}

// perfGroup is a reader of per-CPU perf counters: on each CPU one group of
// software counters and one of hardware counters, each read with one read
// (PERF_FORMAT_GROUP: a count of values, then the values).
type perfGroup struct {
	groups  []*os.File // leaders, CPU by CPU
	members []*os.File // the other counters, closed with the leaders
	sizes   []int      // values per group
	buf     []byte
	vals    []uint64
	named   []snapshot.SeriesField
	first   bool
}

func openPerf(cpus int) (_ *perfGroup, missing []Unavailable, err error) {
	g := &perfGroup{first: true}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	online, err := sysx.OnlineCPUs()
	if err != nil {
		return nil, nil, err
	}
	absent := map[string]string{}
	for cpu := 0; cpu < cpus; cpu++ {
		if !online[cpu] {
			continue // possible, not online: nothing to count there
		}
		for _, typ := range []uint32{sysx.PerfSoftware, sysx.PerfHardware} {
			leader := -1
			var lf *os.File
			n := 0
			for _, e := range perfEvents {
				if e.typ != typ || absent[e.name] != "" {
					continue
				}
				f, err := sysx.PerfCount(e.typ, e.config, cpu, leader)
				if err != nil {
					absent[e.name] = perfWhy(e, err)
					continue
				}
				if lf == nil {
					lf, leader = f, int(f.Fd())
				} else {
					g.members = append(g.members, f)
				}
				n++
				labels := map[string]string{"cpu": strconv.Itoa(cpu)}
				g.named = append(g.named, snapshot.SeriesField{Name: e.name, Labels: labels, Unit: e.unit, Kind: snapshot.SeriesCounter})
			}
			if lf != nil {
				g.groups = append(g.groups, lf)
				g.sizes = append(g.sizes, n)
			}
		}
	}
	for _, e := range perfEvents {
		if why := absent[e.name]; why != "" {
			missing = append(missing, Unavailable{"perf " + e.name, why})
		}
	}
	// The task clock counts one task's time on CPU; a counter for a whole
	// CPU reads nothing from it. A CPU's busy time is in the cpu source.
	missing = append(missing, Unavailable{"perf task_clock", "it counts a task's own time, not a CPU's: read per-CPU busy time from the cpu source (/proc/stat)"})
	if len(g.groups) == 0 {
		return nil, missing, fmt.Errorf("no perf counter opens on this machine (%s)", missing[0].Why)
	}
	g.buf = make([]byte, 8*(1+len(perfEvents)))
	g.vals = make([]uint64, len(g.named))
	return g, missing, nil
}

func perfWhy(e perfEvent, err error) string {
	if sysx.IsNotSupported(err) {
		if e.typ == sysx.PerfHardware {
			return fmt.Sprintf("no hardware PMU counts it here (perf_event_open: %v)", err)
		}
		return fmt.Sprintf("the kernel does not count it (perf_event_open: %v)", err)
	}
	if sysx.IsNotPermitted(err) {
		return fmt.Sprintf("not permitted: needs root or CAP_PERFMON, and kernel.perf_event_paranoid <= 0 (perf_event_open: %v)", err)
	}
	return fmt.Sprintf("perf_event_open: %v", err)
}

func (g *perfGroup) read() (bool, error) {
	i := 0
	for k, f := range g.groups {
		want := 8 * (1 + g.sizes[k])
		n, err := f.Read(g.buf[:want])
		if err != nil || n != want || binary.LittleEndian.Uint64(g.buf) != uint64(g.sizes[k]) {
			return false, fmt.Errorf("read %s: %d bytes, %v", f.Name(), n, err)
		}
		for j := 0; j < g.sizes[k]; j++ {
			g.vals[i] = binary.LittleEndian.Uint64(g.buf[8+8*j:])
			i++
		}
	}
	changed := g.first
	g.first = false
	return changed, nil
}

func (g *perfGroup) fields() []snapshot.SeriesField { return g.named }

func (g *perfGroup) values(row []uint64) { copy(row, g.vals) }

func (g *perfGroup) close() error {
	for _, f := range g.members {
		f.Close()
	}
	for _, f := range g.groups {
		f.Close()
	}
	return nil
}
