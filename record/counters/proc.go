package counters

import (
	"strings"

	"github.com/rewindtrace/rewind/snapshot"
)

// field is one value a describer finds in a file: what it is, which of the
// file's numbers holds it, and the factor to its unit.
type field struct {
	snapshot.SeriesField
	num int   // index among the file's numbers
	mul int64 // 0 or 1: as read
}

// A describer names the numbers of one file's text.
type describer func(toks []token) []field

func counter(name, unit string, labels map[string]string, num int, mul int64) field {
	return field{SeriesField: snapshot.SeriesField{Name: name, Labels: labels, Unit: unit, Kind: snapshot.SeriesCounter}, num: num, mul: mul}
}

func gauge(name, unit string, labels map[string]string, num int, mul int64) field {
	return field{SeriesField: snapshot.SeriesField{Name: name, Labels: labels, Unit: unit, Kind: snapshot.SeriesGauge}, num: num, mul: mul}
}

// nums returns a line's number tokens.
func nums(line []token) []token {
	var out []token
	for _, t := range line {
		if t.isNum() {
			out = append(out, t)
		}
	}
	return out
}

// userHZ is the unit of /proc/stat's times (USER_HZ, 100 on every Linux
// architecture).
const userHZ = 100

var cpuTimes = []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice"}

// statLines are /proc/stat's lines of one value (or a total first).
var statLines = map[string]struct {
	name, unit string
	gauge      bool
}{
	"intr": {"interrupts", "count", false}, "softirq": {"softirqs", "count", false}, "ctxt": {"context_switches", "count", false},
	"processes": {"forks", "count", false}, "procs_running": {"running", "tasks", true}, "procs_blocked": {"blocked", "tasks", true},
}

// describeStat names /proc/stat: per-CPU times (in ns), context switches,
// forks, running and blocked tasks, and the interrupt and softirq totals.
func describeStat(toks []token) []field {
	var out []field
	for _, line := range lines(toks) {
		if len(line) < 2 || line[0].isNum() {
			continue
		}
		key, n := line[0].word, nums(line)
		if len(n) == 0 {
			continue
		}
		switch {
		case strings.HasPrefix(key, "cpu"):
			cpu := strings.TrimPrefix(key, "cpu")
			if cpu == "" {
				cpu = "all"
			}
			for i, v := range n {
				if i < len(cpuTimes) {
					out = append(out, counter(cpuTimes[i], "ns", map[string]string{"cpu": cpu}, v.idx, 1e9/userHZ))
				}
			}
		case statLines[key].name != "":
			l := statLines[key]
			f := counter(l.name, l.unit, nil, n[0].idx, 1)
			if l.gauge {
				f.Kind = snapshot.SeriesGauge
			}
			out = append(out, f)
		}
	}
	return out
}

// describeKeyValue names files of "Key: value [kB]" lines (/proc/meminfo)
// or "key value" lines (/proc/vmstat, cpu.stat): unit reads the key.
func describeKeyValue(unit func(key string, kB bool) (name, u, kind string, mul int64)) describer {
	return func(toks []token) []field {
		var out []field
		for _, line := range lines(toks) {
			if len(line) < 2 || line[0].isNum() || !line[1].isNum() {
				continue
			}
			kB := len(line) > 2 && line[2].word == "kB"
			name, u, kind, mul := unit(strings.TrimSuffix(line[0].word, ":"), kB)
			if name == "" {
				continue
			}
			f := gauge(name, u, nil, line[1].idx, mul)
			f.Kind = kind
			out = append(out, f)
		}
		return out
	}
}

func meminfoUnit(key string, kB bool) (string, string, string, int64) {
	if kB {
		return key, "bytes", snapshot.SeriesGauge, 1024
	}
	return key, "count", snapshot.SeriesGauge, 1
}

func vmstatUnit(key string, _ bool) (string, string, string, int64) {
	if strings.HasPrefix(key, "nr_") {
		return key, "count", snapshot.SeriesGauge, 1
	}
	return key, "count", snapshot.SeriesCounter, 1
}

func cgroupCPUUnit(key string, _ bool) (string, string, string, int64) {
	if name, ok := strings.CutSuffix(key, "_usec"); ok {
		return name, "ns", snapshot.SeriesCounter, 1000
	}
	return key, "count", snapshot.SeriesCounter, 1
}

