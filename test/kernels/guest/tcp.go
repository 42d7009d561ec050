package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rewindtrace/rewind/test/kernels/result"
)

// tcp provokes, on loopback while record records, a retransmission and a
// reset, and keeps the kernel's own count of each (/proc/net/snmp:
// RetransSegs, OutRsts) for the host to compare with the events recorded
// (tcp_retransmit_skb, tcp_send_reset), the two whose arguments differ
// between kernel versions.
//
// The retransmission is a SYN's: a listener with a backlog of 0 keeps one
// connection it never accepts, so the kernel drops the next connection's
// SYN and retransmits it after its initial timeout of a second. The reset
// is the one close sends for the first connection with SO_LINGER 0.
func (g *guest) tcp(ctx context.Context) error {
	if out, err := exec.CommandContext(ctx, "/bin/busybox", "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	before, err := readTCPCounters()
	if err != nil {
		return err
	}
	ln, port, err := listenBacklog0()
	if err != nil {
		return err
	}
	defer unix.Close(ln)
	queued, err := connectLoopback(port)
	if err != nil {
		return fmt.Errorf("first connection: %w", err)
	}
	defer func() {
		if queued >= 0 {
			unix.Close(queued)
		}
	}()
	if err := waitConnected(ctx, queued); err != nil {
		return fmt.Errorf("first connection: %w", err)
	}
	dropped, err := connectLoopback(port)
	if err != nil {
		return fmt.Errorf("second connection: %w", err)
	}
	// Wait for the kernel to count the SYN's retransmission (the timeout
	// doubles from 1 s, so a slow guest sees it within seconds).
	var mid tcpCounters
	for {
		if mid, err = readTCPCounters(); err != nil {
			unix.Close(dropped)
			return err
		}
		if mid.retransSegs > before.retransSegs {
			break
		}
		select {
		case <-ctx.Done():
			unix.Close(dropped)
			return fmt.Errorf("could not provoke a retransmission: the kernel counted none: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	unix.Close(dropped) // in SYN_SENT: closing sends nothing
	if err := unix.SetsockoptLinger(queued, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		return fmt.Errorf("SO_LINGER: %w", err)
	}
	if err := unix.Close(queued); err != nil {
		return fmt.Errorf("close with SO_LINGER 0: %w", err)
	}
	queued = -1
	after, err := readTCPCounters()
	if err != nil {
		return err
	}
	g.res.TCP = &result.TCP{Retransmits: after.retransSegs - before.retransSegs, Resets: after.outRsts - before.outRsts}
	if g.res.TCP.Resets == 0 {
		return errors.New("could not provoke a reset: the kernel counted none")
	}
	return nil
}

// listenBacklog0 listens on a loopback port of the kernel's choosing with
// a backlog of 0: one connection waits to be accepted, the next SYN is
// dropped.
func listenBacklog0() (fd, port int, err error) {
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("bind 127.0.0.1: %w", err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("getsockname: %w", err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port, nil
}

// connectLoopback starts a non-blocking connection to 127.0.0.1:port.
func connectLoopback(port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		unix.Close(fd)
		return -1, fmt.Errorf("connect 127.0.0.1:%d: %w", port, err)
	}
	return fd, nil
}

// waitConnected waits until a non-blocking connect completes.
func waitConnected(ctx context.Context, fd int) error {
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("poll: %w", err)
		}
		if n > 0 {
			soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err != nil {
				return fmt.Errorf("SO_ERROR: %w", err)
			}
			if soErr != 0 {
				return fmt.Errorf("connect: %w", syscall.Errno(soErr))
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("connect did not complete: %w", ctx.Err())
		}
	}
}

// tcpCounters are the kernel's counts of TCP segments retransmitted and
// resets sent.
type tcpCounters struct {
	retransSegs, outRsts uint64
}

// readTCPCounters reads RetransSegs and OutRsts from /proc/net/snmp, whose
// "Tcp:" lines are a header of names and a line of values.
func readTCPCounters() (tcpCounters, error) {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return tcpCounters{}, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		var c tcpCounters
		found := 0
		for i := 1; i < len(fields) && i < len(names); i++ {
			var dst *uint64
			switch names[i] {
			case "RetransSegs":
				dst = &c.retransSegs
			case "OutRsts":
				dst = &c.outRsts
			default:
				continue
			}
			v, err := strconv.ParseUint(fields[i], 10, 64)
			if err != nil {
				return tcpCounters{}, fmt.Errorf("/proc/net/snmp Tcp %s: %w", names[i], err)
			}
			*dst = v
			found++
		}
		if found != 2 {
			return tcpCounters{}, errors.New("/proc/net/snmp has no Tcp RetransSegs and OutRsts")
		}
		return c, nil
	}
	if err := sc.Err(); err != nil {
		return tcpCounters{}, err
	}
	return tcpCounters{}, errors.New("/proc/net/snmp has no Tcp lines")
}
