package main

import (
	"bufio"
	"fmt"
	"os"
)

// busyboxPath is where busybox-static installs the static busybox.
const busyboxPath = "/bin/busybox"

// initScript is the VM's /init: mount what rewind reads, run the guest,
// power off. It mounts /proc first because busybox --install finds itself
// through /proc/self/exe. A mount that fails is reported and the guest
// runs anyway: what it then cannot do is what the result shows.
const initScript = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "init: kernel $(uname -r), running the guest"
/bin/guest -rewind /bin/rewind -out /dev/ttyS1 -calls %d -dir /tmp/snap
echo "init: guest exited with status $?"
sync
poweroff -f
`

// binaries are the static programs the VM runs.
type binaries struct {
	busybox, rewind, guest string
}

// writeInitramfs writes the VM's root file system as an uncompressed newc
// cpio archive (the kernel copies it faster than it would inflate it under
// emulation): busybox, rewind, the guest and /init.
func writeInitramfs(path string, bin binaries, calls int) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	c := &cpioWriter{w: w}
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "root", "etc"} {
		c.dir(d, 0o755)
	}
	c.charDev("dev/console", 0o600, 5, 1)
	c.copyFile("bin/busybox", 0o755, bin.busybox)
	c.symlink("bin/sh", "busybox")
	c.copyFile("bin/rewind", 0o755, bin.rewind)
	c.copyFile("bin/guest", 0o755, bin.guest)
	c.bytesFile("init", 0o755, fmt.Sprintf(initScript, calls))
	if err := c.close(); err != nil {
		return fmt.Errorf("write initramfs %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write initramfs %s: %w", path, err)
	}
	return nil
}
