package daemon

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rewindtrace/rewind/analyze/hist"
	"github.com/rewindtrace/rewind/bpf"
	"github.com/rewindtrace/rewind/internal/syscalls"
	"github.com/rewindtrace/rewind/record/trigger"
)

// liveCollector exports, at each scrape, the sessions' live latency
// histograms and their triggers' counts. Safe for concurrent use.
//
// A live histogram is the kernel's log-linear buckets (bpf.HistM: 8 per
// power of two) summed over the CPUs. Prometheus gets them two ways in one
// metric: classic buckets at each power of two from 1.024µs to 17.2s (a
// bound counts the values below it), exact sums of the kernel's buckets;
// and, for a scraper that asks for the protobuf format, a native histogram
// of schema 3 (8 buckets per power of two), each kernel bucket counted in
// the native bucket of its midpoint, so off by at most half a kernel
// bucket (1/16 of the value).
type liveCollector struct{ d *Daemon }

var (
	descSyscallLat = prometheus.NewDesc("rewind_syscall_latency_seconds", "System call latency (sys_enter to sys_exit) of the tasks the session tracks, by system call.", []string{"session", "syscall"}, nil)
	descRunqLat    = prometheus.NewDesc("rewind_runqueue_latency_seconds", "Time tasks the session tracks waited to run (woken or preempted until switched in).", []string{"session"}, nil)
	descOffCPU     = prometheus.NewDesc("rewind_offcpu_seconds", "Time tasks the session tracks spent off CPU (switched out until switched in).", []string{"session"}, nil)
	descBlockLat   = prometheus.NewDesc("rewind_block_latency_seconds", "Block I/O latency (issue to completion), by device and operation, every device.", []string{"session", "device", "op"}, nil)
	descTrigMatch  = prometheus.NewDesc("rewind_trigger_matches_total", "Matches of a trigger's condition.", []string{"session", "trigger"}, nil)
	descTrigFired  = prometheus.NewDesc("rewind_trigger_firings_total", "Matches the trigger's rate policy let fire.", []string{"session", "trigger"}, nil)
	descTrigSupp   = prometheus.NewDesc("rewind_trigger_suppressed_total", "Matches a rate policy did not let fire, by reason (policy: every/once-after, cooldown, max_per_hour; pending: the trigger's previous snapshot was still being taken).", []string{"session", "trigger", "reason"}, nil)
	descTrigSnaps  = prometheus.NewDesc("rewind_trigger_snapshots_total", "Snapshots a trigger took.", []string{"session", "trigger"}, nil)
	descTrigErrs   = prometheus.NewDesc("rewind_trigger_errors_total", "A trigger's actions that failed (snapshot, notify).", []string{"session", "trigger"}, nil)
	descWatchLost  = prometheus.NewDesc("rewind_trigger_firings_lost_total", "Firings of in-kernel conditions lost before the daemon read them.", []string{"session"}, nil)
	descHistFull   = prometheus.NewDesc("rewind_live_histogram_updates_lost_total", "Live histogram updates lost: the kernel's histogram map was full.", []string{"session"}, nil)
	descCollided   = prometheus.NewDesc("rewind_watch_start_collisions_total", "Start times (of a system call, a wait, an off-CPU spell) lost to another thread whose id has the same low 16 bits.", []string{"session"}, nil)
)

func (c *liveCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSyscallLat, descRunqLat, descOffCPU, descBlockLat, descTrigMatch, descTrigFired,
		descTrigSupp, descTrigSnaps, descTrigErrs, descWatchLost, descHistFull, descCollided} {
		ch <- d
	}
}

