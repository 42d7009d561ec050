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

// TestFilterKeyLayout checks the Go mirror of struct rw_filter_key and enum
// rw_filter_kind against the compiled object's BTF.
func TestFilterKeyLayout(t *testing.T) {
	spec, err := loadRewind()
	if err != nil {
		t.Fatal(err)
	}
	var st *btf.Struct
	if err := spec.Types.TypeByName("rw_filter_key", &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Size) != len(filterKey{}) {
		t.Errorf("rw_filter_key: object says %d bytes, Go says %d", st.Size, len(filterKey{}))
	}
	off := map[string]uint32{}
	for _, m := range st.Members {
		off[m.Name] = uint32(m.Offset / 8)
	}
	// kind first; the id or name (an anonymous union) at byte 8.
	if k, ok := off["kind"]; !ok || k != 0 {
		t.Errorf("rw_filter_key.kind at %d (present %v), Go writes it at 0", k, ok)
	}
	if u, ok := off[""]; !ok || u != 8 {
		t.Errorf("rw_filter_key's union at %d (present %v), Go writes it at 8", u, ok)
	}
	var kinds *btf.Enum
	if err := spec.Types.TypeByName("rw_filter_kind", &kinds); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"RW_FK_FLAGS": filterKindFlags, "RW_FK_ID": filterKindID, "RW_FK_COMM": filterKindComm, "RW_FK_CGROUP": filterKindCgroup}
	for _, v := range kinds.Values {
		if w, ok := want[v.Name]; !ok || w != v.Value {
			t.Errorf("%s = %d in the object, Go says %d (known %v)", v.Name, v.Value, w, ok)
		}
		delete(want, v.Name)
	}
	if len(want) > 0 {
		t.Errorf("not in the object: %v", want)
	}
}
