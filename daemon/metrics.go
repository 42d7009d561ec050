package daemon

import (
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the daemon's Prometheus metrics, on a registry of its own:
// the sessions' figures read from their recorders at each scrape, the
// durations of the snapshots the daemon took, and the summaries of their
// counters' samples between scrapes (countersummary.go). Safe for
// concurrent use.
type metrics struct {
	reg       *prometheus.Registry
	snapshots *prometheus.HistogramVec
	counters  *counterSummary
	// crashes counts the crashes the handler told of, by what became of
	// the core; crashSnaps the snapshots taken for them, by result.
	crashes, crashSnaps *prometheus.CounterVec
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), counters: newCounterSummary(d)}
	m.snapshots = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rewind_snapshot_duration_seconds",
		Help:    "Time from a snapshot's request to its file (or stream) being complete, by session.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12), // 10 ms to 20 s
	}, []string{"session"})
	m.crashes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rewind_crashes_total",
		Help: "Crashes the crash handler told the daemon of, by what became of the core (saved; rlimit: RLIMIT_CORE was 0; storm: past the storm limit)."}, []string{"core"})
	m.crashSnaps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rewind_crash_snapshots_total",
		Help: "Snapshots taken into crash records, by result (ok, failed)."}, []string{"result"})
	for _, c := range []string{"saved", "rlimit", "storm"} {
		m.crashes.WithLabelValues(c)
	}
	for _, r := range []string{"ok", "failed"} {
		m.crashSnaps.WithLabelValues(r)
	}
	m.reg.MustRegister(m.crashes, m.crashSnaps)
	m.reg.MustRegister(m.snapshots, &sessionCollector{d: d}, m.counters, &liveCollector{d: d}, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "rewind_build_info",
		Help:        "The daemon's build: 1, labelled with rewind's version and Go's.",
		ConstLabels: prometheus.Labels{"version": d.cfg.Version, "goversion": runtime.Version()},
	}, func() float64 { return 1 }))
	return m
}

// observe records a snapshot's duration.
func (m *metrics) observe(session string, took time.Duration) {
	m.snapshots.WithLabelValues(session).Observe(took.Seconds())
}

// sessionCollector reads every session's figures when scraped.
type sessionCollector struct{ d *Daemon }

var (
	descRecorded = prometheus.NewDesc("rewind_events_recorded_total", "Records the BPF programs wrote into the kernel rings, by event.", []string{"session", "event"}, nil)
	descSessions = prometheus.NewDesc("rewind_sessions", "Sessions in the daemon, by state (created: never started).", []string{"state"}, nil)
	descSlots    = prometheus.NewDesc("rewind_ring_slots_written_total", "64-byte slots written into a CPU's kernel ring (a record takes one, or several).", []string{"session", "cpu"}, nil)
	descDropped  = prometheus.NewDesc("rewind_events_dropped_total", "Records the BPF programs could not write, by CPU.", []string{"session", "cpu"}, nil)
	descLost     = prometheus.NewDesc("rewind_events_lost_total", "Records the kernel ring overwrote before the history tier drained them, by CPU.", []string{"session", "cpu"}, nil)
	descFill     = prometheus.NewDesc("rewind_ring_fill_ratio", "Share of a CPU's kernel ring holding records, 0 to 1.", []string{"session", "cpu"}, nil)
	descRing     = prometheus.NewDesc("rewind_ring_bytes", "Kernel ring size, all CPUs.", []string{"session"}, nil)
	descMemory   = prometheus.NewDesc("rewind_memory_bytes", "Memory the session holds: rings, snapshot copies, history tier, counter samples.", []string{"session"}, nil)
	descHistB    = prometheus.NewDesc("rewind_history_bytes", "Compressed history held beyond the rings.", []string{"session"}, nil)
	descHistE    = prometheus.NewDesc("rewind_history_events", "Events in the compressed history held beyond the rings.", []string{"session"}, nil)
	descSnaps    = prometheus.NewDesc("rewind_snapshots_total", "Snapshots taken, by result (ok, failed).", []string{"session", "result"}, nil)
	descMissed   = prometheus.NewDesc("rewind_sampler_missed_total", "Counter samples skipped for being late.", []string{"session"}, nil)
	descSampErr  = prometheus.NewDesc("rewind_sampler_errors", "1 while counter sampling fails, else 0.", []string{"session"}, nil)
)

func (c *sessionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecorded, descSessions, descSlots, descDropped, descLost, descFill, descRing, descMemory,
		descHistB, descHistE, descSnaps, descMissed, descSampErr} {
		ch <- d
	}
}

func (c *sessionCollector) Collect(ch chan<- prometheus.Metric) {
	states := map[string]float64{"created": 0, "recording": 0, "stopped": 0}
	for _, s := range c.d.m.list() {
		st, err := s.rec.Stats()
		if err != nil {
			continue // destroyed meanwhile
		}
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		states[stateName(st.State, started)]++
		name := s.name
		for event, n := range st.Recorded {
			ch <- prometheus.MustNewConstMetric(descRecorded, prometheus.CounterValue, float64(n), name, event)
		}
		for _, cpu := range st.CPUs {
			id := strconv.Itoa(cpu.CPU)
			ch <- prometheus.MustNewConstMetric(descSlots, prometheus.CounterValue, float64(cpu.Slots), name, id)
			ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(cpu.Dropped), name, id)
			ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(cpu.Lost), name, id)
			ch <- prometheus.MustNewConstMetric(descFill, prometheus.GaugeValue, cpu.Fill, name, id)
		}
		ch <- prometheus.MustNewConstMetric(descRing, prometheus.GaugeValue, float64(st.BufferBytes*uint64(len(st.CPUs))), name)
		ch <- prometheus.MustNewConstMetric(descMemory, prometheus.GaugeValue, float64(st.MemoryBytes), name)
		var held struct{ bytes, events float64 }
		if st.History != nil {
			held.bytes, held.events = float64(st.History.Held.Bytes), float64(st.History.Held.Events)
		}
		ch <- prometheus.MustNewConstMetric(descHistB, prometheus.GaugeValue, held.bytes, name)
		ch <- prometheus.MustNewConstMetric(descHistE, prometheus.GaugeValue, held.events, name)
		ch <- prometheus.MustNewConstMetric(descSnaps, prometheus.CounterValue, float64(st.Snapshots.Taken), name, "ok")
		ch <- prometheus.MustNewConstMetric(descSnaps, prometheus.CounterValue, float64(st.Snapshots.Failed), name, "failed")
		ch <- prometheus.MustNewConstMetric(descMissed, prometheus.CounterValue, float64(st.Counters.Missed), name)
		sampErr := 0.0
		if st.Counters.Err != "" {
			sampErr = 1
		}
		ch <- prometheus.MustNewConstMetric(descSampErr, prometheus.GaugeValue, sampErr, name)
	}
	for state, n := range states {
		ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, n, state)
	}
}
