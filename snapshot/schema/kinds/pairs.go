package kinds

// Scope is where an end event finds its begin.
type Scope uint8

const (
	// PerTask: on the same thread, the records' tid (a syscall, a wait
	// for a lock, a work item on its kworker, direct reclaim).
	PerTask Scope = iota + 1
	// PerCPU: on the same CPU, which nothing else runs on in between but
	// other interrupts, nested (hard and soft interrupts).
	PerCPU
	// Anywhere: on any CPU, from any task; the Match fields alone pair
	// them (a block request issued on one CPU completes on another).
	Anywhere
)

// Pair is an event that begins something and the event that ends it.
type Pair struct {
	Begin, End string
	Scope      Scope
	// Match are fields both events carry, with equal values in an end and
	// its begin: an end closes the last begin in its scope that matches.
	Match []string
}

// Pairs are the begin/end event pairs. The slice must not be modified.
var Pairs = []Pair{
	{SysEnter, SysExit, PerTask, []string{FieldID}},
	{IRQHandlerEntry, IRQHandlerExit, PerCPU, []string{FieldIRQ}},
	{SoftirqEntry, SoftirqExit, PerCPU, []string{FieldVec}},
	// The request's address is unique while it is in flight.
	{BlockRqIssue, BlockRqComplete, Anywhere, []string{FieldRQ, FieldDev}},
	{MMVmscanDirectReclaimBegin, MMVmscanDirectReclaimEnd, PerTask, nil},
	{ContentionBegin, ContentionEnd, PerTask, []string{FieldLock}},
	{WorkqueueExecuteStart, WorkqueueExecuteEnd, PerTask, []string{FieldWork}},
}

// PairOf returns the pair the named event begins or ends, or nil.
func PairOf(event string) *Pair {
	for i := range Pairs {
		if Pairs[i].Begin == event || Pairs[i].End == event {
			return &Pairs[i]
		}
	}
	return nil
}
