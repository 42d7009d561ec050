package ringbuf

import (
	"fmt"
	"sync"

	"github.com/rewindtrace/rewind/snapshot"
)

// Tier is the compressed history tier: for each CPU, a run of compressed
// blocks drained from the kernel tier, oldest first. A block is a snapshot
// chunk, encoded once when drained and written to snapshots as it is.
//
// When the blocks exceed the byte budget, or the oldest is older than the
// age limit, the oldest block of any CPU is dropped first; each CPU's run
// stays contiguous in sequence numbers. A Tier is safe for concurrent use.
type Tier struct {
	mu       sync.Mutex
	cpus     []tierCPU
	bytes    uint64
	maxBytes uint64 // 0: no budget
	maxAge   uint64 // ns; 0: no limit
	evicted  TierCounts
}

// Block is one compressed run of a CPU's records: an encoded chunk.
type Block struct {
	Payload []byte
	Sum     snapshot.ChunkSummary
}

type tierCPU struct {
	blocks []Block
	// next is one past the newest block's last sequence number: where the
	// tier's history of the CPU ends.
	next uint64
}

// TierCounts counts events and the bytes of blocks that hold them.
type TierCounts struct {
	Blocks int    `json:"blocks"`
	Events uint64 `json:"events"`
	Bytes  uint64 `json:"bytes"`
}

// NewTier returns an empty tier for cpus CPUs keeping at most maxBytes of
// blocks (0: no budget) no older than maxAge ns (0: no limit).
func NewTier(cpus int, maxBytes, maxAge uint64) (*Tier, error) {
	if maxBytes == 0 && maxAge == 0 {
		return nil, fmt.Errorf("history tier: give it a memory budget, an age limit or both")
	}
	return &Tier{cpus: make([]tierCPU, cpus), maxBytes: maxBytes, maxAge: maxAge}, nil
}

// Add appends a CPU's block, whose records span sequence numbers up to
// next, then drops the oldest blocks beyond the budget or the age limit,
// now being the current time in the blocks' clock.
func (t *Tier) Add(cpu int, b Block, next, now uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := &t.cpus[cpu]
	c.blocks = append(c.blocks, b)
	c.next = next
	t.bytes += uint64(len(b.Payload))
	for {
		oldest := -1
		for i := range t.cpus {
			if len(t.cpus[i].blocks) > 0 && (oldest < 0 || t.cpus[i].blocks[0].Sum.LastTS < t.cpus[oldest].blocks[0].Sum.LastTS) {
				oldest = i
			}
		}
		if oldest < 0 {
			return
		}
		o := t.cpus[oldest].blocks[0]
		overBudget := t.maxBytes > 0 && t.bytes > t.maxBytes
		tooOld := t.maxAge > 0 && o.Sum.LastTS+t.maxAge < now
		if !overBudget && !tooOld {
			return
		}
		t.cpus[oldest].blocks[0] = Block{}
		t.cpus[oldest].blocks = t.cpus[oldest].blocks[1:]
		t.bytes -= uint64(len(o.Payload))
		t.evicted.Blocks++
		t.evicted.Events += uint64(o.Sum.Events)
		t.evicted.Bytes += uint64(len(o.Payload))
	}
}

// Blocks returns a CPU's blocks, oldest first, and where they end.
func (t *Tier) Blocks(cpu int) ([]Block, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.cpus[cpu]
	return append([]Block(nil), c.blocks...), c.next
}

// Held counts what the tier holds now; Evicted what it has dropped.
func (t *Tier) Held() TierCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	var h TierCounts
	for _, c := range t.cpus {
		h.Blocks += len(c.blocks)
		for _, b := range c.blocks {
			h.Events += uint64(b.Sum.Events)
		}
	}
	h.Bytes = t.bytes
	return h
}

// Evicted counts the blocks dropped so far, oldest first, to keep within
// the budget and age limit.
func (t *Tier) Evicted() TierCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.evicted
}

// Span returns the oldest and newest timestamps a CPU's blocks hold, or
// zeros when it has none.
func (t *Tier) Span(cpu int) (first, last uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.cpus[cpu]
	if len(c.blocks) == 0 {
		return 0, 0
	}
	return c.blocks[0].Sum.FirstTS, c.blocks[len(c.blocks)-1].Sum.LastTS
}
