package snapshot

// Report is what writing a snapshot produced and cost: a line of `rewind
// record --json` and the daemon's replies (docs/JSON.md).
type Report struct {
	Path     string  `json:"path,omitempty"` // empty for a stream
	Bytes    int64   `json:"bytes"`
	Events   uint64  `json:"events"`
	Lost     uint64  `json:"lost"`
	Samples  uint64  `json:"counter_samples"`
	Trigger  Trigger `json:"trigger"`
	ReadMS   float64 `json:"read_ms"`   // copying the rings
	EncodeMS float64 `json:"encode_ms"` // from there to the last section written
	CommitMS float64 `json:"commit_ms"` // fsync and rename
	TotalMS  float64 `json:"total_ms"`  // from the trigger to the file in place
}
