// Package formats groups rewind's ways of presenting a snapshot, one
// sub-package each: view (events as text or JSON lines) now; Perfetto, CTF,
// pprof and OpenMetrics exporters as they land.
package formats
