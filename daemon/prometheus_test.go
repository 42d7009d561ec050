package daemon

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewindtrace/rewind/daemon/api"
)

// TestPrometheusScrapes runs Debian's Prometheus against the daemon's
// /metrics and asks its query API for the session's events recorded.
func TestPrometheusScrapes(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("REWIND_REQUIRE_KERNEL") == "1" {
			t.Fatal("prometheus not found; `make test` installs it (scripts/deps.sh test)")
		}
		t.Skip("no prometheus")
	}
	d, c := startDaemon(t, Config{Listen: "127.0.0.1:0"})
	create(t, c, api.CreateRequest{Name: "scraped"})
	act(t, c, "scraped", "enable-event", api.EventsRequest{Events: []string{"syscalls"}})
	act(t, c, "scraped", "start", nil)

	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rewind\n    static_configs:\n      - targets: ['%s']\n", d.HTTPAddr())
	must(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644))
	addr := freePort(t)
	prom := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	prom.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var log strings.Builder
	prom.Stdout, prom.Stderr = &log, &log
	must(t, prom.Start())
	t.Cleanup(func() { prom.Process.Kill(); prom.Wait() })

	query := "http://" + addr + "/api/v1/query?query=" + url.QueryEscape(`sum(rewind_events_recorded_total{session="scraped"})`)
	deadline := time.Now().Add(90 * time.Second)
	for {
		v, err := queryValue(query)
		if err == nil && v > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has no rewind_events_recorded_total > 0 for the session after 90s (last: %v, %v); its log:\n%s", v, err, log.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// queryValue asks Prometheus's query API for an instant vector of one
// sample and returns its value.
func queryValue(u string) (float64, error) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" || len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("status %s, %d results", r.Status, len(r.Data.Result))
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// freePort returns a loopback address no one listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().String()
}
