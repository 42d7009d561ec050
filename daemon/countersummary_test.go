package daemon

import (
	"bytes"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/record/counters"
	"github.com/rewindtrace/rewind/snapshot"
)

// promSample is one line of a text exposition.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	promLine  = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	promLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// parseExposition reads the samples of a text exposition.
func parseExposition(t *testing.T, body []byte) []promSample {
	t.Helper()
	var out []promSample
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := promLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("exposition line %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		must(t, err)
		s := promSample{name: m[1], labels: map[string]string{}, value: v}
		for _, l := range promLabel.FindAllStringSubmatch(m[2], -1) {
			uq, err := strconv.Unquote(`"` + l[2] + `"`)
			must(t, err)
			s.labels[l[1]] = uq
		}
		out = append(out, s)
	}
	return out
}

// scrapeText GETs /metrics.
func scrapeText(t *testing.T, d *Daemon) []byte {
	t.Helper()
	resp, err := http.Get("http://" + d.HTTPAddr() + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	return body
}

// summary is one field's summary in a scrape.
type summary struct {
	count, sum float64
	q          map[string]float64 // by quantile
}

// summaries returns the session's summaries of one field, given as
// family{field=NAME}, by their labels other than session, field and
// quantile.
func summaries(samples []promSample, sel, session string) map[string]*summary {
	family, field, _ := strings.Cut(strings.TrimSuffix(sel, "}"), "{field=")
	out := map[string]*summary{}
	for _, s := range samples {
		base, suffix := s.name, ""
		for _, sfx := range []string{"_count", "_sum"} {
			if b, ok := strings.CutSuffix(s.name, sfx); ok && b == family {
				base, suffix = b, sfx
			}
		}
		if base != family || s.labels["session"] != session || s.labels["field"] != field {
			continue
		}
		var key []string
		for k, v := range s.labels {
			if k != "session" && k != "field" && k != "quantile" && v != "" {
				key = append(key, k+"="+v)
			}
		}
		slices.Sort(key)
		id := strings.Join(key, ",")
		sm := out[id]
		if sm == nil {
			sm = &summary{q: map[string]float64{}}
			out[id] = sm
		}
		switch suffix {
		case "_count":
			sm.count = s.value
		case "_sum":
			sm.sum = s.value
		default:
			sm.q[s.labels["quantile"]] = s.value
		}
	}
	return out
}

// groundTruth is what a test tap of its own saw: MemAvailable's values,
// and the rates of cpu:context_switches, run by run.
type groundTruth struct {
	mu       sync.Mutex
	memory   []float64 // MemAvailable, this run
	ctxt     []float64 // context switches a second, this run
	prevCtxt float64
	prevTS   int64
	cpu      int // cpu samples, this run
}

func (g *groundTruth) tap(s counters.Sample) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, f := range s.Fields {
		switch {
		case s.Source == "memory" && f.Name == "MemAvailable":
			g.memory = append(g.memory, s.Value(i))
		case s.Source == "cpu" && f.Name == "context_switches":
			v := s.Value(i)
			if !s.Fresh {
				g.ctxt = append(g.ctxt, (v-g.prevCtxt)*1e9/float64(s.TS-g.prevTS))
			}
			g.prevCtxt, g.prevTS = v, s.TS
		}
	}
	if s.Source == "cpu" {
		g.cpu++
	}
}

// take returns this run's figures and starts the next run.
func (g *groundTruth) take() (memory, ctxt []float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	memory, ctxt = g.memory, g.ctxt
	g.memory, g.ctxt, g.cpu = nil, nil, 0
	return memory, ctxt
}

// rank is the q-quantile by nearest rank, of the values as the summary
// keeps them (float32).
func rank(vals []float64, q float64) float64 {
	s := make([]float32, len(vals))
	for i, v := range vals {
		s[i] = float32(v)
	}
	slices.Sort(s)
	return nearestRank(s, q)
}