// diskFields are /proc/diskstats' columns after the device name
// (Documentation/admin-guide/iostats.rst): sectors are read as bytes and
// milliseconds as ns.
var diskFields = []struct {
	name, unit string
	mul        int64
	gauge      bool
}{
	{"reads", "count", 1, false}, {"reads_merged", "count", 1, false}, {"read_bytes", "bytes", 512, false}, {"read_time", "ns", 1e6, false},
	{"writes", "count", 1, false}, {"writes_merged", "count", 1, false}, {"write_bytes", "bytes", 512, false}, {"write_time", "ns", 1e6, false},
	{"in_flight", "count", 1, true}, {"io_time", "ns", 1e6, false}, {"weighted_io_time", "ns", 1e6, false},
	{"discards", "count", 1, false}, {"discards_merged", "count", 1, false}, {"discard_bytes", "bytes", 512, false}, {"discard_time", "ns", 1e6, false},
	{"flushes", "count", 1, false}, {"flush_time", "ns", 1e6, false},
}

// describeDiskstats names /proc/diskstats per device, leaving out loop and
// ram disks.
func describeDiskstats(toks []token) []field {
	var out []field
	for _, line := range lines(toks) {
		// major minor name values...
		if len(line) < 4 || !line[0].isNum() || !line[1].isNum() || line[2].isNum() {
			continue
		}
		dev := line[2].word
		if strings.HasPrefix(dev, "loop") || strings.HasPrefix(dev, "ram") {
			continue
		}
		for i, v := range nums(line[3:]) {
			if i >= len(diskFields) {
				break
			}
			d := diskFields[i]
			f := counter(d.name, d.unit, map[string]string{"dev": dev}, v.idx, d.mul)
			if d.gauge {
				f.Kind = snapshot.SeriesGauge
			}
			out = append(out, f)
		}
	}
	return out
}

var netdevFields = []string{"rx_bytes", "rx_packets", "rx_errs", "rx_drop", "rx_fifo", "rx_frame", "rx_compressed", "rx_multicast",
	"tx_bytes", "tx_packets", "tx_errs", "tx_drop", "tx_fifo", "tx_colls", "tx_carrier", "tx_compressed"}

// describeNetdev names /proc/net/dev per interface (read with ':' as a
// separator: a long counter touches the interface's colon).
func describeNetdev(toks []token) []field {
	var out []field
	for _, line := range lines(toks) {
		if len(line) < 2 || line[0].isNum() {
			continue
		}
		n := nums(line)
		if len(n) != len(netdevFields) {
			continue // the two header lines
		}
		for i, v := range n {
			unit := "count"
			if strings.HasSuffix(netdevFields[i], "_bytes") {
				unit = "bytes"
			}
			out = append(out, counter(netdevFields[i], unit, map[string]string{"iface": line[0].word}, v.idx, 1))
		}
	}
	return out
}

// snmpGauges are /proc/net/snmp's levels and constants among its counters.
var snmpGauges = map[string]bool{"Forwarding": true, "DefaultTTL": true, "RtoAlgorithm": true, "RtoMin": true, "RtoMax": true,
	"MaxConn": true, "CurrEstab": true}

// describeSNMP names /proc/net/snmp and /proc/net/netstat: pairs of a
// header line ("Tcp: RtoAlgorithm RtoMin ...") and a line of values.
func describeSNMP(toks []token) []field {
	var out []field
	ls := lines(toks)
	for i := 0; i+1 < len(ls); i++ {
		head, vals := ls[i], ls[i+1]
		if len(head) < 2 || len(vals) < 2 || head[0].word == "" || head[0].word != vals[0].word || !vals[1].isNum() {
			continue
		}
		proto := strings.TrimSuffix(head[0].word, ":")
		n := nums(vals)
		for j, name := range head[1:] {
			if j >= len(n) || name.isNum() {
				break
			}
			f := counter(name.word, "count", map[string]string{"proto": proto}, n[j].idx, 1)
			if snmpGauges[name.word] {
				f.Kind = snapshot.SeriesGauge
			}
			f.Signed = true // MaxConn is -1
			out = append(out, f)
		}
		i++
	}
	return out
}

