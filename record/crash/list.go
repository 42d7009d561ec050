package crash

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// List reads the crash records in dir, oldest first. Entries that are not
// records (a handler's temporary directory, the storm file) are skipped;
// a record whose metadata cannot be read is an error naming it.
func List(dir string) ([]*Record, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Record
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		r, err := Load(dir, e.Name())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].ID < out[j].ID
	})
	return out, errors.Join(errs...)
}

// Load reads one record's metadata; its ID is the directory's name.
func Load(dir, id string) (*Record, error) {
	if id == "" || strings.ContainsAny(id, "/\x00") || strings.HasPrefix(id, ".") {
		return nil, fmt.Errorf("crash record %q: not a record's name", id)
	}
	b, err := os.ReadFile(filepath.Join(dir, id, "meta.json"))
	if err != nil {
		return nil, fmt.Errorf("crash record %s: %w", id, err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("crash record %s: meta.json: %w", id, err)
	}
	r.ID = id
	return &r, nil
}
