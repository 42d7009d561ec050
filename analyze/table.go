package analyze

// table maps thread or process ids to values, in pages of 4096 allocated
// when first touched: as fast as a slice indexed by id, without one the
// size of pid_max.
type table[T any] struct {
	pages [][]T
	used  []uint32 // ids set since the last reset, to clear them
	zero  T
}

const pageBits = 12

// at returns the value for id, creating its page.
func (t *table[T]) at(id uint32) *T {
	p := int(id >> pageBits)
	for len(t.pages) <= p {
		t.pages = append(t.pages, nil)
	}
	if t.pages[p] == nil {
		t.pages[p] = make([]T, 1<<pageBits)
	}
	return &t.pages[p][id&(1<<pageBits-1)]
}

// get returns the value for id without creating anything.
func (t *table[T]) get(id uint32) (T, bool) {
	p := int(id >> pageBits)
	if p >= len(t.pages) || t.pages[p] == nil {
		return t.zero, false
	}
	return t.pages[p][id&(1<<pageBits-1)], true
}

// set stores v for id and remembers id for reset.
func (t *table[T]) set(id uint32, v T) {
	*t.at(id) = v
	t.used = append(t.used, id)
}

// reset clears the ids set since the last reset.
func (t *table[T]) reset() {
	for _, id := range t.used {
		*t.at(id) = t.zero
	}
	t.used = t.used[:0]
}
