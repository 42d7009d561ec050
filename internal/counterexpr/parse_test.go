package counterexpr

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Expr
		str  string // String(), when not in
	}{
		{"pressure:avg10{resource=cpu,kind=some} > 40", Expr{Source: "pressure", Field: "avg10",
			Labels: map[string]string{"resource": "cpu", "kind": "some"}, Op: ">", Value: 40, scale: 1},
			"pressure:avg10{kind=some,resource=cpu} > 40"},
		{"memory:MemAvailable<512MiB", Expr{Source: "memory", Field: "MemAvailable", Op: "<", Value: 512, Unit: "MiB", dim: dimBytes, scale: 1 << 20},
			"memory:MemAvailable < 512MiB"},
		{"  memory:Active(anon) >= 1.5g ", Expr{Source: "memory", Field: "Active(anon)", Op: ">=", Value: 1.5, Unit: "g", dim: dimBytes, scale: 1 << 30},
			"memory:Active(anon) >= 1.5g"},
		{"cpu:iowait{cpu=all} > 50%", Expr{Source: "cpu", Field: "iowait", Labels: map[string]string{"cpu": "all"}, Op: ">", Value: 50, Unit: "%", dim: dimPercent, scale: 1}, ""},
		{"net:rx_bytes{iface=eth0} > 100MiB/s", Expr{Source: "net", Field: "rx_bytes", Labels: map[string]string{"iface": "eth0"}, Op: ">", Value: 100, Unit: "MiB",
			PerSecond: true, dim: dimBytes, scale: 1 << 20}, ""},
		{"pressure:stall{resource=io, kind=full} <= 10ms/s", Expr{Source: "pressure", Field: "stall", Labels: map[string]string{"resource": "io", "kind": "full"},
			Op: "<=", Value: 10, Unit: "ms", PerSecond: true, dim: dimNS, scale: 1e6}, "pressure:stall{kind=full,resource=io} <= 10ms/s"},
		{"vm:pgmajfault > 1e3/s", Expr{Source: "vm", Field: "pgmajfault", Op: ">", Value: 1000, PerSecond: true, scale: 1}, "vm:pgmajfault > 1000/s"},
		{"tcp:MaxConn{proto=Tcp} < -0.5", Expr{Source: "tcp", Field: "MaxConn", Labels: map[string]string{"proto": "Tcp"}, Op: "<", Value: -0.5, scale: 1}, ""},
		{`interrupts:interrupts{irq=0,name="IO-APIC 2-edge timer"} > 5`, Expr{Source: "interrupts", Field: "interrupts",
			Labels: map[string]string{"irq": "0", "name": "IO-APIC 2-edge timer"}, Op: ">", Value: 5, scale: 1}, ""},
		{"cgroup:/sys/fs/cgroup/a:b:memory_current > 1G", Expr{Source: "cgroup:/sys/fs/cgroup/a:b", Field: "memory_current", Op: ">", Value: 1, Unit: "G",
			dim: dimBytes, scale: 1 << 30}, ""},
		{"disk:in_flight{dev=} > 0", Expr{Source: "disk", Field: "in_flight", Labels: map[string]string{"dev": ""}, Op: ">", Value: 0, scale: 1},
			`disk:in_flight{dev=""} > 0`},
		{"load:load1 > .5", Expr{Source: "load", Field: "load1", Op: ">", Value: 0.5, scale: 1}, "load:load1 > 0.5"},
		{"perf:cycles{cpu=3} > 2e9", Expr{Source: "perf", Field: "cycles", Labels: map[string]string{"cpu": "3"}, Op: ">", Value: 2e9, scale: 1}, "perf:cycles{cpu=3} > 2e+09"},
	} {
		e, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(*e, c.want) {
			t.Errorf("Parse(%q):\n got %#v\nwant %#v", c.in, *e, c.want)
		}
		str := c.str
		if str == "" {
			str = c.in
		}
		if e.String() != str {
			t.Errorf("Parse(%q).String() = %q, want %q", c.in, e.String(), str)
		}
		again, err := Parse(e.String())
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Errorf("Parse(%q) again: %v, %+v", e.String(), err, again)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "no comparison"},
		{"memory:MemAvailable", "no comparison: want SOURCE:FIELD OP NUMBER"},
		{"MemAvailable < 5", `counter "MemAvailable": want SOURCE:FIELD`},
		{":MemAvailable < 5", "no source before the colon"},
		{"mem:MemAvailable < 5", `source "mem": unknown; sources: cpu, memory`},
		{"cgroup:app:memory_current > 1", `source "cgroup:app": want cgroup:PATH with an absolute path`},
		{"memory: < 5", `field "" of source memory`},
		{"memory:Mem Available < 5", `field "Mem Available"`},
		{"pressure:avg10{resource=cpu > 40", "labels {resource=cpu > 40: want {NAME=VALUE,...} closed by }"},
		{"pressure:avg10{resource} > 40", `label "resource": want NAME=VALUE`},
		{"pressure:avg10{=cpu} > 40", `label "=cpu": want NAME=VALUE`},
		{"pressure:avg10{resource=cpu,resource=io} > 40", "label resource: given twice"},
		{`interrupts:interrupts{name="IO-APIC} > 1`, `labels {name="IO-APIC} > 1: a quoted value is not closed`},
		{`interrupts:interrupts{name="a" b} > 1`, `label name: want a comma or } after its value, not "b"`},
		{"memory:MemFree == 5", `operator "==": want >, >=, < or <=`},
		{"memory:MemFree != 5", `operator "!=": want`},
		{"memory:MemFree => 5", `operator "=>": want`},
		{"memory:MemFree >> 5", `operator ">>": want`},
		{"memory:MemFree >", "threshold: missing; want a number after >"},
		{"memory:MemFree > lots", `threshold "lots": want a number`},
		{"memory:MemFree > 5 pigs", `threshold "5 pigs": unknown unit "pigs"; want none, %, a size`},
		{"memory:MemFree > 5iB", `unknown unit "iB"`},
		{"memory:MemFree > 5h", `unknown unit "h"`},
		{"memory:MemFree > 1e999", `threshold "1e999": want a number`},
		{"memory:MemFree > NaN", `threshold "NaN": want a number`},
	} {
		_, err := Parse(c.in)
		if err == nil {
			t.Errorf("Parse(%q): no error, want %q", c.in, c.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), "counter condition ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q): %v\nwant it to say %q", c.in, err, c.want)
		}
	}
}

// Whatever Parse accepts, it accepts again as String writes it, and
// nothing makes it panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"pressure:avg10{resource=cpu,kind=some} > 40", "memory:MemAvailable < 512MiB", "cpu:user{cpu=all} >= 90%",
		`interrupts:interrupts{name="a, b"} > 1e3/s`, "cgroup:/x:y:z<=-1.5ms/s", "disk:in_flight{dev=\"\"} > 0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(e.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", s, e, err)
		}
		if again.String() != e.String() {
			t.Fatalf("Parse(%q) = %q, then %q", s, e, again)
		}
	})
}
