package daemon

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rewindtrace/rewind/record"
	"github.com/rewindtrace/rewind/record/counters"
	"github.com/rewindtrace/rewind/snapshot"
)

// counterSummary exports, for every field of every counter source each
// session samples, a summary of the samples taken since the last scrape,
// the way Rezolus does: a counter sampled every 10 ms shows the burst that
// its rate over the scrape interval averages away.
//
// One summary family per source and unit, the field a label:
//
//	rewind_sampled_<source>[_<unit>]{session, field, <field's labels>, quantile}
//
// with quantile 0.5, 0.9, 0.99 and 1 (the maximum) over the samples
// since the previous scrape (by any scraper), and _count and _sum over
// every sample since the session was first scraped. A gauge's samples
// are its values; a counter's are its rates, the increase per second
// between two consecutive samples (the first sample of a source, or of a
// run that starts afresh, gives none). Names and labels:
//
//   - <source> is the source's name (cpu, memory, vm, disk, net, tcp,
//     pressure, load, softirqs, interrupts, perf); every cgroup:PATH
//     source is "cgroup", with a label cgroup="PATH";
//   - <unit> is the value's, in Prometheus's base units: a gauge in
//     bytes _bytes, in ns _seconds (converted), in percent _percent, a
//     count or a number of tasks nothing; a counter's rate adds
//     _per_second (_bytes_per_second, _seconds_per_second, _per_second);
//   - field is the field's name as snapshots, rewind info and counter
//     conditions (internal/counterexpr) write it: MemAvailable, avg10,
//     user, rx_bytes, TCPLostRetransmit;
//   - the field's own labels keep their names (cpu, dev, iface, resource,
//     kind, proto, vec, irq, name); one that would clash with session,
//     field, cgroup or quantile is prefixed "field_". A field lacking a
//     label its family's others have shows it empty, which Prometheus
//     reads as absent.
//
// For example PSI's cpu some avg10 at its 99th percentile, the most
// memory available, and the median of user time on all CPUs (in CPUs
// busy):
//
//	rewind_sampled_pressure_percent{session="s",field="avg10",resource="cpu",kind="some",quantile="0.99"}
//	rewind_sampled_memory_bytes{session="s",field="MemAvailable",quantile="1"}
//	rewind_sampled_cpu_seconds_per_second{session="s",field="user",cpu="all",quantile="0.5"}
//
// The family names are thus a fixed set (sources × units), and the
// series those of the fields sampled: the sources a session was given
// (enable-counter), times the machine's CPUs, disks, interfaces or
// interrupt lines for the per-device ones, times six (four quantiles,
// count, sum); nothing a workload does adds to them. A field with no
// sample since the last scrape has no quantiles at that scrape; with
// none at two in a row its summary goes.
//
// Nothing is kept until the first scrape: it taps each session's counters
// (record.Recorder.TapCounters) when it first sees the session, so a
// daemon nobody scrapes pays nothing. A field keeps at most maxWindow
// samples between two scrapes: beyond, quantiles are those of a uniform
// sample of them (Vitter's algorithm R); count, sum and the maximum stay
// exact. Quantiles other than the maximum are held as float32.
//
// Safe for concurrent use: the taps feed the windows on the sampling
// threads while Collect takes them, both under mu; concurrent Collects
// take turns.
type counterSummary struct {
	d *Daemon

	collect sync.Mutex // one Collect at a time: it owns the windows' spare buffers

	mu       sync.Mutex // guards what follows; a tap takes it for each sample
	sessions map[*record.Recorder]*tappedSession
	rnd      *rand.Rand
}

// maxWindow bounds the samples a field keeps between two scrapes: at
// 100 Hz, 82 s of them.
const maxWindow = 8192

// quantiles are those each summary exports; 1 is the maximum.
var quantiles = []float64{0.5, 0.9, 0.99, 1}

// tappedSession is one session's tap and windows.
type tappedSession struct {
	name    string
	remove  func()
	sources map[string]*tappedSource
}

// tappedSource is the windows of one source's fields.
type tappedSource struct {
	fields []snapshot.SeriesField // the fields wins is for (the sampler's slice)
	wins   []*window              // by field index
	byKey  map[string]*window     // every window, by field key: they outlive a change of fields
}

// window is one field's samples since the last scrape.
type window struct {
	family, help string
	labels       map[string]string // session, field, cgroup and the field's own
	counter      bool
	scale        float64 // from the field's unit to the exported one

	vals     []float32 // since the last scrape, or a uniform sample of them
	spare    []float32 // the buffer Collect handed out last
	seen     uint64    // samples since the last scrape
	max      float64
	count    uint64  // since the window was made
	sum      float64 // since the window was made
	idle     int     // scrapes in a row with no sample
	prev     float64 // a counter's previous value
	prevTS   int64
	havePrev bool
	dead     bool // dropped by Collect: feed makes another
}

