// Command rewind is a Linux flight recorder: it keeps the last seconds of
// what the kernel did in per-CPU rings and writes them to a snapshot on
// demand. See README.md.
package main

import (
	"fmt"
	"os"

	"github.com/rewindtrace/rewind/cmd/rewind/app"
)

func main() {
	if err := app.New().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "rewind:", err)
		os.Exit(1)
	}
}
