package main

import "testing"

func TestExpectedTable(t *testing.T) {
	exp, err := parseExpected(expectedTable)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kernel, event string
		allowed       bool
	}{
		{"bullseye", "cpu_frequency", true},
		{"newest", "cpu_frequency", true},
		{"bullseye", "contention_begin", true},
		{"bookworm", "contention_begin", false},
		{"bookworm", "tcp_retransmit_skb", false},
		{"bullseye", "sys_enter", false},
	} {
		if _, ok := exp.allowed(c.kernel, c.event); ok != c.allowed {
			t.Errorf("%s may lack %s: got %v, want %v", c.kernel, c.event, ok, c.allowed)
		}
	}
	for _, a := range exp {
		if a.kernel == "*" {
			continue
		}
		if !knownKernel(a.kernel) {
			t.Errorf("expected.txt names kernel %q, which kernels.go does not have", a.kernel)
		}
	}
}

func TestParseExpectedBadLine(t *testing.T) {
	if _, err := parseExpected("bullseye contention_begin\n"); err == nil {
		t.Error("a line without a reason: want an error")
	}
}

func knownKernel(name string) bool {
	for _, k := range kernels {
		if k.name == name {
			return true
		}
	}
	return false
}
