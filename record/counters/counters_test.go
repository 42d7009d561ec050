package counters

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/internal/testkernel"
	"github.com/rewindtrace/rewind/snapshot"
)

// describe reads a testdata file with the source's scanner and describer,
// and returns each field's value by key.
func describe(t *testing.T, name, seps string, d describer) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	sc := newScanner(seps)
	nums, _ := sc.numbers(b, nil)
	out := map[string]int64{}
	for _, f := range d(sc.tokens(b)) {
		v := nums[f.num]
		if f.mul > 1 {
			v *= f.mul
		}
		k := key(f.SeriesField)
		if _, dup := out[k]; dup {
			t.Errorf("%s: field %s twice", name, k)
		}
		out[k] = v
	}
	return out
}

func key(f snapshot.SeriesField) string {
	var ls []string
	for k, v := range f.Labels {
		ls = append(ls, k+"="+v)
	}
	sort.Strings(ls)
	if len(ls) == 0 {
		return f.Name
	}
	return f.Name + "{" + strings.Join(ls, ",") + "}"
}

// Each file's fields, checked against values read off the testdata by eye.
func TestDescribers(t *testing.T) {
	for _, c := range []struct {
		file, seps string
		d          describer
		want       map[string]int64
		min        int
	}{
		{"stat", "", describeStat, map[string]int64{"user{cpu=all}": 187153e7, "iowait{cpu=1}": 2187e7, "context_switches": 242089454}, 33},
		{"meminfo", "", describeKeyValue(meminfoUnit), map[string]int64{"MemFree": 24162864 * 1024, "HugePages_Total": 0}, 40},
		{"vmstat", "", describeKeyValue(vmstatUnit), map[string]int64{"pgfault": 67458141, "nr_free_pages": 6040729}, 100},
		{"diskstats", "", describeDiskstats, map[string]int64{"reads{dev=vda}": 376843, "read_bytes{dev=vda}": 36563754 * 512, "flush_time{dev=vda}": 267e6}, 17},
		{"netdev", ":", describeNetdev, map[string]int64{"rx_bytes{iface=eth0}": 138020760, "tx_packets{iface=lo}": 343}, 32},
		{"snmp", "", describeSNMP, map[string]int64{"MaxConn{proto=Tcp}": -1, "ActiveOpens{proto=Tcp}": 152}, 50},
		{"netstat", "", describeSNMP, nil, 50},
		{"pressure_io", "=", describePressure("io"), map[string]int64{"avg60{kind=some,resource=io}": 6, "stall{kind=full,resource=io}": 17402881000}, 8},
		{"loadavg", "/", describeLoadavg, map[string]int64{"load5": 115, "threads": 81}, 5},
		{"softirqs", "", describePerCPU("softirqs", "vec"), map[string]int64{"softirqs{cpu=1,vec=NET_RX}": 3785}, 20},
		{"interrupts", "", describePerCPU("interrupts", "irq"), map[string]int64{"interrupts{cpu=1,irq=25,name=IO-APIC 6-edge ACPI:Ged}": 1, "interrupts{cpu=all,irq=ERR}": 0}, 10},
		{"cpu.stat", "", describeKeyValue(cgroupCPUUnit), map[string]int64{"usage": 3338018184000}, 4},
		{"io.stat", "=", describeIOStat, map[string]int64{"read_bytes{dev=8:0}": 1024, "writes{dev=254:0}": 2}, 12},
	} {
		got := describe(t, c.file, c.seps, c.d)
		if len(got) < c.min {
			t.Errorf("%s: %d fields, want at least %d", c.file, len(got), c.min)
		}
		for k, v := range c.want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s: %s = %d (found %v), want %d", c.file, k, g, ok, v)
			}
		}
	}
}

// A file whose text changes shape is described again; one that changes
// only its numbers is not.
func TestLayoutChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "netdev")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	head := "Inter-| Receive | Transmit\n face |bytes packets|bytes\n"
	line := func(iface string, n int) string {
		return iface + ": " + strings.Repeat(strings.Repeat("1", n)+" ", 16) + "\n"
	}
	write(head + line("lo", 1))
	r, err := openFile(path, ":", describeNetdev)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if len(r.fields()) != 16 {
		t.Fatalf("%d fields", len(r.fields()))
	}
	write(head + line("lo", 3))
	if changed, err := r.read(); err != nil || changed {
		t.Fatalf("numbers changed: changed %v, %v", changed, err)
	}
	row := make([]uint64, 16)
	r.values(row)
	if row[0] != 111 {
		t.Fatalf("rx_bytes %d, want 111", row[0])
	}
	write(head + line("lo", 3) + line("eth0", 2))
	if changed, err := r.read(); err != nil || !changed || len(r.fields()) != 32 {
		t.Fatalf("an interface appeared: changed %v, %d fields, %v", changed, len(r.fields()), err)
	}
}

