package app

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/rewindtrace/rewind/record"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

func listCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list what rewind can record here",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "events", Usage: "list every event and group, with whether this kernel supports it and why not"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON (docs/JSON.md)"},
			&cli.StringFlag{Name: "btf", Usage: "BTF file for a kernel without /sys/kernel/btf/vmlinux"},
		},
		Action: runList,
	}
}

// listJSON is `rewind list --events --json`.
type listJSON struct {
	Verified bool                 `json:"verified"`
	Events   []record.EventStatus `json:"events"`
	Groups   map[string][]string  `json:"groups"`
}

func runList(cliContext *cli.Context) error {
	if !cliContext.Bool("events") {
		return fmt.Errorf("list: say what to list: --events")
	}
	if cliContext.NArg() != 0 {
		return fmt.Errorf("list takes no arguments, got %q", cliContext.Args().Slice())
	}
	events, verified, err := record.ListEvents(cliContext.String("btf"))
	if err != nil {
		return err
	}
	groups := map[string][]string{}
	for _, e := range events {
		groups[e.Group] = append(groups[e.Group], e.Name)
		groups[kinds.GroupAll] = append(groups[kinds.GroupAll], e.Name)
		if e.Default {
			groups[kinds.GroupDefault] = append(groups[kinds.GroupDefault], e.Name)
		}
	}
	if cliContext.Bool("json") {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(listJSON{Verified: verified, Events: events, Groups: groups})
	}
	byGroup := append([]record.EventStatus(nil), events...)
	sort.SliceStable(byGroup, func(i, j int) bool { return byGroup[i].Group < byGroup[j].Group })
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tGROUP\tDEFAULT\tSUPPORTED\tFIELDS")
	var missing []record.EventStatus
	for _, e := range byGroup {
		def, ok := "", "yes"
		if e.Default {
			def = "yes"
		}
		if !e.Supported {
			ok = "no (below)"
			missing = append(missing, e)
		}
		var fields []string
		for _, f := range e.Fields {
			fields = append(fields, f.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, e.Group, def, ok, strings.Join(fields, ","))
	}
	tw.Flush()
	if len(missing) > 0 {
		fmt.Println("\nnot supported here:")
		for _, e := range missing {
			fmt.Printf("  %s: %s\n", e.Name, e.Reason)
		}
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	fmt.Println("\ngroups (for --events):")
	for _, g := range names {
		fmt.Printf("  %-10s %s\n", g, strings.Join(groups[g], ","))
	}
	if !verified {
		fmt.Println("\nchecked against the kernel's BTF only; as root, list also loads the programs, so the verifier's verdict counts")
	}
	return nil
}
