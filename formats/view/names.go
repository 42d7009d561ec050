package view

import (
	"net/netip"
	"strconv"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
)

// softirqNames index <linux/interrupt.h>'s softirq vectors.
var softirqNames = []string{"HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU"}

// tcpStates index <net/tcp_states.h>.
var tcpStates = []string{"", "TCP_ESTABLISHED", "TCP_SYN_SENT", "TCP_SYN_RECV", "TCP_FIN_WAIT1", "TCP_FIN_WAIT2",
	"TCP_TIME_WAIT", "TCP_CLOSE", "TCP_CLOSE_WAIT", "TCP_LAST_ACK", "TCP_LISTEN", "TCP_CLOSING", "TCP_NEW_SYN_RECV", "TCP_BOUND_INACTIVE"}

// blkStatus index the BLK_STS_* codes of <linux/blk_types.h>.
var blkStatus = []string{"OK", "NOTSUPP", "TIMEOUT", "NOSPC", "TRANSPORT", "TARGET", "RESV_CONFLICT", "MEDIUM",
	"PROTECTION", "RESOURCE", "IOERR", "DM_REQUEUE", "AGAIN", "DEV_RESOURCE", "ZONE_OPEN_RESOURCE",
	"ZONE_ACTIVE_RESOURCE", "OFFLINE", "DURATION_LIMIT"}

const (
	afInet  = 2
	afInet6 = 10
)

func indexName(names []string, v uint64) string {
	if v < uint64(len(names)) {
		return names[v]
	}
	return ""
}

// DerivedName is what a field's kind says its value means: a syscall,
// errno, task state, signal, device, ... name, or "" for none.
func DerivedName(m *snapshot.Meta, f schema.Field, v uint64) string {
	switch f.Kind {
	case schema.KindSyscall:
		return syscallName(m, v)
	case schema.KindTaskState:
		return TaskState(v)
	case schema.KindErrnoRet:
		if int64(v) < 0 {
			return sysx.ErrnoName(int(-int64(v)))
		}
	case schema.KindDev:
		return strconv.FormatUint(v>>20, 10) + ":" + strconv.FormatUint(v&0xfffff, 10)
	case schema.KindBlkStatus:
		return indexName(blkStatus, v)
	case schema.KindSoftirq:
		return indexName(softirqNames, v)
	case schema.KindSignal:
		return sysx.SignalName(int(int64(v)))
	case schema.KindFamily:
		switch v {
		case afInet:
			return "AF_INET"
		case afInet6:
			return "AF_INET6"
		}
	case schema.KindTCPState:
		return indexName(tcpStates, v)
	default:
		if len(f.Kind) > len(schema.KindEnumPrefix) && f.Kind[:len(schema.KindEnumPrefix)] == schema.KindEnumPrefix {
			return m.EnumName(f.Kind[len(schema.KindEnumPrefix):], int64(v))
		}
	}
	return ""
}

// derivedKey is the JSON key of a field's derived name.
func derivedKey(f schema.Field) string {
	switch f.Kind {
	case schema.KindSyscall:
		return "syscall"
	case schema.KindErrnoRet:
		return "errno"
	}
	return f.Name + "_str"
}

// inetAddr renders 16 address bytes for the family.
func inetAddr(b []byte, family uint64) string {
	switch {
	case family == afInet && len(b) >= 4:
		return netip.AddrFrom4([4]byte(b[:4])).String()
	case family == afInet6 && len(b) >= 16:
		return netip.AddrFrom16([16]byte(b[:16])).String()
	}
	return ""
}
