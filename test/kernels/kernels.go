package main

import "fmt"

// kernel is one row of the matrix: Debian's newest linux-image-cloud-amd64
// among some suites.
type kernel struct {
	// name names the row and is its key in expected.txt.
	name string
	// suites are where to look; the newest version among them wins.
	suites []string
}

// kernels are the rows the sets choose from. To add one, add a row here
// (and to a set below), and to expected.txt the events it may lack.
var kernels = []kernel{
	{name: "bullseye", suites: []string{"bullseye", "bullseye-updates", "bullseye-security"}}, // 5.10
	{name: "bookworm", suites: []string{"bookworm", "bookworm-updates", "bookworm-security"}}, // 6.1
	{name: "trixie", suites: []string{"trixie", "trixie-updates", "trixie-security"}},         // 6.12
	{name: "newest", suites: []string{"trixie-backports", "sid"}},                             // 6.16 and later
}

// sets are what -set chooses: ci the oldest and the newest kernel, all
// every row.
var sets = map[string][]string{
	"ci":  {"bullseye", "newest"},
	"all": {"bullseye", "bookworm", "trixie", "newest"},
}

// selectKernels returns the rows -kernels names (a name of the table
// above, or any Debian suite, as a row of its own), or else -set's.
func selectKernels(set string, names []string) ([]kernel, error) {
	if len(names) == 0 {
		var ok bool
		if names, ok = sets[set]; !ok {
			return nil, fmt.Errorf("-set %q: want ci or all", set)
		}
	}
	var out []kernel
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		k := kernel{name: name, suites: []string{name}}
		for _, known := range kernels {
			if known.name == name {
				k = known
			}
		}
		out = append(out, k)
	}
	return out, nil
}
