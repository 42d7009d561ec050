// Command kernels is rewind's boot matrix: it boots Debian's distribution
// kernels under qemu with an initramfs holding the static rewind and a
// guest program, and checks on each that rewind supports the events
// expected.txt expects, records the exact number of getppid calls a child
// makes, and reads the snapshot back with info, view and analyze. It
// prints one row per kernel and exits 1 when any kernel fails.
//
//	go run ./test/kernels [-set ci|all] [-kernels NAME,...] [-rewind PATH]
//	    [-cache DIR] [-timeout 12m] [-jobs 2] [-accel auto|tcg|kvm] [-keep]
//
// See README.md beside this file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// getppidCalls is how many getppid calls the recorded child makes: enough
// to stand out, few enough that a 4 MiB ring per CPU keeps them all.
const getppidCalls = 20000

// config is what the flags say.
type config struct {
	set     string
	kernels []string
	rewind  string
	cache   string
	timeout time.Duration
	jobs    int
	accel   string
	keep    bool
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "kernels:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	pass, err := run(ctx, cfg)
	stop()
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "kernels:", err)
		os.Exit(1)
	case !pass:
		os.Exit(1)
	}
}

// parseFlags reads the command line.
func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("kernels", flag.ContinueOnError)
	var cfg config
	var kernelList string
	fs.StringVar(&cfg.set, "set", "ci", "kernels to boot: ci (the oldest and the newest) or all")
	fs.StringVar(&kernelList, "kernels", "", "comma-separated kernels to boot instead of -set's: bullseye, bookworm, trixie, newest, or a Debian suite")
	fs.StringVar(&cfg.rewind, "rewind", "", "static rewind binary to test (default: build ./cmd/rewind)")
	fs.StringVar(&cfg.cache, "cache", defaultCache(), "folder for package lists and downloaded kernels")
	fs.DurationVar(&cfg.timeout, "timeout", 12*time.Minute, "bound on each boot")
	fs.IntVar(&cfg.jobs, "jobs", 2, "boots in parallel (each takes one CPU under TCG)")
	fs.StringVar(&cfg.accel, "accel", "auto", "auto, tcg or kvm (auto: KVM only where /dev/kvm is not the paravirtualised kvm_pvm)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the work folder (initramfs, consoles, results)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, k := range strings.Split(kernelList, ",") {
		if k = strings.TrimSpace(k); k != "" {
			cfg.kernels = append(cfg.kernels, k)
		}
	}
	if cfg.jobs < 1 {
		return cfg, fmt.Errorf("-jobs %d: want at least 1", cfg.jobs)
	}
	if cfg.timeout < time.Minute {
		return cfg, fmt.Errorf("-timeout %v: want at least 1m (a boot takes about 2 minutes)", cfg.timeout)
	}
	return cfg, nil
}

// defaultCache is $XDG_CACHE_HOME/rewind-kernels, else
// /var/cache/rewind-kernels for root, else the user's cache folder.
func defaultCache() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "rewind-kernels")
	}
	if os.Geteuid() == 0 {
		return "/var/cache/rewind-kernels"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "rewind-kernels")
	}
	return filepath.Join(os.TempDir(), "rewind-kernels")
}

// logf reports progress on standard error.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kernels: "+format+"\n", args...)
}

// run prepares the binaries and the initramfs, runs every kernel, and
// prints the table. It reports whether every kernel passed; an error is
// something that stopped the whole matrix.
func run(ctx context.Context, cfg config) (pass bool, err error) {
	ks, err := selectKernels(cfg.set, cfg.kernels)
	if err != nil {
		return false, err
	}
	exp, err := parseExpected(expectedTable)
	if err != nil {
		return false, err
	}
	accel, err := chooseAccel(cfg.accel)
	if err != nil {
		return false, err
	}
	root, err := repoRoot()
	if err != nil {
		return false, err
	}
	if err := ensureTools(ctx, root); err != nil {
		return false, err
	}
	work, err := os.MkdirTemp("", "rewind-kernels-")
	if err != nil {
		return false, err
	}
	if cfg.keep {
		logf("work folder %s (kept)", work)
	} else {
		defer os.RemoveAll(work)
	}
	initramfs, err := prepareInitramfs(ctx, root, work, cfg.rewind)
	if err != nil {
		return false, err
	}
	logf("%d kernels, %d at a time, accel %s, timeout %v per boot, cache %s", len(ks), cfg.jobs, accel, cfg.timeout, cfg.cache)
	m := &matrix{cache: cfg.cache, work: work, initramfs: initramfs, accel: accel, timeout: cfg.timeout, exp: exp}
	outcomes := m.runAll(ctx, ks, cfg.jobs)
	if ctx.Err() != nil {
		return false, errors.New("interrupted: qemu stopped, nothing reported")
	}
	if err := printTable(os.Stdout, outcomes); err != nil {
		return false, err
	}
	printDetails(os.Stdout, outcomes, cfg.keep)
	pass = true
	for _, o := range outcomes {
		pass = pass && len(o.failures) == 0
	}
	return pass, nil
}

// prepareInitramfs builds the guest (and rewind, without -rewind) as static
// binaries and writes the initramfs every kernel boots.
func prepareInitramfs(ctx context.Context, root, work, rewind string) (string, error) {
	bin := binaries{busybox: busyboxPath, rewind: rewind, guest: filepath.Join(work, "guest")}
	if bin.rewind == "" {
		bin.rewind = filepath.Join(work, "rewind")
		logf("building ./cmd/rewind")
		if err := buildStatic(ctx, root, "./cmd/rewind", bin.rewind); err != nil {
			return "", err
		}
	} else if err := checkStatic(bin.rewind); err != nil {
		return "", fmt.Errorf("-rewind: %w", err)
	}
	if err := buildStatic(ctx, root, "./test/kernels/guest", bin.guest); err != nil {
		return "", err
	}
	path := filepath.Join(work, "initramfs.cpio")
	return path, writeInitramfs(path, bin, getppidCalls)
}
