package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Where Debian's packages come from, and the keyring that signs the
// suites. Debian's own keyring package ships the keys of the releases it
// still supports (bookworm's has bullseye's, bookworm's and trixie's).
const (
	debianArchive   = "http://deb.debian.org/debian"
	securityArchive = "http://deb.debian.org/debian-security"
	debianKeyring   = "/usr/share/keyrings/debian-archive-keyring.gpg"
	// metaPackage depends on the newest versioned cloud kernel image. Cloud
	// kernels build in what an initramfs-only boot needs (serial console,
	// devtmpfs, BTF, tracefs), so they need no modules.
	metaPackage = "linux-image-cloud-amd64"
)

// aptRoot is a private apt configuration for one set of suites: its own
// sources list, preferences, package lists, archive cache and an empty
// dpkg status, all under dir, so that apt-get never reads or changes the
// machine's apt state. apt reads the file APT_CONFIG names before any
// other, and that file points every other configuration path into dir.
type aptRoot struct {
	dir    string
	suites []string
}

// aptConf is the private configuration. The registry these machines reach
// serves frozen copies of the archive whose Valid-Until has passed, hence
// Check-Valid-Until; signatures are still checked. Downloads run as root
// when apt-get does, into folders apt's _apt user cannot write. Lists stay
// compressed and only the binary cache apt-cache reads is kept (sid's
// lists alone unpack to 60 MB).
const aptConf = `Dir::Etc "%[1]s/etc";
Dir::Etc::main "/dev/null";
Dir::Etc::parts "apt.conf.d";
Dir::Etc::sourcelist "sources.list";
Dir::Etc::sourceparts "sources.list.d";
Dir::Etc::preferences "preferences";
Dir::Etc::preferencesparts "preferences.d";
Dir::Etc::trusted "trusted.gpg";
Dir::Etc::trustedparts "trusted.gpg.d";
Dir::State "%[1]s/state";
Dir::State::lists "lists";
Dir::State::status "%[1]s/state/status";
Dir::Cache "%[1]s/cache";
Dir::Cache::srcpkgcache "";
Dir::Log "%[1]s/log";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::Check-Valid-Until "false";
`

// preferences gives every suite of the mirror the same priority, so that
// the newest version wins even from a backports suite (which apt otherwise
// ranks below the others; its Origin is "Debian Backports", hence a pin on
// the host rather than the origin).
const preferences = `Package: *
Pin: origin "deb.debian.org"
Pin-Priority: 500
`

// newAptRoot writes the private configuration for suites under dir.
func newAptRoot(dir string, suites []string) (*aptRoot, error) {
	for _, d := range []string{"etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d", "etc/trusted.gpg.d",
		"state/lists/partial", "cache/archives/partial", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	var sources strings.Builder
	for _, s := range suites {
		archive := debianArchive
		if strings.HasSuffix(s, "-security") {
			archive = securityArchive
		}
		fmt.Fprintf(&sources, "deb [signed-by=%s] %s %s main\n", debianKeyring, archive, s)
	}
	files := map[string]string{
		"apt.conf":         fmt.Sprintf(aptConf, dir),
		"etc/sources.list": sources.String(),
		"etc/preferences":  preferences,
		"state/status":     "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	return &aptRoot{dir: dir, suites: suites}, nil
}

// run runs an apt tool under the private configuration in dir (the
// working directory, where apt-get download puts what it fetches).
func (a *aptRoot) run(ctx context.Context, workDir, tool string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Dir = workDir
	cmd.Env = append(os.Environ(), "APT_CONFIG="+filepath.Join(a.dir, "apt.conf"), "LC_ALL=C")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("APT_CONFIG=%s %s %s: %w: %s", filepath.Join(a.dir, "apt.conf"), tool,
			strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// update refreshes the package lists; apt asks only for what changed. A
// failed refresh with lists from an earlier run is a warning, so that a
// cached kernel boots offline.
func (a *aptRoot) update(ctx context.Context) (warning string, err error) {
	_, err = a.run(ctx, a.dir, "apt-get", "-q", "update")
	if err == nil {
		return "", nil
	}
	lists, _ := filepath.Glob(filepath.Join(a.dir, "state/lists/*_Packages*"))
	if len(lists) > 0 && ctx.Err() == nil {
		return fmt.Sprintf("using the package lists of an earlier run: %v", err), nil
	}
	return "", err
}

// pkgVersion is a package at a version, from a suite.
type pkgVersion struct {
	name, version, suite string
}

// candidate is the version of pkg that apt would take (with the
// preferences above, the newest), and the suite it comes from.
func (a *aptRoot) candidate(ctx context.Context, pkg string) (pkgVersion, error) {
	out, err := a.run(ctx, a.dir, "apt-cache", "policy", pkg)
	if err != nil {
		return pkgVersion{}, err
	}
	p, err := parsePolicy(out)
	if err != nil {
		return pkgVersion{}, fmt.Errorf("apt-cache policy %s in %s: %w", pkg, strings.Join(a.suites, ","), err)
	}
	p.name = pkg
	return p, nil
}

// parsePolicy finds the candidate and its suite in apt-cache policy's
// output:
//
//	linux-image-cloud-amd64:
//	  Candidate: 7.3.4-1~bpo13+1
//	  Version table:
//	     7.3.4-1~bpo13+1 500
//	        500 http://deb.debian.org/debian trixie-backports/main amd64 Packages
func parsePolicy(out []byte) (pkgVersion, error) {
	var p pkgVersion
	sc := bufio.NewScanner(bytes.NewReader(out))
	inCandidate := false
	for sc.Scan() {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "*** "))
		switch {
		case len(f) == 2 && f[0] == "Candidate:":
			if f[1] == "(none)" {
				return p, errors.New("no candidate: the package is in none of the suites")
			}
			p.version = f[1]
		case len(f) == 2 && p.version != "":
			inCandidate = f[0] == p.version
		case len(f) >= 3 && inCandidate && p.suite == "" && strings.Contains(f[1], "://"):
			p.suite, _, _ = strings.Cut(f[2], "/")
		}
	}
	if p.version == "" || p.suite == "" {
		return p, fmt.Errorf("no candidate version and suite in %q", out)
	}
	return p, nil
}

// depends lists the packages pkg's candidate depends on whose names start
// with prefix (the first of each set of alternatives).
func (a *aptRoot) depends(ctx context.Context, pkg, prefix string) ([]string, error) {
	out, err := a.run(ctx, a.dir, "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return nil, err
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		deps, ok := strings.CutPrefix(sc.Text(), "Depends: ")
		if !ok {
			continue
		}
		for _, d := range strings.Split(deps, ",") {
			first, _, _ := strings.Cut(d, "|")
			name := strings.Fields(first)[0]
			if strings.HasPrefix(name, prefix) {
				names = append(names, name)
			}
		}
	}
	return names, nil
}

// download fetches pkg's candidate into dir and returns the .deb's path.
func (a *aptRoot) download(ctx context.Context, pkg, dir string) (string, error) {
	if _, err := a.run(ctx, dir, "apt-get", "-q", "download", pkg); err != nil {
		return "", err
	}
	debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d .deb files in %s", pkg, len(debs), dir)
	}
	return debs[0], nil
}
