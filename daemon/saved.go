package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/rewindtrace/rewind/daemon/api"
	"github.com/rewindtrace/rewind/internal/atomicfile"
	"github.com/rewindtrace/rewind/record"
)

// definition is what recreates the session: its settings, events, filter,
// counters with their rates, and whether it records.
func (s *session) definition() (api.Definition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	events, err := s.rec.Events()
	if err != nil {
		return api.Definition{}, err
	}
	st, err := s.rec.Stats()
	if err != nil {
		return api.Definition{}, err
	}
	d := api.Definition{Format: api.DefinitionFormat, Name: s.name, BufferSize: s.req.BufferSize, Output: s.output,
		History: s.req.History, Memory: s.req.Memory, Retention: s.req.Retention, Events: events,
		Tracked:  api.TrackRequest{PIDs: s.tracked.pids, Comms: s.tracked.comms, Cgroups: s.tracked.cgroups},
		Counters: []string{}, Start: st.State == record.Recording,
		Triggers: s.watch.requests(), Histograms: s.watch.histograms()}
	if d.Events == nil {
		d.Events = []string{}
	}
	for name, hz := range st.Counters.Sources {
		d.Counters = append(d.Counters, name+"@"+strconv.FormatFloat(hz, 'f', -1, 64))
	}
	sort.Strings(d.Counters)
	return d, nil
}

// load recreates a session from its definition: created, then its events,
// filter and counters set, then started when it was recording. A session
// that cannot be made whole is destroyed, not left half made.
func (m *manager) load(def api.Definition) (_ *session, err error) {
	if def.Format != api.DefinitionFormat {
		return nil, failf(http.StatusBadRequest, "session definition format %d: this rewind reads format %d", def.Format, api.DefinitionFormat)
	}
	s, err := m.create(api.CreateRequest{Name: def.Name, BufferSize: def.BufferSize, Output: def.Output, History: def.History, Memory: def.Memory, Retention: def.Retention})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			m.destroy(def.Name)
		}
	}()
	if len(def.Events) > 0 {
		if err := s.enable(def.Events); err != nil {
			return nil, err
		}
	}
	t := def.Tracked
	if len(t.PIDs)+len(t.Comms)+len(t.Cgroups) > 0 {
		if err := s.track(api.TrackRequest{PIDs: t.PIDs, Comms: t.Comms, Cgroups: t.Cgroups}, false); err != nil {
			return nil, err
		}
	}
	if len(def.Counters) > 0 {
		if err := s.counters(def.Counters, false); err != nil {
			return nil, err
		}
	}
	for _, t := range def.Triggers {
		if err := s.watch.add(t); err != nil {
			return nil, err
		}
	}
	if len(def.Histograms) > 0 {
		if err := s.watch.setHistograms(def.Histograms, false); err != nil {
			return nil, err
		}
	}
	if def.Start {
		if err := s.start(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// save writes the session's definition into the saved sessions directory,
// as NAME.json, atomically.
func (m *manager) save(s *session) (string, error) {
	if m.cfg.SessionsDir == "" {
		return "", failf(http.StatusConflict, "this daemon keeps no saved sessions (--sessions-dir): save with -o FILE")
	}
	def, err := s.definition()
	if err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(def, "", "  ")
	if err != nil {
		return "", err
	}
	if err := outputDir(m.cfg.SessionsDir, m.cfg.Group); err != nil {
		return "", err
	}
	path := filepath.Join(m.cfg.SessionsDir, s.name+".json")
	return path, atomicfile.WriteBytes(path, append(b, '\n'), 0o640)
}

// loadSaved loads every saved session (NAME.json in the saved sessions
// directory); one that fails is reported and the others still load.
func (m *manager) loadSaved() ([]string, error) {
	if m.cfg.SessionsDir == "" {
		return nil, nil
	}
	paths, err := filepath.Glob(filepath.Join(m.cfg.SessionsDir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var loaded []string
	var errs []error
	for _, p := range paths {
		def, err := readDefinition(p)
		if err == nil {
			_, err = m.load(def)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("saved session %s: %w", p, err))
			continue
		}
		loaded = append(loaded, def.Name)
	}
	return loaded, errors.Join(errs...)
}

// readDefinition reads a saved session file.
func readDefinition(path string) (api.Definition, error) {
	var def api.Definition
	f, err := os.Open(path)
	if err != nil {
		return def, err
	}
	defer f.Close()
	if err := api.Decode(f, &def); err != nil {
		return def, err
	}
	if want := strings.TrimSuffix(filepath.Base(path), ".json"); def.Name != want {
		return def, fmt.Errorf("the file is named for session %q but defines %q", want, def.Name)
	}
	return def, nil
}
