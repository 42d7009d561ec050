// Package counterexpr reads conditions on counters, such as
//
//	pressure:avg10{resource=cpu,kind=some} > 40
//	memory:MemAvailable < 512MiB
//	cpu:iowait{cpu=all} > 50%
//	net:rx_bytes{iface=eth0} > 100MiB/s
//
// and tells, sample by sample, when one starts to hold.
//
// # Syntax
//
//	SOURCE:FIELD[{LABEL=VALUE,...}] OP NUMBER[UNIT][/s]
//
// SOURCE is a counter source as the sampler names it (cpu, memory, vm,
// disk, net, tcp, pressure, load, softirqs, interrupts, perf, or
// cgroup:PATH) and FIELD one of its fields, as a snapshot's series name
// them (rewind info lists them: MemAvailable, Active(anon), avg10, user,
// rx_bytes, ...). The labels pick fields by their labels: a field matches
// when it has every label given, with that value (it may have others); a
// value with a space, a comma or a brace is written as a Go string,
// {name="IO-APIC 2-edge timer"}. A selector matching several fields (cpu:user
// without {cpu=...}: every CPU) watches each on its own.
//
// OP is >, >=, < or <=. The number is compared with a gauge's value, and
// with a counter's rate: its increase per second between two consecutive
// samples. UNIT says what the number counts, and must suit the field's
// unit:
//
//   - none: the field's own unit (per second for a counter): bytes, ns,
//     percent, count, tasks;
//   - a size, powers of 1024 as everywhere in rewind (B, K, KiB, MiB, 512m,
//     1G): fields in bytes;
//   - a time (ns, us, ms, s): fields in ns; a counter of ns compared with
//     10ms/s spends 10 ms each second;
//   - %: fields in percent (the pressure averages), and counters of ns,
//     where 100% is one second per second: one CPU's worth, as top shows a
//     process (cpu:user{cpu=all} reaches 100% times the CPUs).
//
// A trailing /s says the field is a counter (an error on a gauge); it is
// the meaning anyway.
//
// # Firing
//
// A Matcher is fed samples and fires when a field's condition goes from
// not holding to holding: once per crossing, not at every sample while it
// holds; the field must stop matching to fire again. A condition that
// holds from the first sample fires on it (for a counter: on the second,
// the first with a rate).
package counterexpr