func TestParseSources(t *testing.T) {
	names, rates, explicit, err := ParseSources([]string{"default", "interrupts@10", "cgroup:/x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(Default)+2 || rates["interrupts"] != 10 || !explicit["interrupts"] || explicit["cpu"] {
		t.Errorf("names %v rates %v explicit %v", names, rates, explicit)
	}
	// A group's rate is each member's; a later item overrides an earlier
	// one's rate; a name in a group and by name is explicit.
	names, rates, explicit, err = ParseSources([]string{"all@5", "cpu@7Hz", "default", "load"})
	if err != nil {
		t.Fatal(err)
	}
	wantRates := map[string]float64{}
	for _, n := range Names {
		wantRates[n] = 5
	}
	wantRates["cpu"] = 7
	if !reflect.DeepEqual(names, Names) || !reflect.DeepEqual(rates, wantRates) || len(explicit) != len(Names) {
		t.Errorf("names %v rates %v explicit %v", names, rates, explicit)
	}
	for n, e := range explicit {
		if e != (n == "cpu" || n == "load") {
			t.Errorf("%s explicit %v", n, e)
		}
	}
	// Errors name the setting and the source, not a flag.
	for _, bad := range [][]string{{"nope"}, {"cpu@0"}, {"cpu@2000"}, {"cpu@fast"}, {"cpu@nan"}, {"cpu@-inf"}, {"cgroup"}, {"default@0"}} {
		_, _, _, err := ParseSources(bad)
		if err == nil {
			t.Errorf("ParseSources(%q) accepted", bad)
			continue
		}
		name, _, _ := strings.Cut(bad[0], "@")
		if want := fmt.Sprintf("source %q", name); !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "--") {
			t.Errorf("ParseSources(%q): %q, want it to name %s and no flag", bad, err, want)
		}
	}
	if names, _, _, _ := ParseSources([]string{"none"}); len(names) != 0 {
		t.Errorf("none: %v", names)
	}
}

// Every source reads here (perf's hardware counters excepted, with a
// reason), and a sample allocates nothing.
func TestSourcesLive(t *testing.T) {
	testkernel.Require(t)
	for _, name := range Names {
		src, missing, err := Open(name, 2)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, m := range missing {
			t.Logf("%s: unavailable %s: %s", name, m.Name, m.Why)
			if name == "perf" && !strings.Contains(m.Why, "PMU") && m.Name != "perf task_clock" {
				t.Errorf("%s: %s unavailable for a reason not about the PMU: %s", name, m.Name, m.Why)
			}
		}
		if _, err := src.read(); err != nil {
			t.Fatal(err)
		}
		row := make([]uint64, len(src.Fields()))
		allocs := testing.AllocsPerRun(20, func() {
			if changed, err := src.read(); err != nil || changed {
				t.Fatalf("%s: changed %v, %v", name, changed, err)
			}
			src.values(row)
		})
		t.Logf("%s: %d fields, %.0f allocations a sample", name, len(src.Fields()), allocs)
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations a sample", name, allocs)
		}
		src.close()
	}
}

// perf's software counters count: a thread that blocks n times is
// switched out n times, on whichever CPUs it runs, and the counters of
// every CPU see each switch however busy the machine is.
func TestPerfSoftwareCounters(t *testing.T) {
	testkernel.Require(t)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	src, missing, err := Open("perf", cpus)
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	for _, m := range missing {
		if strings.Contains(m.Name, "context_switches") || strings.Contains(m.Name, "page_faults") {
			t.Fatalf("software counter unavailable: %s: %s", m.Name, m.Why)
		}
	}
	read := func() map[string]uint64 {
		if _, err := src.read(); err != nil {
			t.Fatal(err)
		}
		row := make([]uint64, len(src.Fields()))
		src.values(row)
		sum := map[string]uint64{}
		for i, f := range src.Fields() {
			sum[f.Name] += row[i]
		}
		return sum
	}
	const n = 100
	runtime.LockOSThread()
	a := read()
	for i := 0; i < n; i++ {
		// A deadline ahead: the thread blocks in the kernel, and its
		// CPU switches to another task. Were it late for the deadline,
		// it was switched out meanwhile.
		sysx.SleepUntilBoot(int64(sysx.BootNow()) + int64(time.Millisecond))
	}
	b := read()
	runtime.UnlockOSThread()
	t.Logf("over %d sleeps: %v", n, map[string]uint64{"context_switches": b["context_switches"] - a["context_switches"],
		"cpu_migrations": b["cpu_migrations"] - a["cpu_migrations"], "page_faults": b["page_faults"] - a["page_faults"]})
	if b["context_switches"] < a["context_switches"]+n {
		t.Errorf("%d sleeps, context switches %v then %v", n, a, b)
	}
}

// A cgroup v2 directory's cpu.stat is read; what the hierarchy lacks (the
// memory controller, on a hybrid system) is reported, not an error.
func TestCgroupSource(t *testing.T) {
	testkernel.Require(t)
	mnt, err := sysx.Cgroup2Mount()
	if err != nil {
		t.Skipf("no cgroup v2: %v", err)
	}
	dir := filepath.Join(mnt, fmt.Sprintf("rewind-counters-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	src, missing, err := Open("cgroup:"+dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	if _, err := src.read(); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range src.Fields() {
		names[f.Name] = true
	}
	if !names["usage"] || !names["user"] || !names["system"] {
		t.Errorf("fields %v", names)
	}
	for _, m := range missing {
		t.Logf("unavailable: %s: %s", m.Name, m.Why)
		if m.Why == "" {
			t.Errorf("%s unavailable without a reason", m.Name)
		}
	}
	if _, _, err := Open("cgroup:/nonexistent", 2); err == nil || !strings.Contains(err.Error(), "not a cgroup directory") {
		t.Errorf("cgroup:/nonexistent: %v", err)
	}
}

// BenchmarkSources is one sample of each source with warm caches: the
// reading and parsing a sampler's tick pays on top of its wakeup
// (docs/BENCHMARKS.md, counter sampling).
func BenchmarkSources(b *testing.B) {
	for _, name := range Names {
		b.Run(name, func(b *testing.B) {
			src, _, err := Open(name, runtime.NumCPU())
			if err != nil {
				b.Skip(err)
			}
			defer src.close()
			for i := 0; i < b.N; i++ {
				if _, err := src.read(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
