package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// File types and permission bits of a cpio entry's mode, as in <sys/stat.h>.
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
	modeType    = 0o170000
)

// cpioWriter writes the "newc" cpio format the kernel unpacks an initramfs
// from (Documentation/driver-api/early-userspace/buffer-format.rst): per
// entry a 110-byte ASCII header, the NUL-terminated name and the data, each
// padded to 4 bytes; a "TRAILER!!!" entry ends the archive. Every entry is
// owned by root with mtime 0, so the same inputs give the same bytes. The
// first error sticks and is returned by every later call. It is not safe
// for concurrent use.
type cpioWriter struct {
	w   io.Writer
	off int64
	ino uint32
	err error
}

// dir adds a directory.
func (c *cpioWriter) dir(name string, perm uint32) error {
	return c.entry(name, modeDir|perm, 0, 0, nil, 0)
}

// symlink adds a symbolic link to target.
func (c *cpioWriter) symlink(name, target string) error {
	return c.entry(name, modeSymlink|0o777, 0, 0, strings.NewReader(target), int64(len(target)))
}

// charDev adds a character device node.
func (c *cpioWriter) charDev(name string, perm, major, minor uint32) error {
	return c.entry(name, modeCharDev|perm, major, minor, nil, 0)
}

// bytesFile adds a regular file holding data.
func (c *cpioWriter) bytesFile(name string, perm uint32, data string) error {
	return c.entry(name, modeFile|perm, 0, 0, strings.NewReader(data), int64(len(data)))
}

// copyFile adds the regular file at path as name.
func (c *cpioWriter) copyFile(name string, perm uint32, path string) error {
	if c.err != nil {
		return c.err
	}
	f, err := os.Open(path)
	if err != nil {
		c.err = err
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		c.err = err
		return err
	}
	return c.entry(name, modeFile|perm, 0, 0, f, st.Size())
}

// close writes the trailer.
func (c *cpioWriter) close() error {
	return c.entry("TRAILER!!!", 0, 0, 0, nil, 0)
}

// entry writes one header, name and body.
func (c *cpioWriter) entry(name string, mode, rdevMajor, rdevMinor uint32, body io.Reader, size int64) error {
	if c.err != nil {
		return c.err
	}
	if size > 0xFFFFFFFF {
		c.err = fmt.Errorf("cpio entry %s: %d bytes is more than newc holds", name, size)
		return c.err
	}
	nlink := uint32(1)
	if mode&modeType == modeDir {
		nlink = 2
	}
	c.ino++
	// ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
	c.write(fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0))
	c.write(name + "\x00")
	c.pad()
	if body != nil && c.err == nil {
		n, err := io.Copy(c.w, io.LimitReader(body, size))
		c.off += n
		if err == nil && n != size {
			err = fmt.Errorf("%d of %d bytes", n, size)
		}
		if err != nil {
			c.err = fmt.Errorf("cpio entry %s: %w", name, err)
		}
		c.pad()
	}
	return c.err
}

// pad writes NULs up to the next multiple of 4 bytes.
func (c *cpioWriter) pad() {
	if n := c.off % 4; n != 0 {
		c.write("\x00\x00\x00"[:4-n])
	}
}

func (c *cpioWriter) write(s string) {
	if c.err != nil {
		return
	}
	n, err := io.WriteString(c.w, s)
	c.off += int64(n)
	c.err = err
}