func (c *liveCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.d.m.list() {
		wt := s.watch
		for _, t := range wt.list() {
			ch <- prometheus.MustNewConstMetric(descTrigMatch, prometheus.CounterValue, float64(t.Matches), s.name, t.Name)
			ch <- prometheus.MustNewConstMetric(descTrigFired, prometheus.CounterValue, float64(t.Fired), s.name, t.Name)
			for _, why := range []string{trigger.SuppressedPolicy, trigger.SuppressedCooldown, trigger.SuppressedMaxPerHour, trigger.SuppressedPending} {
				ch <- prometheus.MustNewConstMetric(descTrigSupp, prometheus.CounterValue, float64(t.Suppressed[why]), s.name, t.Name, why)
			}
			ch <- prometheus.MustNewConstMetric(descTrigSnaps, prometheus.CounterValue, float64(t.Snapshots), s.name, t.Name)
			ch <- prometheus.MustNewConstMetric(descTrigErrs, prometheus.CounterValue, float64(t.Errors), s.name, t.Name)
		}
		hists, st, since, ok, err := wt.read()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descSyscallLat, err)
			continue
		}
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descWatchLost, prometheus.CounterValue, float64(st.FiringsLost), s.name)
		ch <- prometheus.MustNewConstMetric(descHistFull, prometheus.CounterValue, float64(st.HistFull), s.name)
		ch <- prometheus.MustNewConstMetric(descCollided, prometheus.CounterValue, float64(st.Collided), s.name)
		keys := make([]bpf.HistKey, 0, len(hists))
		for k := range hists {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			a, b := keys[i], keys[j]
			return a.Hist < b.Hist || a.Hist == b.Hist && (a.Label < b.Label || a.Label == b.Label && a.Op < b.Op)
		})
		for _, k := range keys {
			var desc *prometheus.Desc
			labels := []string{s.name}
			switch k.Hist {
			case bpf.HistSyscall:
				desc = descSyscallLat
				name := syscalls.Name(runtime.GOARCH, int64(k.Label))
				if name == "" {
					name = strconv.Itoa(int(k.Label))
				}
				labels = append(labels, name)
			case bpf.HistRunq:
				desc = descRunqLat
			case bpf.HistOffCPU:
				desc = descOffCPU
			case bpf.HistBlock:
				desc = descBlockLat
				labels = append(labels, fmt.Sprintf("%d:%d", k.Label>>20, k.Label&(1<<20-1)), trigger.BlockOp(k.Op))
			default:
				continue
			}
			m, err := liveHistogram(desc, hists[k], since, labels...)
			if err != nil {
				m = prometheus.NewInvalidMetric(desc, err)
			}
			ch <- m
		}
	}
}

// read returns the live histograms and the watch's figures; ok is false
// while the watch is not loaded.
func (wt *watcher) read() (map[bpf.HistKey]*bpf.HistCounts, bpf.WatchStats, time.Time, bool, error) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	if wt.w == nil {
		return nil, bpf.WatchStats{}, time.Time{}, false, nil
	}
	st, err := wt.w.Stats()
	if err != nil {
		return nil, st, time.Time{}, false, err
	}
	h, err := wt.w.Histograms()
	return h, st, wt.loaded, err == nil, err
}

// classicBounds are the classic buckets' bounds in ns: powers of two from
// 2^10 (1.024µs) to 2^34 (17.2s).
var classicBounds = func() []uint64 {
	var out []uint64
	for k := 10; k <= 34; k++ {
		out = append(out, 1<<k)
	}
	return out
}()

// liveHist is a native histogram with classic buckets added.
type liveHist struct {
	prometheus.Metric
	classic []*dto.Bucket
}

func (h liveHist) Write(out *dto.Metric) error {
	if err := h.Metric.Write(out); err != nil {
		return err
	}
	out.Histogram.Bucket = h.classic
	return nil
}

// liveHistogram renders the kernel's buckets (bpf.HistM) as a Prometheus
// histogram in seconds, classic and native (schema 3); created is when
// counting began.
func liveHistogram(desc *prometheus.Desc, c *bpf.HistCounts, created time.Time, labels ...string) (prometheus.Metric, error) {
	var count, zero uint64
	native := map[int]int64{}
	idx := make([]int, 0, len(c.Buckets))
	for i, n := range c.Buckets {
		count += n
		idx = append(idx, i)
		lo, hi := hist.Bounds(i, bpf.HistM)
		mid := float64(lo+hi) / 2 / 1e9
		if mid == 0 {
			zero += n
			continue
		}
		native[int(math.Ceil(math.Log2(mid)*8))] += int64(n)
	}
	sort.Ints(idx)
	m, err := prometheus.NewConstNativeHistogram(desc, count, float64(c.Sum)/1e9, native, nil, zero, 3, 0, created, labels...)
	if err != nil {
		return nil, err
	}
	var classic []*dto.Bucket
	var cum uint64
	j := 0
	for _, bound := range classicBounds {
		for ; j < len(idx); j++ {
			if _, hi := hist.Bounds(idx[j], bpf.HistM); hi >= bound {
				break
			}
			cum += c.Buckets[idx[j]]
		}
		n, le := cum, float64(bound)/1e9
		classic = append(classic, &dto.Bucket{CumulativeCount: &n, UpperBound: &le})
	}
	return liveHist{Metric: m, classic: classic}, nil
}
