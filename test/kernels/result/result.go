// Package result is what the boot matrix's guest program reports to the
// host: one JSON object, framed by marker lines on the guest's second
// serial port, after progress lines that name each step as it starts.
package result

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// The guest writes these lines; the host looks for them in what the
// second serial port received.
const (
	// StepPrefix starts a progress line: StepPrefix + step name.
	StepPrefix = "rewind-kernels: step "
	// Begin and End frame the result's JSON.
	Begin = "rewind-kernels: result begin"
	End   = "rewind-kernels: result end"
)

// Step names, in the order the guest runs them.
const (
	StepList    = "list"
	StepStart   = "record-start"
	StepChild   = "child"
	StepTCP     = "tcp"
	StepStop    = "record-stop"
	StepInfo    = "info"
	StepView    = "view"
	StepAnalyze = "analyze"
	// Then the same recording as if the kernel had no BTF of its own:
	// its BTF copied to a file and hidden, record refused without
	// --btf, then recording with --btf FILE (raw tracepoints).
	StepHideBTF  = "hide-btf"
	StepNeedsBTF = "refused-without-btf"
	StepBTFStart = "btf-file-record-start"
	StepBTFChild = "btf-file-child"
	StepBTFStop  = "btf-file-record-stop"
	StepBTFView  = "btf-file-view"
	// StepWatch and StepBTFWatch load the trigger and live histogram
	// programs (bpf/watch.bpf.c), attach each, and check that a slow
	// system call fires its trigger exactly once.
	StepWatch    = "watch"
	StepBTFWatch = "btf-file-watch"
	BTFFile      = "/tmp/vmlinux.btf"
)

// Result is one boot's outcome, as the guest saw it.
type Result struct {
	// Kernel is the guest's uname release.
	Kernel string `json:"kernel"`
	// Events is `rewind list --events --json`'s verdict per event.
	Events []Event `json:"events"`
	// RecordWarnings are record's "not recording X: why" lines.
	RecordWarnings []string `json:"record_warnings,omitempty"`
	// GetppidExpected is how many getppid calls the child made.
	GetppidExpected int `json:"getppid_expected"`
	// Pass is the recording of the child with the kernel's own BTF.
	Pass
	// TCP is what the kernel counted of the retransmission and the reset
	// the guest provoked while recording (nil when it did not).
	TCP *TCP `json:"tcp,omitempty"`
	// NoBTF is the recording with the kernel's BTF hidden and given as a
	// file (--btf), nil when it did not run.
	NoBTF *NoBTF `json:"no_btf,omitempty"`
	// EventsTotal and Lost are info's events_total and lost_total;
	// LostPerCPU its per_cpu[].lost.
	EventsTotal uint64   `json:"events_total"`
	Lost        uint64   `json:"lost"`
	LostPerCPU  []uint64 `json:"lost_per_cpu,omitempty"`
	// EventCounts is info's event_counts.
	EventCounts map[string]uint64 `json:"event_counts,omitempty"`
	// Analyze is "ok" when analyze printed valid JSON, else why not.
	Analyze string `json:"analyze"`
	// Steps are the steps run, in order, with their time and failure.
	Steps []Step `json:"steps"`
}

// Pass is one recording of the child: its process, the final snapshot, and
// how many sys_enter and sys_exit events of its getppid calls the snapshot
// holds.
type Pass struct {
	ChildPID     int    `json:"child_pid"`
	Snapshot     string `json:"snapshot,omitempty"`
	GetppidEnter int    `json:"getppid_sys_enter"`
	GetppidExit  int    `json:"getppid_sys_exit"`
}

// TCP is the kernel's own count (/proc/net/snmp) of TCP segments
// retransmitted and resets sent while the guest provoked them.
type TCP struct {
	Retransmits uint64 `json:"retransmits"`
	Resets      uint64 `json:"resets"`
}

// NoBTF is the recording as on a kernel without BTF of its own.
type NoBTF struct {
	// Refusal is what record said without --btf.
	Refusal string `json:"refusal"`
	Pass
}

// Event is one entry of `rewind list --events --json`.
type Event struct {
	Name      string `json:"name"`
	Supported bool   `json:"supported"`
	Reason    string `json:"reason,omitempty"`
}

// Step is one step the guest ran.
type Step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	// Error is why the step failed ("" when it did not); a step skipped
	// because an earlier one failed says so here.
	Error string `json:"error,omitempty"`
}

// Supported counts the supported events.
func (r *Result) Supported() int {
	n := 0
	for _, e := range r.Events {
		if e.Supported {
			n++
		}
	}
	return n
}

// Output is what the host found on the guest's result port.
type Output struct {
	// Result is nil when the guest did not finish writing one.
	Result *Result
	// LastStep is the last step the guest said it started ("" before the
	// first).
	LastStep string
}

// Parse reads what the guest wrote. Carriage returns (the tty's ONLCR)
// are ignored. A missing result is not an error; a result that does not
// decode is.
func Parse(b []byte) (Output, error) {
	var out Output
	var body bytes.Buffer
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case line == Begin:
			in = true
			body.Reset()
		case line == End && in:
			var r Result
			if err := json.Unmarshal(body.Bytes(), &r); err != nil {
				return out, fmt.Errorf("decode result: %w", err)
			}
			out.Result = &r
			in = false
		case in:
			body.WriteString(line)
			body.WriteByte('\n')
		case strings.HasPrefix(line, StepPrefix):
			out.LastStep = strings.TrimPrefix(line, StepPrefix)
		}
	}
	return out, sc.Err()
}