// describePressure names one /proc/pressure file (read with '=' as a
// separator): stall averages in percent (stored × 100) and totals in ns.
func describePressure(resource string) describer {
	return func(toks []token) []field {
		var out []field
		for _, line := range lines(toks) {
			if len(line) < 2 || line[0].isNum() {
				continue
			}
			labels := map[string]string{"resource": resource, "kind": line[0].word}
			for i := 1; i+1 < len(line); i += 2 {
				key, v := line[i], line[i+1]
				if key.isNum() || !v.isNum() {
					continue
				}
				if key.word == "total" {
					out = append(out, counter("stall", "ns", labels, v.idx, 1000))
					continue
				}
				f := gauge(key.word, "percent", labels, v.idx, 1)
				f.Div = pow10(v.dec)
				out = append(out, f)
			}
		}
		return out
	}
}

func pow10(n int) uint64 {
	d := uint64(1)
	for ; n > 0; n-- {
		d *= 10
	}
	return d
}

// describeLoadavg names /proc/loadavg (read with '/' as a separator):
// "0.52 0.58 0.59 3/523 14021".
func describeLoadavg(toks []token) []field {
	n := nums(toks)
	if len(n) < 5 {
		return nil
	}
	var out []field
	for i, name := range []string{"load1", "load5", "load15"} {
		f := gauge(name, "tasks", nil, n[i].idx, 1)
		f.Div = pow10(n[i].dec)
		out = append(out, f)
	}
	return append(out, gauge("runnable", "tasks", nil, n[3].idx, 1), gauge("threads", "tasks", nil, n[4].idx, 1))
}

// describePerCPU names /proc/softirqs and /proc/interrupts: a header of
// CPU names, then a line per source with a count per CPU (and, for
// interrupts, a description after them).
func describePerCPU(name, label string) describer {
	return func(toks []token) []field {
		ls := lines(toks)
		if len(ls) == 0 {
			return nil
		}
		var cpus []string
		for _, t := range ls[0] {
			if c, ok := strings.CutPrefix(t.word, "CPU"); ok {
				cpus = append(cpus, c)
			}
		}
		var out []field
		for _, line := range ls[1:] {
			if len(line) < 2 || line[0].isNum() {
				continue
			}
			key := strings.TrimSuffix(line[0].word, ":")
			labels := func(cpu string) map[string]string {
				l := map[string]string{label: key, "cpu": cpu}
				if label == "irq" {
					var desc []string
					for _, t := range line[1:] {
						if !t.isNum() {
							desc = append(desc, t.word)
						}
					}
					if len(desc) > 0 {
						l["name"] = strings.Join(desc, " ")
					}
				}
				return l
			}
			n := nums(line)
			if len(n) < len(cpus) {
				// ERR and MIS: one count for the machine.
				if len(n) > 0 {
					out = append(out, counter(name, "count", labels("all"), n[0].idx, 1))
				}
				continue
			}
			for i, cpu := range cpus {
				out = append(out, counter(name, "count", labels(cpu), n[i].idx, 1))
			}
		}
		return out
	}
}

// describeSingle names a file holding one number (memory.current).
func describeSingle(name, unit, kind string) describer {
	return func(toks []token) []field {
		n := nums(toks)
		if len(n) != 1 {
			return nil
		}
		f := gauge(name, unit, nil, n[0].idx, 1)
		f.Kind = kind
		return []field{f}
	}
}

// describeIOStat names a cgroup's io.stat (read with '=' as a separator):
// "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per device.
func describeIOStat(toks []token) []field {
	names := map[string]struct{ name, unit string }{"rbytes": {"read_bytes", "bytes"}, "wbytes": {"write_bytes", "bytes"},
		"rios": {"reads", "count"}, "wios": {"writes", "count"}, "dbytes": {"discard_bytes", "bytes"}, "dios": {"discards", "count"}}
	var out []field
	for _, line := range lines(toks) {
		if len(line) < 3 || line[0].isNum() {
			continue
		}
		dev := line[0].word
		for i := 1; i+1 < len(line); i += 2 {
			key, v := line[i], line[i+1]
			if key.isNum() || !v.isNum() {
				continue
			}
			n, ok := names[key.word]
			if !ok {
				n.name, n.unit = key.word, "count"
			}
			out = append(out, counter(n.name, n.unit, map[string]string{"dev": dev}, v.idx, 1))
		}
	}
	return out
}
