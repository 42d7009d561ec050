package snapshot

import (
	"container/heap"
	"errors"
	"sort"
)

// Each calls fn for every event of the intact chunks in timestamp order
// across CPUs, decoding one chunk per CPU at a time. Chunks whose time range
// misses [from, to] are not read. Damaged chunks are skipped and reported
// by Damage. fn gets the decoded chunk and the event's index in it; both
// are only valid during the call. An error from fn stops the walk.
func (r *Reader) Each(from, to uint64, fn func(c *Chunk, i int) error) error {
	perCPU := map[int][]Section{}
	for _, s := range r.chunks {
		if s.LastTS < from || s.FirstTS > to {
			continue
		}
		perCPU[s.CPU] = append(perCPU[s.CPU], s)
	}
	var h cursorHeap
	for cpu, secs := range perCPU {
		sort.SliceStable(secs, func(i, j int) bool { return secs[i].FirstTS < secs[j].FirstTS })
		c := &cursor{cpu: cpu, secs: secs}
		ok, err := c.advance(r)
		if err != nil {
			return err
		}
		if ok {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		c := h[0]
		if ts := c.chunk.TS[c.i]; ts >= from && ts <= to {
			if err := fn(&c.chunk, c.i); err != nil {
				return err
			}
		}
		c.i++
		if c.i >= c.chunk.Len() {
			ok, err := c.advance(r)
			if err != nil {
				return err
			}
			if !ok {
				heap.Pop(&h)
				continue
			}
		}
		heap.Fix(&h, 0)
	}
	return nil
}

// cursor walks one CPU's chunks.
type cursor struct {
	cpu   int
	secs  []Section
	chunk Chunk
	i     int
}

// advance decodes the next intact chunk; it returns false at the end.
func (c *cursor) advance(r *Reader) (bool, error) {
	for len(c.secs) > 0 {
		s := c.secs[0]
		c.secs = c.secs[1:]
		if err := r.ReadChunk(s, &c.chunk); err != nil {
			var ce *CorruptionError
			if errors.As(err, &ce) {
				continue
			}
			return false, err
		}
		c.i = 0
		return true, nil
	}
	return false, nil
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i].chunk.TS[h[i].i], h[j].chunk.TS[h[j].i]
	if a != b {
		return a < b
	}
	return h[i].cpu < h[j].cpu
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
