package record

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/rewindtrace/rewind/internal/sysx"
	"github.com/rewindtrace/rewind/snapshot"
)

// SessionConfig is a recording session: what to record, where its
// snapshots go, and when it ends.
type SessionConfig struct {
	Recorder Config
	// Dir is where snapshots go, named by FileName.
	Dir string
	// Duration ends the session after this long (0: when Run's context
	// ends, or on a signal).
	Duration time.Duration
	// FinalSnapshot writes a last snapshot when the session ends on a
	// signal or with its context; at the end of Duration it always does.
	FinalSnapshot bool
	// Signals makes the session handle SIGUSR1 (a snapshot), SIGINT and
	// SIGTERM (the end), as `rewind record` does. They are caught from
	// NewSession on, so that none kills the process while the programs
	// load. A daemon handles signals itself and leaves this off.
	Signals bool
}

// estimateAfter is when a session reports how much history the rate of its
// first moments holds.
const estimateAfter = time.Second

// Notice is what a running session reports; one field is set.
type Notice struct {
	// Started: recording has begun; these are its figures.
	Started *Stats
	// Estimate: the history the rate of the first second holds.
	Estimate *Estimate
	// Snapshot: a snapshot was written; Failed: one failed, and recording
	// goes on.
	Snapshot *Result
	Failed   error
	// Ended: the session ended, and why.
	Ended *Ending
}

// Ending is how a session ended: its trigger, the figures of the history
// tier (when there is one) and the recorder's last Stats.
type Ending struct {
	Trigger snapshot.Trigger
	History *HistoryStats
	Stats   Stats
}

// Session runs a Recorder as `rewind record` does, and as the daemon's
// sessions do: snapshots into a directory on request or on a signal,
// an estimate of the history held, an end on a signal, a deadline or a
// cancelled context, with a final snapshot. It is safe for concurrent
// use: Snapshot may be called while Run runs.
type Session struct {
	cfg    SessionConfig
	rec    *Recorder
	notify func(Notice)
	sigs   chan os.Signal

	mu      sync.Mutex
	running bool
}

// NewSession loads a recorder for cfg (see New) without starting it;
// notify receives what Run reports, from Run's goroutine or Snapshot's
// caller (nil: nothing is reported).
func NewSession(cfg SessionConfig, notify func(Notice)) (*Session, error) {
	if cfg.Dir == "" {
		return nil, errors.New("session: no directory for snapshots")
	}
	if st, err := os.Stat(cfg.Dir); err != nil {
		return nil, fmt.Errorf("snapshot directory: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("snapshot directory %s: not a directory", cfg.Dir)
	}
	if cfg.Duration < 0 {
		return nil, fmt.Errorf("session duration %v: must not be negative", cfg.Duration)
	}
	if notify == nil {
		notify = func(Notice) {}
	}
	s := &Session{cfg: cfg, notify: notify}
	if cfg.Signals {
		s.sigs = make(chan os.Signal, 4)
		signal.Notify(s.sigs, syscall.SIGUSR1, syscall.SIGINT, syscall.SIGTERM)
	}
	rec, err := New(cfg.Recorder)
	if err != nil {
		s.stopSignals()
		return nil, err
	}
	s.rec = rec
	return s, nil
}

// Recorder is the session's recorder.
func (s *Session) Recorder() *Recorder { return s.rec }

// Snapshot writes a snapshot into the session's directory and reports it.
func (s *Session) Snapshot(ctx context.Context, trig snapshot.Trigger) (*Result, error) {
	res, err := s.rec.Snapshot(ctx, SnapshotRequest{Dir: s.cfg.Dir, Trigger: trig})
	if err != nil {
		s.notify(Notice{Failed: err})
		return nil, err
	}
	s.notify(Notice{Snapshot: res})
	return res, nil
}

// Run starts recording and returns when the session ends: ctx is done, the
// duration is up, or (with Signals) SIGINT or SIGTERM arrives. It then
// writes the final snapshot, when configured, and closes the recorder. A
// failed final snapshot is Run's error; snapshots on the way are reported
// and do not end the session.
func (s *Session) Run(ctx context.Context) (err error) {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("session: already running")
	}
	s.running = true
	s.mu.Unlock()
	defer s.stopSignals()
	defer func() {
		if cerr := s.rec.Close(); err == nil {
			err = cerr
		}
	}()
	if err := s.rec.Start(); err != nil {
		return err
	}
	var deadline <-chan time.Time
	if s.cfg.Duration > 0 {
		t := time.NewTimer(s.cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	estimate := time.NewTimer(estimateAfter)
	defer estimate.Stop()
	first, err := s.rec.Stats()
	if err != nil {
		return err
	}
	s.notify(Notice{Started: &first})
	for {
		select {
		case <-estimate.C:
			if now, err := s.rec.Stats(); err == nil {
				e := s.rec.Estimate(first, now)
				s.notify(Notice{Estimate: &e})
			}
		case <-deadline:
			return s.end(snapshot.Trigger{Kind: snapshot.TriggerDuration, Detail: s.cfg.Duration.String()}, true)
		case <-ctx.Done():
			return s.end(snapshot.Trigger{Kind: snapshot.TriggerExit}, s.cfg.FinalSnapshot)
		case sig := <-s.sigs:
			name := SignalName(sig)
			if sig == syscall.SIGUSR1 {
				s.Snapshot(context.Background(), snapshot.Trigger{Kind: snapshot.TriggerSignal, Signal: name})
				continue
			}
			return s.end(snapshot.Trigger{Kind: snapshot.TriggerExit, Signal: name}, s.cfg.FinalSnapshot)
		}
	}
}

// end writes the final snapshot, if asked to, and reports the ending.
func (s *Session) end(trig snapshot.Trigger, final bool) error {
	var err error
	if final {
		// Its failure is Run's error, not a notice.
		var res *Result
		if res, err = s.rec.Snapshot(context.Background(), SnapshotRequest{Dir: s.cfg.Dir, Trigger: trig}); err == nil {
			s.notify(Notice{Snapshot: res})
		}
	}
	e := &Ending{Trigger: trig}
	// Stopping drains the history tier: its figures then count every
	// event it lost.
	if serr := s.rec.Stop(); err == nil {
		err = serr
	}
	if st, serr := s.rec.Stats(); serr == nil {
		e.Stats, e.History = st, st.History
	}
	s.notify(Notice{Ended: e})
	return err
}

// Close releases the recorder of a session that did not run, and stops
// catching signals. It is safe to call after Run and more than once.
func (s *Session) Close() error {
	s.stopSignals()
	return s.rec.Close()
}

func (s *Session) stopSignals() {
	if s.sigs != nil {
		signal.Stop(s.sigs)
	}
}

// SignalName names a signal as the kernel's headers do ("SIGUSR1").
func SignalName(sig os.Signal) string {
	if n, ok := sig.(syscall.Signal); ok {
		if name := sysx.SignalName(int(n)); name != "" {
			return name
		}
	}
	return sig.String()
}
