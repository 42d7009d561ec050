package main

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/rewindtrace/rewind/test/kernels/result"
)

// outcome is what one kernel's run came to.
type outcome struct {
	kernel kernel
	img    *image
	// err is why there is no result: the fetch failed, the boot timed
	// out, qemu failed, the guest wrote none.
	err error
	// out is what the guest wrote; its Result is nil when it wrote none.
	out     result.Output
	seconds float64
	dir     string // the boot's folder
	// console is the end of the kernel console, kept for failures.
	console []string
	// oops is the first console line that says the kernel broke, warning
	// the first that says it warned.
	oops, warning string

	failures, notes []string
	// showConsole is set by failures the console may explain: a boot
	// that broke, a step that failed.
	showConsole bool
}

// Console lines that say the kernel broke (a failure), and that it warned
// (a note: a WARN_ON may be about the emulated machine).
var (
	brokenKernel  = regexp.MustCompile(`Oops|BUG:|Kernel panic|soft lockup|general protection fault`)
	kernelWarning = regexp.MustCompile(`WARNING: CPU|blocked for more than`)
)

// readConsole keeps the end of the boot's console and its first sign of a
// broken kernel.
func (o *outcome) readConsole(lines int) {
	b, err := os.ReadFile(filepath.Join(o.dir, consoleFile))
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return
	}
	all := strings.Split(strings.TrimRight(printable(b), "\n"), "\n")
	for _, l := range all {
		if o.oops == "" && brokenKernel.MatchString(l) {
			o.oops = strings.TrimSpace(l)
		}
		if o.warning == "" && kernelWarning.MatchString(l) {
			o.warning = strings.TrimSpace(l)
		}
	}
	// From /init on, when the kernel got that far: a failed step is
	// explained there, not by the boot messages before it.
	from := max(0, len(all)-lines)
	for i := len(all) - 1; i > from; i-- {
		if strings.Contains(all[i], "Run /init as init process") {
			from = i
			break
		}
	}
	o.console = all[from:]
}

// printable drops carriage returns, terminal escapes (the firmware clears
// the screen) and other control characters but newlines and tabs.
func printable(b []byte) string {
	b = terminalEscape.ReplaceAll(b, nil)
	return strings.Map(func(r rune) rune {
		if r < ' ' && r != '\n' && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, string(b))
}

// terminalEscape matches ANSI control sequences.
var terminalEscape = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|c)`)

// judge fills failures and notes: the run fails on an error, a failed
// step, an event unsupported that expected.txt does not allow, or a
// getppid count that is not the exact number the child made.
func (o *outcome) judge(exp expectations, calls int) {
	if o.err != nil {
		msg := o.err.Error()
		if errors.Is(o.err, errTimeout) {
			msg += " in step " + stepOrBoot(o.out.LastStep)
		}
		o.failures = append(o.failures, msg)
		o.showConsole = true
	}
	if o.oops != "" {
		o.failures = append(o.failures, "kernel console: "+o.oops)
		o.showConsole = true
	}
	if o.warning != "" {
		o.notes = append(o.notes, "kernel console: "+o.warning)
	}
	r := o.out.Result
	if r == nil {
		if o.err == nil {
			o.failures = append(o.failures, "no result from the guest (last step "+stepOrBoot(o.out.LastStep)+")")
			o.showConsole = true
		}
		return
	}
	var skipped []string
	for _, s := range r.Steps {
		switch {
		case s.Error == "":
		case strings.HasPrefix(s.Error, "skipped"):
			skipped = append(skipped, s.Name)
		default:
			o.failures = append(o.failures, fmt.Sprintf("step %s: %s", s.Name, s.Error))
			o.showConsole = true
		}
	}
	if len(skipped) > 0 {
		o.failures = append(o.failures, "skipped after that: "+strings.Join(skipped, ", "))
	}
	o.judgeEvents(exp, r)
	if r.GetppidExpected != calls {
		o.failures = append(o.failures, fmt.Sprintf("the guest's child made %d getppid calls, want %d", r.GetppidExpected, calls))
	}
	if stepOK(r, result.StepView) && (r.GetppidEnter != calls || r.GetppidExit != calls) {
		o.failures = append(o.failures, fmt.Sprintf("getppid recorded: %d sys_enter, %d sys_exit, want %d each",
			r.GetppidEnter, r.GetppidExit, calls))
	}
	o.judgeTCP(r)
	if r.NoBTF == nil {
		o.failures = append(o.failures, "the guest did not record with --btf FILE")
	} else if stepOK(r, result.StepBTFView) && (r.NoBTF.GetppidEnter != calls || r.NoBTF.GetppidExit != calls) {
		o.failures = append(o.failures, fmt.Sprintf("getppid recorded with --btf FILE: %d sys_enter, %d sys_exit, want %d each",
			r.NoBTF.GetppidEnter, r.NoBTF.GetppidExit, calls))
	}
	if r.Lost > 0 {
		o.notes = append(o.notes, fmt.Sprintf("%d events lost (per CPU %v)", r.Lost, r.LostPerCPU))
	}
}

// judgeEvents compares list's verdicts with expected.txt; events that
// fail for the same reason are reported together.
func (o *outcome) judgeEvents(exp expectations, r *result.Result) {
	if len(r.Events) == 0 {
		return
	}
	byReason := map[string][]string{}
	for _, e := range r.Events {
		why, allowed := exp.allowed(o.kernel.name, e.Name)
		switch {
		case !e.Supported && !allowed:
			// Reasons name their event ("the verifier rejects rw_X: ...");
			// without it, one reason covers many events.
			reason := strings.ReplaceAll(e.Reason, e.Name, "<event>")
			byReason[reason] = append(byReason[reason], e.Name)
		case e.Supported && allowed:
			o.notes = append(o.notes, fmt.Sprintf("%s is supported (expected.txt allows it not to be: %s)", e.Name, why))
		}
	}
	for _, reason := range slices.Sorted(maps.Keys(byReason)) {
		o.failures = append(o.failures, fmt.Sprintf("unsupported, expected supported: %s: %q",
			strings.Join(byReason[reason], ", "), reason))
	}
}

// stepOK says whether the step ran and succeeded.
func stepOK(r *result.Result, name string) bool {
	for _, s := range r.Steps {
		if s.Name == name {
			return s.Error == ""
		}
	}
	return false
}

// stepOrBoot names the last step, or the boot before the guest's first.
func stepOrBoot(step string) string {
	if step == "" {
		return "boot (before the guest's first step)"
	}
	return step
}

// judgeTCP compares the tcp_retransmit_skb and tcp_send_reset events in
// the snapshot with the retransmissions and resets the kernel counted
// while the guest provoked them (nothing else on the VM sends TCP).
func (o *outcome) judgeTCP(r *result.Result) {
	if r.TCP == nil || !stepOK(r, result.StepTCP) || !stepOK(r, result.StepInfo) {
		return
	}
	for _, c := range []struct {
		event         string
		counted       uint64
		kernelCounter string
	}{
		{"tcp_retransmit_skb", r.TCP.Retransmits, "RetransSegs"},
		{"tcp_send_reset", r.TCP.Resets, "OutRsts"},
	} {
		if got := r.EventCounts[c.event]; got != c.counted {
			o.failures = append(o.failures, fmt.Sprintf("%s: %d recorded, the kernel counted %d (/proc/net/snmp Tcp %s)", c.event, got, c.counted, c.kernelCounter))
		}
	}
}
