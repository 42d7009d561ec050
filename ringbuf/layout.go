package ringbuf

// The slot layout mirrors struct rw_slot, struct rw_hdr and struct rw_head
// in bpf/include/ring.h; bpf/layout_test.go checks it against the compiled
// object's BTF.
const (
	SlotSize    = 64 // bytes per slot
	HeaderSize  = 24 // struct rw_hdr
	PayloadSize = 40 // payload bytes per slot (RW_MAX_PAYLOAD)
	MaxSlots    = 32 // slots one record may span (RW_MAX_SLOTS)
	HeadSize    = 64 // struct rw_head, one per CPU

	OffTS     = 0  // u64 CLOCK_BOOTTIME ns
	OffSeq    = 8  // u32 low bits of the per-CPU sequence, written last
	OffType   = 12 // u16 event id, TypeCont for a continuation slot
	OffNSlots = 14 // u8 slots the record spans
	OffFlags  = 15 // u8
	OffTID    = 16 // u32
	OffPID    = 20 // u32
	OffData   = 24 // payload

	OffHead = 0 // u64 next sequence number to reserve
	OffLost = 8 // u64 records the CPU could not write

	// SeqBusy marks a slot that is being written (RW_SEQ_BUSY).
	SeqBusy = 0xffffffff
	// TypeCont is the event id of a continuation slot (RW_EV_CONT).
	TypeCont = 0
)
