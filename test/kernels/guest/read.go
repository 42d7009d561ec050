package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// info reads the snapshot's totals with `rewind info --json`.
func (g *guest) info(ctx context.Context) error {
	out, err := g.runRewind(ctx, "info", "--json", g.pass.Snapshot)
	if err != nil {
		return err
	}
	var info struct {
		EventsTotal uint64            `json:"events_total"`
		LostTotal   uint64            `json:"lost_total"`
		EventCounts map[string]uint64 `json:"event_counts"`
		PerCPU      []struct {
			Lost uint64 `json:"lost"`
		} `json:"per_cpu"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return fmt.Errorf("decode rewind info --json: %w", err)
	}
	g.res.EventsTotal, g.res.Lost, g.res.EventCounts = info.EventsTotal, info.LostTotal, info.EventCounts
	for _, c := range info.PerCPU {
		g.res.LostPerCPU = append(g.res.LostPerCPU, c.Lost)
	}
	return nil
}

// view counts the child's getppid entries and exits in `rewind view
// --json` (docs/JSON.md: sys_enter and sys_exit carry the syscall's name).
func (g *guest) view(ctx context.Context) error {
	p := g.pass
	out, err := g.runRewind(ctx, "view", "--json", "--pid", strconv.Itoa(p.ChildPID),
		"--event", "sys_enter,sys_exit", p.Snapshot)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var ev struct {
			Event   string `json:"event"`
			PID     int    `json:"pid"`
			Syscall string `json:"syscall"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("decode rewind view --json line %d: %w", line, err)
		}
		if ev.PID != p.ChildPID || ev.Syscall != "getppid" {
			continue
		}
		switch ev.Event {
		case "sys_enter":
			p.GetppidEnter++
		case "sys_exit":
			p.GetppidExit++
		}
	}
	return sc.Err()
}

// analyze checks that `rewind analyze --format json` of the child's
// events succeeds and prints JSON.
func (g *guest) analyze(ctx context.Context) error {
	out, err := g.runRewind(ctx, "analyze", "--format", "json", "--pid", strconv.Itoa(g.pass.ChildPID), g.pass.Snapshot)
	if err == nil && !json.Valid(out) {
		err = errors.New("rewind analyze --format json printed invalid JSON")
	}
	if err != nil {
		g.res.Analyze = err.Error()
		return err
	}
	g.res.Analyze = "ok"
	return nil
}
