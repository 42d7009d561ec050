// Package syscalls names system calls by number for the architectures
// snapshots come from.
package syscalls

//go:generate go run ./gen

// Name returns the name of syscall nr on machine (uname -m: x86_64,
// aarch64), or "" when unknown.
func Name(machine string, nr int64) string {
	t := tables[normalize(machine)]
	if nr < 0 || nr >= int64(len(t)) {
		return ""
	}
	return t[nr]
}

// Number returns the number of the named syscall on machine, or -1.
func Number(machine, name string) int64 {
	for nr, n := range tables[normalize(machine)] {
		if n == name {
			return int64(nr)
		}
	}
	return -1
}

func normalize(machine string) string {
	switch machine {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return machine
}
