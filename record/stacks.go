package record

import (
	"encoding/binary"
	"slices"

	"github.com/rewindtrace/rewind/record/symbols"
	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// stackIDs are the schema ids of the stack sample events being recorded.
func (r *Recorder) stackIDs(events []string) []uint16 {
	var ids []uint16
	for _, name := range []string{kinds.CPUSample, kinds.OffCPUSample} {
		if e := r.schema.ByName(name); e != nil && slices.Contains(events, name) {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// addRaw adds the stack samples among events to refs. A sample's payload
// is struct rw_ev_cpu_sample: kframes u16, uframes u16, 4 bytes of padding,
// then the frames.
func addRaw(refs *symbols.Refs, ids []uint16, events []snapshot.Event, frames []uint64) []uint64 {
	for _, ev := range events {
		if !slices.Contains(ids, ev.Type) || len(ev.Data) < 8 {
			continue
		}
		k, u := int(binary.LittleEndian.Uint16(ev.Data)), int(binary.LittleEndian.Uint16(ev.Data[2:]))
		frames = frames[:0]
		for i := 0; i < k+u && 8+8*i+8 <= len(ev.Data); i++ {
			frames = append(frames, binary.LittleEndian.Uint64(ev.Data[8+8*i:]))
		}
		refs.Add(ev.PID, k, frames)
	}
	return frames
}

// addChunk adds the stack samples of an encoded chunk to refs.
func (r *Recorder) addChunk(refs *symbols.Refs, ids []uint16, payload []byte, c *snapshot.Chunk) error {
	var want snapshot.Want
	for _, id := range ids {
		name := r.schema.ByID(id).Name
		for _, f := range []string{kinds.FieldKframes, kinds.FieldUframes, kinds.FieldFrames} {
			want.Field(r.schema, name, f)
		}
	}
	if err := snapshot.DecodeChunkWant(r.schema, payload, c, &want); err != nil {
		return err
	}
	var frames []uint64
	for i, t := range c.Type {
		if !slices.Contains(ids, t) {
			continue
		}
		e := r.schema.ByID(t)
		row := int(c.Row[i])
		k, u := int(c.Column(t, e.Field(kinds.FieldKframes)).Uint(row)), int(c.Column(t, e.Field(kinds.FieldUframes)).Uint(row))
		col := c.Column(t, e.Field(kinds.FieldFrames))
		frames = frames[:0]
		for j := 0; j < k+u && j < col.Field.Count; j++ {
			frames = append(frames, col.UintAt(row, j))
		}
		refs.Add(c.PID[i], k, frames)
	}
	return nil
}
