package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/rewindtrace/rewind/test/kernels/result"
)

// printTable writes one row per kernel.
func printTable(w io.Writer, outcomes []*outcome) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tSUITE\tSUPPORTED\tUNSUPPORTED\tGETPPID ENTER/EXIT/WANT\tLOST\tTCP RETRANS/RESET\tANALYZE\tWITH --btf FILE\tSECONDS\tRESULT")
	for _, o := range outcomes {
		fmt.Fprintln(tw, strings.Join(o.row(), "\t"))
	}
	return tw.Flush()
}

// row is the outcome's cells in printTable's columns.
func (o *outcome) row() []string {
	release, suite := "?", o.kernel.name
	if o.img != nil {
		release, suite = o.img.release, o.kernel.name+" ("+o.img.pkg.suite+")"
		if o.kernel.name == o.img.pkg.suite {
			suite = o.kernel.name
		}
	}
	supported, unsupported, getppid, lost, tcp, analyze, btfFile := "-", "-", "-", "-", "-", "-", "-"
	if r := o.out.Result; r != nil {
		release = r.Kernel
		if len(r.Events) > 0 {
			supported = fmt.Sprintf("%d of %d", r.Supported(), len(r.Events))
			unsupported = unsupportedNames(r)
		}
		if stepOK(r, result.StepView) {
			getppid = fmt.Sprintf("%d/%d/%d", r.GetppidEnter, r.GetppidExit, r.GetppidExpected)
		}
		if stepOK(r, result.StepInfo) {
			lost = fmt.Sprint(r.Lost)
			if r.TCP != nil {
				tcp = fmt.Sprintf("%d/%d %d/%d", r.EventCounts["tcp_retransmit_skb"], r.TCP.Retransmits,
					r.EventCounts["tcp_send_reset"], r.TCP.Resets)
			}
		}
		if r.NoBTF != nil && stepOK(r, result.StepBTFView) {
			btfFile = fmt.Sprintf("%d/%d/%d", r.NoBTF.GetppidEnter, r.NoBTF.GetppidExit, r.GetppidExpected)
		}
		switch {
		case r.Analyze == "ok":
			analyze = "ok"
		case r.Analyze != "":
			analyze = "failed"
		}
	}
	verdict := "pass"
	if len(o.failures) > 0 {
		verdict = "FAIL"
	}
	return []string{release, suite, supported, unsupported, getppid, lost, tcp, analyze, btfFile, fmt.Sprintf("%.0f", o.seconds), verdict}
}

// unsupportedNames lists the unsupported events, or says all or none.
func unsupportedNames(r *result.Result) string {
	var names []string
	for _, e := range r.Events {
		if !e.Supported {
			names = append(names, e.Name)
		}
	}
	switch len(names) {
	case 0:
		return "none"
	case len(r.Events):
		return "all"
	}
	return strings.Join(names, ",")
}

// printDetails writes, per kernel, its package, the guest's step times,
// and its failures and notes, with the console's end for a failure.
func printDetails(w io.Writer, outcomes []*outcome, keep bool) {
	for _, o := range outcomes {
		fmt.Fprintf(w, "\n%s:", o.kernel.name)
		if o.img != nil {
			fmt.Fprintf(w, " %s %s from %s", o.img.pkg.name, o.img.pkg.version, o.img.pkg.suite)
		}
		fmt.Fprintln(w)
		if r := o.out.Result; r != nil {
			var steps []string
			for _, s := range r.Steps {
				if !strings.HasPrefix(s.Error, "skipped") {
					steps = append(steps, fmt.Sprintf("%s %.1f s", s.Name, s.Seconds))
				}
			}
			fmt.Fprintf(w, "  steps: %s\n", strings.Join(steps, ", "))
			if stepOK(r, result.StepInfo) {
				fmt.Fprintf(w, "  snapshot: %d events, %d sys_enter, %d lost\n", r.EventsTotal, r.EventCounts["sys_enter"], r.Lost)
			}
		}
		if o.img != nil && o.img.warning != "" {
			fmt.Fprintf(w, "  warning: %s\n", o.img.warning)
		}
		for _, n := range o.notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		for _, f := range o.failures {
			fmt.Fprintf(w, "  FAIL: %s\n", f)
		}
		if o.showConsole && len(o.console) > 0 {
			fmt.Fprintf(w, "  console (last %d lines):\n", len(o.console))
			for _, l := range o.console {
				fmt.Fprintf(w, "    | %s\n", l)
			}
		}
		if keep && o.dir != "" {
			fmt.Fprintf(w, "  files: %s\n", o.dir)
		}
	}
}
