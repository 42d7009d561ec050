package bpf

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// TestKindsTable checks the table of event kinds against the compiled
// object, both ways: every event of the catalogue is in the table (Catalog
// fails otherwise), in the same order, and every event of the table in the
// catalogue, with the fields the table names; every field kind the
// catalogue reports, and every rw_<kind>_t typedef of include/events.h, is
// a kind of the table, and every kind of the table is one of them; each
// pair's events carry the fields that match them, alike.
func TestKindsTable(t *testing.T) {
	events, err := Catalog()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Event{}
	var names []string
	for _, e := range events {
		byName[e.Name] = e
		names = append(names, e.Name)
	}
	var table []string
	for _, k := range kinds.Events {
		table = append(table, k.Name)
		e, ok := byName[k.Name]
		if !ok {
			t.Errorf("event %s of the table is not in the catalogue", k.Name)
			continue
		}
		for _, f := range k.Fields {
			if e.Field(f) < 0 {
				t.Errorf("event %s: the table names field %s, which struct rw_ev_%s lacks", k.Name, f, k.Name)
			}
		}
	}
	if !slices.Equal(names, table) {
		t.Errorf("the table's events are not in enum rw_event_type's order:\n table %v\n enum  %v", table, names)
	}

	// Field kinds: those the fields have, and those events.h declares.
	used := map[string]bool{}
	for _, e := range events {
		for _, f := range e.Fields {
			if f.Kind == "" {
				continue
			}
			used[f.Kind] = true
			if kinds.LookupKind(f.Kind) == nil {
				t.Errorf("event %s field %s: kind %q is not in the table", e.Name, f.Name, f.Kind)
			}
		}
	}
	header, err := os.ReadFile("include/events.h")
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, m := range regexp.MustCompile(`(?m)^typedef\s[^;]*\brw_(\w+)_t\b`).FindAllStringSubmatch(string(header), -1) {
		kind := m[1]
		if strings.HasPrefix(kind, schema.KindEnumPrefix) {
			kind = schema.KindEnumPrefix // every enum_<enum> is kinds.Enum
		}
		if len(declared) == 0 || declared[len(declared)-1] != kind {
			declared = append(declared, kind)
		}
	}
	var kindNames []string
	for _, k := range kinds.Kinds {
		kindNames = append(kindNames, k.Name)
		inUse := used[k.Name]
		if k == kinds.Enum {
			for kind := range used {
				inUse = inUse || strings.HasPrefix(kind, schema.KindEnumPrefix)
			}
		}
		if !inUse {
			t.Errorf("kind %q of the table: no field of the catalogue has it", k.Name)
		}
	}
	if !slices.Equal(declared, kindNames) {
		t.Errorf("the table's kinds are not include/events.h's typedefs, in order:\n table %v\n events.h %v", kindNames, declared)
	}

	for _, p := range kinds.Pairs {
		b, okB := byName[p.Begin]
		e, okE := byName[p.End]
		if !okB || !okE {
			t.Errorf("pair %s/%s: not two events of the catalogue", p.Begin, p.End)
			continue
		}
		for _, name := range p.Match {
			fb, fe := b.Field(name), e.Field(name)
			if fb < 0 || fe < 0 {
				t.Errorf("pair %s/%s: field %s is not in both", p.Begin, p.End, name)
				continue
			}
			x, y := b.Fields[fb], e.Fields[fe]
			if x.Type != y.Type || x.Count != y.Count || x.Kind != y.Kind {
				t.Errorf("pair %s/%s: field %s differs: %+v and %+v", p.Begin, p.End, name, x, y)
			}
		}
	}
}