func newCounterSummary(d *Daemon) *counterSummary {
	return &counterSummary{d: d, sessions: map[*record.Recorder]*tappedSession{}, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

// Describe describes nothing: the families depend on the fields sampled,
// so the collector is unchecked.
func (c *counterSummary) Describe(chan<- *prometheus.Desc) {}

// summaryOut is one window as a scrape took it.
type summaryOut struct {
	w          *window
	count      uint64
	sum, max   float64
	vals       []float32
	hasSamples bool
}

// Collect taps the sessions it has not seen, lets go of those gone, and
// exports every window, resetting it.
func (c *counterSummary) Collect(ch chan<- prometheus.Metric) {
	c.collect.Lock()
	defer c.collect.Unlock()
	c.track()

	var outs []summaryOut
	c.mu.Lock()
	for _, ts := range c.sessions {
		for _, src := range ts.sources {
			for key, w := range src.byKey {
				out := summaryOut{w: w, count: w.count, sum: w.sum, max: w.max, hasSamples: w.seen > 0}
				if w.seen == 0 {
					if w.idle++; w.idle >= 2 {
						w.dead = true
						delete(src.byKey, key)
						continue
					}
				} else {
					w.idle = 0
					out.vals = w.vals
					w.vals, w.spare = w.spare[:0], w.vals
					w.seen, w.max = 0, math.Inf(-1)
				}
				outs = append(outs, out)
			}
		}
	}
	c.mu.Unlock()

	// Sort outside the lock, the samplers going on; the buffers handed
	// out are the windows' spares, which only the next Collect touches.
	helps := map[string]string{}
	names := map[string][]string{} // each family's label names: the union of its members'
	for _, o := range outs {
		if _, ok := helps[o.w.family]; !ok {
			helps[o.w.family] = o.w.help
		}
		for k := range o.w.labels {
			if !slices.Contains(names[o.w.family], k) {
				names[o.w.family] = append(names[o.w.family], k)
			}
		}
	}
	descs := map[string]*prometheus.Desc{}
	for fam, ls := range names {
		slices.Sort(ls)
		descs[fam] = prometheus.NewDesc(fam, helps[fam], ls, nil)
	}
	seen := map[string]bool{}
	for _, o := range outs {
		ls := names[o.w.family]
		vals := make([]string, len(ls))
		for i, k := range ls {
			vals[i] = o.w.labels[k] // "" for a label this field lacks: the same as none
		}
		// Two fields whose names differ only in what promName replaced
		// would be one series: the first is kept.
		id := o.w.family + "\x00" + strings.Join(vals, "\x00")
		if seen[id] {
			continue
		}
		seen[id] = true
		var qs map[float64]float64
		if o.hasSamples {
			slices.Sort(o.vals)
			qs = make(map[float64]float64, len(quantiles))
			for _, q := range quantiles {
				// Rounded to float32, a value may pass the maximum.
				qs[q] = min(nearestRank(o.vals, q), o.max)
			}
			qs[1] = o.max // exact, even when the reservoir lost it
		}
		m, err := prometheus.NewConstSummary(descs[o.w.family], o.count, o.sum, qs, vals...)
		if err != nil {
			m = prometheus.NewInvalidMetric(descs[o.w.family], err)
		}
		ch <- m
	}
}

// nearestRank is the q-quantile of sorted: the smallest value with at
// least a share q of them at or below it.
func nearestRank(sorted []float32, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return float64(sorted[max(0, min(i, len(sorted)-1))])
}

// track taps the sessions not tapped yet and lets go of those gone.
// Neither the taps' setting up nor their removal holds mu: a tap holds
// its sampler's lock and then takes mu.
func (c *counterSummary) track() {
	live := map[*record.Recorder]string{}
	for _, s := range c.d.m.list() {
		live[s.rec] = s.name
	}
	var gone []func()
	added := map[*record.Recorder]*tappedSession{}
	c.mu.Lock()
	for rec, ts := range c.sessions {
		if _, ok := live[rec]; !ok {
			gone = append(gone, ts.remove)
			delete(c.sessions, rec)
		}
	}
	for rec, name := range live {
		if c.sessions[rec] == nil {
			ts := &tappedSession{name: name, sources: map[string]*tappedSource{}}
			c.sessions[rec], added[rec] = ts, ts
		}
	}
	c.mu.Unlock()
	for _, remove := range gone {
		if remove != nil {
			remove()
		}
	}
	for rec, ts := range added {
		remove, err := rec.TapCounters(func(smp counters.Sample) { c.feed(ts, smp) })
		c.mu.Lock()
		if err != nil {
			delete(c.sessions, rec) // closed meanwhile
		} else {
			ts.remove = remove
		}
		c.mu.Unlock()
	}
}

// feed adds a sample to its fields' windows; it runs on the session's
// sampling thread.
func (c *counterSummary) feed(ts *tappedSession, smp counters.Sample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	src := ts.sources[smp.Source]
	if src == nil {
		src = &tappedSource{byKey: map[string]*window{}}
		ts.sources[smp.Source] = src
	}
	if len(src.fields) != len(smp.Fields) || len(smp.Fields) > 0 && &src.fields[0] != &smp.Fields[0] {
		src.bind(ts.name, smp.Source, smp.Fields)
	}
	for i := range smp.Fields {
		w := src.wins[i]
		if w.dead {
			w = src.window(ts.name, smp.Source, &smp.Fields[i])
			src.wins[i] = w
		}
		v := smp.Value(i)
		if w.counter {
			prev, prevTS, had := w.prev, w.prevTS, w.havePrev
			w.prev, w.prevTS, w.havePrev = v, smp.TS, true
			if smp.Fresh || !had || smp.TS <= prevTS || v < prev {
				continue
			}
			v = (v - prev) * 1e9 / float64(smp.TS-prevTS)
		}
		w.add(v*w.scale, c.rnd)
	}
}

// add takes one sample.
func (w *window) add(v float64, rnd *rand.Rand) {
	w.seen++
	w.count++
	w.sum += v
	if w.seen == 1 || v > w.max {
		w.max = v
	}
	if len(w.vals) < maxWindow {
		w.vals = append(w.vals, float32(v))
	} else if j := rnd.Uint64N(w.seen); j < maxWindow {
		w.vals[j] = float32(v)
	}
}

// bind points the source's windows at its current fields, making those
// it lacks.
func (src *tappedSource) bind(session, source string, fields []snapshot.SeriesField) {
	src.fields = fields
	src.wins = make([]*window, len(fields))
	for i := range fields {
		src.wins[i] = src.window(session, source, &fields[i])
	}
}

// window returns the field's window, made if it has none.
func (src *tappedSource) window(session, source string, f *snapshot.SeriesField) *window {
	key := fieldKey(f)
	if w := src.byKey[key]; w != nil {
		return w
	}
	w := newWindow(session, source, f)
	src.byKey[key] = w
	return w
}

func fieldKey(f *snapshot.SeriesField) string {
	var b strings.Builder
	b.WriteString(f.Name)
	for _, k := range slices.Sorted(maps.Keys(f.Labels)) {
		b.WriteString("\x00" + k + "\x00" + f.Labels[k])
	}
	return b.String()
}

// newWindow names a field's summary.
func newWindow(session, source string, f *snapshot.SeriesField) *window {
	w := &window{counter: f.Kind == snapshot.SeriesCounter, scale: 1, labels: map[string]string{"session": session, "field": f.Name}}
	kind := source
	if path, ok := strings.CutPrefix(source, "cgroup:"); ok {
		kind = "cgroup"
		w.labels["cgroup"] = path
	}
	for k, v := range f.Labels {
		k = promName(k)
		if _, clash := w.labels[k]; clash || k == "quantile" {
			k = "field_" + k
		}
		w.labels[k] = v
	}
	var unit, what string
	switch f.Unit {
	case "bytes":
		unit, what = "_bytes", "bytes"
	case "ns":
		unit, w.scale, what = "_seconds", 1e-9, "seconds"
	case "percent":
		unit, what = "_percent", "percent"
	default:
		what = "counts"
	}
	if w.counter {
		unit += "_per_second"
		what += " per second, the rates of running totals"
	}
	w.family = "rewind_sampled_" + promName(kind) + unit
	w.help = "Samples of the " + kind + " counters (the field label names which) in " + what +
		": quantiles of those since the last scrape, 1 the maximum; count and sum since the session was first scraped."
	return w
}

// promName turns s into a Prometheus name (of a metric or a label): what
// it does not allow (":" included, kept for recording rules) becomes "_",
// runs of "_" one, none at the end. Sources and label names are plain
// words already: this only keeps an odd one from failing the scrape.
func promName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0) {
			b[i] = '_'
		}
	}
	out := strings.TrimRight(string(b), "_")
	for strings.Contains(out, "__") {
		out = strings.ReplaceAll(out, "__", "_")
	}
	if out == "" {
		return "_"
	}
	return out
}
