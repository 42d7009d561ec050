package syscalls

import "testing"

func TestNames(t *testing.T) {
	for _, c := range []struct {
		machine string
		nr      int64
		want    string
	}{
		{"x86_64", 110, "getppid"},
		{"x86_64", 0, "read"},
		{"x86_64", 230, "clock_nanosleep"},
		{"aarch64", 173, "getppid"},
		{"aarch64", 63, "read"},
		{"arm64", 115, "clock_nanosleep"},
		{"x86_64", -1, ""},
		{"x86_64", 100000, ""},
		{"riscv64", 1, ""},
	} {
		if got := Name(c.machine, c.nr); got != c.want {
			t.Errorf("Name(%s, %d) = %q, want %q", c.machine, c.nr, got, c.want)
		}
	}
	if Number("x86_64", "getppid") != 110 || Number("x86_64", "nope") != -1 {
		t.Error("Number")
	}
}
