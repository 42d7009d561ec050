package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// image is a kernel fetched into the cache.
type image struct {
	// pkg is the versioned image package the meta package depends on.
	pkg pkgVersion
	// vmlinuz is the kernel's path in the cache, release its uname -r
	// (from the file name).
	vmlinuz, release string
	// cached is true when nothing had to be downloaded.
	cached bool
	// warning is a problem that did not stop the fetch.
	warning string
}

// fetch resolves k's meta package to the versioned image and returns its
// vmlinuz, from the cache when an earlier run fetched it: the package
// lists live in cache/apt/NAME, the kernels in cache/vmlinuz/PKG_VERSION.
func fetch(ctx context.Context, cache string, k kernel) (*image, error) {
	apt, err := newAptRoot(filepath.Join(cache, "apt", k.name), k.suites)
	if err != nil {
		return nil, fmt.Errorf("write apt configuration: %w", err)
	}
	img := &image{}
	if img.warning, err = apt.update(ctx); err != nil {
		return nil, fmt.Errorf("update package lists of %s: %w", strings.Join(k.suites, ","), err)
	}
	meta, err := apt.candidate(ctx, metaPackage)
	if err != nil {
		return nil, err
	}
	deps, err := apt.depends(ctx, metaPackage, "linux-image-")
	if err != nil {
		return nil, err
	}
	if len(deps) == 0 {
		return nil, fmt.Errorf("%s %s (%s) depends on no linux-image-* package", metaPackage, meta.version, meta.suite)
	}
	if img.pkg, err = apt.candidate(ctx, deps[0]); err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, "vmlinuz", img.pkg.name+"_"+img.pkg.version)
	if img.vmlinuz, img.release, err = findVmlinuz(dir); err == nil {
		img.cached = true
		return img, nil
	}
	if err := downloadVmlinuz(ctx, apt, img.pkg.name, dir); err != nil {
		return nil, err
	}
	img.vmlinuz, img.release, err = findVmlinuz(dir)
	return img, err
}

// downloadVmlinuz downloads the image package and puts its kernel in dir
// as vmlinuz-RELEASE. Some kernels (7.x) keep the kernel in a
// linux-binary-* package the image depends on, as
// /usr/lib/modules/RELEASE/vmlinuz; then that is downloaded too.
func downloadVmlinuz(ctx context.Context, apt *aptRoot, pkg, dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	if err := downloadAndExtract(ctx, apt, pkg, tmp, root); err != nil {
		return err
	}
	if _, _, err := findPackagedKernel(root); err != nil {
		binaries, err := apt.depends(ctx, pkg, "linux-binary-")
		if err != nil {
			return err
		}
		if len(binaries) == 0 {
			return fmt.Errorf("%s has no kernel and depends on no linux-binary-* package", pkg)
		}
		if err := downloadAndExtract(ctx, apt, binaries[0], tmp, root); err != nil {
			return err
		}
	}
	kernel, release, err := findPackagedKernel(root)
	if err != nil {
		return fmt.Errorf("%s: %w", pkg, err)
	}
	out := filepath.Join(tmp, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return err
	}
	if err := os.Rename(kernel, filepath.Join(out, "vmlinuz-"+release)); err != nil {
		return err
	}
	os.RemoveAll(dir) // a partial folder of an interrupted run
	return os.Rename(out, dir)
}

// downloadAndExtract downloads pkg into tmp and unpacks it into root.
func downloadAndExtract(ctx context.Context, apt *aptRoot, pkg, tmp, root string) error {
	deb, err := apt.download(ctx, pkg, tmp)
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %w: %s", filepath.Base(deb), err, strings.TrimSpace(string(out)))
	}
	return os.Remove(deb)
}

// errNoVmlinuz says a folder holds no kernel.
var errNoVmlinuz = errors.New("no kernel (boot/vmlinuz-* or usr/lib/modules/*/vmlinuz)")

// findPackagedKernel finds the kernel an unpacked package tree holds, and
// its release: /boot/vmlinuz-RELEASE, or /usr/lib/modules/RELEASE/vmlinuz.
func findPackagedKernel(root string) (path, release string, err error) {
	if path, release, err := findVmlinuz(filepath.Join(root, "boot")); err == nil {
		return path, release, nil
	}
	found, _ := filepath.Glob(filepath.Join(root, "usr/lib/modules/*/vmlinuz"))
	if len(found) != 1 {
		return "", "", fmt.Errorf("%s: %w", root, errNoVmlinuz)
	}
	return found[0], filepath.Base(filepath.Dir(found[0])), nil
}

// findVmlinuz returns the one vmlinuz-RELEASE file in dir and RELEASE.
func findVmlinuz(dir string) (path, release string, err error) {
	found, _ := filepath.Glob(filepath.Join(dir, "vmlinuz-*"))
	if len(found) != 1 {
		return "", "", fmt.Errorf("%s: %d vmlinuz-* files: %w", dir, len(found), errNoVmlinuz)
	}
	return found[0], strings.TrimPrefix(filepath.Base(found[0]), "vmlinuz-"), nil
}
