// Package units reads and writes byte sizes the way rewind's commands and
// reports show them: powers of 1024 with binary unit names.
package units

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize reads a byte size: a number and an optional unit K, M or G,
// with or without "iB" or "B", all powers of 1024 (64MiB, 512k, 1G).
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	}
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "b"), "i")
	shift, ok := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || !ok || v < 0 || v*float64(uint64(1)<<shift) > 1<<50 {
		return 0, fmt.Errorf("size %q: want a number and a unit such as 64MiB, 512k or 1G", s)
	}
	return uint64(v * float64(uint64(1)<<shift)), nil
}

// FormatSize prints bytes with a binary unit.
func FormatSize(n uint64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatUint(n, 10) + " B"
}
