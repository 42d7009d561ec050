// Package report prints analysis results: as text (log2 bar charts like
// BCC's tools, percentile tables, per-process summaries), as JSON
// (docs/JSON.md), and side by side for two snapshots (diff).
package report
