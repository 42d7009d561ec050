package syscalls

import (
	"testing"

	"github.com/rewindtrace/rewind/internal/gencheck"
)

func TestGeneratedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerates code")
	}
	gencheck.Check(t, "internal/syscalls", []string{"tables.go"})
}
