// Package counters samples the kernel's counters many times a second — the
// /proc and cgroup files and perf_event_open counters — into rings that keep
// the last minute or so, for snapshots to carry as series next to the
// events. A counter read once a minute hides the burst that hurt; read every
// 10 ms, its rate's maximum and percentiles show it.
package counters