// TestCounterSummary samples memory and cpu at 100 Hz in a session and
// scrapes /metrics between runs (the session stopped, so that no sample
// falls between the daemon's tap and the test's): each summary counts
// exactly the samples the test's own tap saw in the run, its quantiles
// are theirs (nearest rank), its maximum exact, and the next scrape
// starts a new window.
func TestCounterSummary(t *testing.T) {
	d, c := startDaemon(t, Config{Listen: "127.0.0.1:0"})
	create(t, c, api.CreateRequest{Name: "cs"})
	act(t, c, "cs", "enable-event", api.EventsRequest{Events: []string{"sched_switch"}})
	const (
		mem  = "rewind_sampled_memory_bytes{field=MemAvailable}"
		ctxt = "rewind_sampled_cpu_per_second{field=context_switches}"
		user = "rewind_sampled_cpu_seconds_per_second{field=user}"
	)
	// The first scrape taps the session, which samples no counter yet:
	// the tap covers the sources added after it.
	if body := scrapeText(t, d); bytes.Contains(body, []byte("rewind_sampled_")) {
		t.Fatalf("counter summaries before any sample:\n%s", body)
	}
	act(t, c, "cs", "enable-counter", api.CountersRequest{Counters: []string{"memory@100", "cpu@100"}})
	s, err := d.m.get("cs")
	must(t, err)
	var g groundTruth
	remove, err := s.rec.TapCounters(g.tap)
	must(t, err)
	defer remove()

	run := func(n int) (memory, ctxt []float64) {
		t.Helper()
		act(t, c, "cs", "start", nil)
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
			g.mu.Lock()
			enough := len(g.memory) >= n && g.cpu >= n
			g.mu.Unlock()
			if enough {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("waited a minute for %d samples", n)
			}
		}
		// Stop returns once the sampler has taken its last sample.
		act(t, c, "cs", "stop", nil)
		return g.take()
	}
	check := func(scrape int, samples []promSample, memory, rates []float64, countBefore map[string]float64) {
		t.Helper()
		for fam, vals := range map[string][]float64{mem: memory, ctxt: rates} {
			sm := summaries(samples, fam, "cs")[""]
			if sm == nil {
				t.Fatalf("scrape %d: no %s", scrape, fam)
			}
			if got, want := sm.count-countBefore[fam], float64(len(vals)); got != want {
				t.Errorf("scrape %d: %s counts %v samples since the last scrape, the test's tap saw %v", scrape, fam, got, want)
			}
			var sum float64
			for _, v := range vals {
				sum += v
			}
			if math.Abs(sm.sum-countBefore[fam+"_sum"]-sum) > 1e-9*math.Abs(sum) {
				t.Errorf("scrape %d: %s sums %v since the last scrape, want %v", scrape, fam, sm.sum-countBefore[fam+"_sum"], sum)
			}
			if got, want := sm.q["1"], slices.Max(vals); got != want {
				t.Errorf("scrape %d: %s max %v, want %v", scrape, fam, got, want)
			}
			for _, q := range []string{"0.5", "0.9", "0.99"} {
				f, _ := strconv.ParseFloat(q, 64)
				if got, want := sm.q[q], min(rank(vals, f), slices.Max(vals)); got != want {
					t.Errorf("scrape %d: %s quantile %s %v, want %v (of the run's %d samples)", scrape, fam, q, got, want, len(vals))
				}
			}
			countBefore[fam], countBefore[fam+"_sum"] = sm.count, sm.sum
		}
		// Every summary's quantiles in order, user time among them.
		n := 0
		for _, sm := range summaries(samples, user, "cs") {
			n++
			if len(sm.q) != 4 || !(sm.q["0.5"] <= sm.q["0.9"] && sm.q["0.9"] <= sm.q["0.99"] && sm.q["0.99"] <= sm.q["1"]) {
				t.Errorf("scrape %d: %s quantiles %v", scrape, user, sm.q)
			}
		}
		if n == 0 {
			t.Errorf("scrape %d: no %s", scrape, user)
		}
	}

	before := map[string]float64{}
	memory, rates := run(50)
	body := scrapeText(t, d)
	check(2, parseExposition(t, body), memory, rates, before)
	promtoolCheck(t, body)
	if !regexp.MustCompile(`(?m)^rewind_sampled_cpu_seconds_per_second\{cpu="all",field="user",session="cs",quantile="0.5"\} `).Match(body) {
		t.Errorf("no per-CPU user time summary labelled cpu=\"all\"")
	}

	// A second run: the windows start at the last scrape.
	memory2, rates2 := run(30)
	check(3, parseExposition(t, scrapeText(t, d)), memory2, rates2, before)

	// Nothing sampled since: counts stand, no quantiles; at the next such
	// scrape the summaries go.
	sm := summaries(parseExposition(t, scrapeText(t, d)), mem, "cs")[""]
	if sm == nil || sm.count != before[mem] || len(sm.q) != 0 {
		t.Errorf("scrape 4, nothing sampled: %s %+v, want count %v and no quantiles", mem, sm, before[mem])
	}
	if body := scrapeText(t, d); bytes.Contains(body, []byte("rewind_sampled_")) {
		t.Errorf("scrape 5, nothing sampled twice: the summaries stay")
	}

	// A destroyed session's tap goes with it.
	must(t, c.Destroy(t.Context(), "cs"))
	scrapeText(t, d)
	d.met.counters.mu.Lock()
	n := len(d.met.counters.sessions)
	d.met.counters.mu.Unlock()
	if n != 0 {
		t.Errorf("%d sessions tapped after the only one was destroyed", n)
	}
}

