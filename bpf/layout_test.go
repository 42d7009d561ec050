package bpf

import (
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/rewindtrace/rewind/ringbuf"
)

// TestSlotLayout checks ringbuf's hand-written mirror of the slot layout
// against the compiled object's BTF.
func TestSlotLayout(t *testing.T) {
	spec, err := loadRewind()
	if err != nil {
		t.Fatal(err)
	}
	offsets := func(name string) (map[string]int, int) {
		var st *btf.Struct
		if err := spec.Types.TypeByName(name, &st); err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, mem := range st.Members {
			m[mem.Name] = int(mem.Offset / 8)
		}
		return m, int(st.Size)
	}
	hdr, hdrSize := offsets("rw_hdr")
	slot, slotSize := offsets("rw_slot")
	head, headSize := offsets("rw_head")
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"rw_slot size", slotSize, ringbuf.SlotSize},
		{"rw_slot size (bpf)", slotSize, SlotSize},
		{"rw_hdr size", hdrSize, ringbuf.HeaderSize},
		{"rw_slot.data", slot["data"], ringbuf.OffData},
		{"payload size", slotSize - slot["data"], ringbuf.PayloadSize},
		{"rw_hdr.ts", hdr["ts"], ringbuf.OffTS},
		{"rw_hdr.seq", hdr["seq"], ringbuf.OffSeq},
		{"rw_hdr.type", hdr["type"], ringbuf.OffType},
		{"rw_hdr.nslots", hdr["nslots"], ringbuf.OffNSlots},
		{"rw_hdr.flags", hdr["flags"], ringbuf.OffFlags},
		{"rw_hdr.tid", hdr["tid"], ringbuf.OffTID},
		{"rw_hdr.pid", hdr["pid"], ringbuf.OffPID},
		{"rw_head size", headSize, ringbuf.HeadSize},
		{"rw_head size (bpf)", headSize, HeadSize},
		{"rw_head.head", head["head"], ringbuf.OffHead},
		{"rw_head.lost", head["lost"], ringbuf.OffLost},
	} {
		if c.got != c.want {
			t.Errorf("%s: object says %d, Go says %d", c.name, c.got, c.want)
		}
	}
	var ids *btf.Enum
	if err := spec.Types.TypeByName("rw_event_type", &ids); err != nil {
		t.Fatal(err)
	}
	for _, v := range ids.Values {
		if v.Name == "RW_EV_CONT" && v.Value != ringbuf.TypeCont {
			t.Errorf("RW_EV_CONT = %d, ringbuf.TypeCont = %d", v.Value, ringbuf.TypeCont)
		}
	}
	// Every event's payload fits the slots a record may span.
	events, err := Catalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Size > ringbuf.MaxSlots*ringbuf.PayloadSize {
			t.Errorf("%s: %d bytes exceed %d slots", e.Name, e.Size, ringbuf.MaxSlots)
		}
	}
}
