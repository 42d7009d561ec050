package main

import (
	_ "embed"
	"fmt"
	"strings"
)

//go:embed expected.txt
var expectedTable string

// allowance lets one event be unsupported on one kernel (or every kernel,
// "*"), for a reason.
type allowance struct {
	kernel, event, why string
}

// expectations is the parsed expected.txt.
type expectations []allowance

// parseExpected reads expected.txt: "KERNEL EVENT WHY..." a line, with #
// comments and blank lines.
func parseExpected(text string) (expectations, error) {
	var out expectations
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("expected.txt line %d: want KERNEL EVENT WHY, got %q", i+1, line)
		}
		out = append(out, allowance{kernel: f[0], event: f[1], why: strings.Join(f[2:], " ")})
	}
	return out, nil
}

// allowed says whether event may be unsupported on kernel, and why.
func (e expectations) allowed(kernel, event string) (why string, ok bool) {
	for _, a := range e {
		if a.event == event && (a.kernel == kernel || a.kernel == "*") {
			return a.why, true
		}
	}
	return "", false
}