// promtoolCheck lints an exposition with promtool, as TestMetrics does.
func promtoolCheck(t *testing.T, body []byte) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("REWIND_REQUIRE_KERNEL") == "1" {
			t.Fatal("promtool not found; `make test` installs it")
		}
		t.Log("no promtool: the exposition is not linted")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// Families are named by source and unit; the field and its labels are
// labels.
func TestCounterSummaryNames(t *testing.T) {
	for _, c := range []struct {
		source string
		field  string
		labels map[string]string
		unit   string
		kind   string
		family string
		want   map[string]string
	}{
		{"memory", "Active(anon)", nil, "bytes", "gauge", "rewind_sampled_memory_bytes", map[string]string{"session": "s", "field": "Active(anon)"}},
		{"memory", "HugePages_Total", nil, "count", "gauge", "rewind_sampled_memory", map[string]string{"session": "s", "field": "HugePages_Total"}},
		{"pressure", "avg10", map[string]string{"resource": "cpu", "kind": "some"}, "percent", "gauge", "rewind_sampled_pressure_percent",
			map[string]string{"session": "s", "field": "avg10", "resource": "cpu", "kind": "some"}},
		{"pressure", "stall", nil, "ns", "counter", "rewind_sampled_pressure_seconds_per_second", map[string]string{"session": "s", "field": "stall"}},
		{"net", "rx_bytes", map[string]string{"iface": "eth0"}, "bytes", "counter", "rewind_sampled_net_bytes_per_second",
			map[string]string{"session": "s", "field": "rx_bytes", "iface": "eth0"}},
		{"tcp", "TCPLostRetransmit", map[string]string{"proto": "TcpExt"}, "count", "counter", "rewind_sampled_tcp_per_second",
			map[string]string{"session": "s", "field": "TCPLostRetransmit", "proto": "TcpExt"}},
		{"load", "load1", nil, "tasks", "gauge", "rewind_sampled_load", map[string]string{"session": "s", "field": "load1"}},
		{"cgroup:/sys/fs/cgroup/app", "memory_current", nil, "bytes", "gauge", "rewind_sampled_cgroup_bytes",
			map[string]string{"session": "s", "field": "memory_current", "cgroup": "/sys/fs/cgroup/app"}},
		{"cgroup:/sys/fs/cgroup/app", "usage", map[string]string{"session": "x", "quantile": "y", "field": "z", "a-b": "c"}, "ns", "counter",
			"rewind_sampled_cgroup_seconds_per_second", map[string]string{"session": "s", "field": "usage", "cgroup": "/sys/fs/cgroup/app",
				"field_session": "x", "field_quantile": "y", "field_field": "z", "a_b": "c"}},
	} {
		w := newWindow("s", c.source, &snapshot.SeriesField{Name: c.field, Labels: c.labels, Unit: c.unit, Kind: c.kind})
		if w.family != c.family || !maps.Equal(w.labels, c.want) {
			t.Errorf("%s:%s: %s %v, want %s %v", c.source, c.field, w.family, w.labels, c.family, c.want)
		}
	}
}
