package snapshot

import (
	"math"
	"path/filepath"
	"reflect"
	"testing"
)

func testSeries() *Series {
	return &Series{
		Source: "cpu", RateHz: 100, Missed: 2,
		Fields: []SeriesField{
			{Name: "user", Labels: map[string]string{"cpu": "0"}, Unit: "ns", Kind: SeriesCounter},
			{Name: "load1", Unit: "tasks", Kind: SeriesGauge, Div: 100},
			{Name: "maxconn", Unit: "count", Kind: SeriesGauge, Signed: true},
		},
		TS: []uint64{1e9, 1.01e9, 1.02e9, 1.03e9},
		Values: [][]uint64{
			{0, 10e6, 10e6, math.MaxUint64 - 5}, // deltas wrap without loss
			{25, 30, 5, 0},
			{uint64(1<<64 - 1), uint64(1<<64 - 1), 7, 7}, // -1, -1, 7, 7
		},
	}
}

func TestSeriesRoundTrip(t *testing.T) {
	s := testSeries()
	path := filepath.Join(t.TempDir(), "s.rwd")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	s0 := testSchema(t)
	w.WriteMeta(&Meta{CPUs: 1})
	w.WriteSchema(s0)
	w.WriteProcs(nil)
	if err := w.WriteSeries(s); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	secs := r.SeriesSections()
	if len(secs) != 1 || secs[0].Events != 4 || secs[0].FirstTS != 1e9 || secs[0].LastTS != 1.03e9 {
		t.Fatalf("series sections %+v", secs)
	}
	got, err := r.ReadSeries(secs[0])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("read back %+v\nwant %+v", got, s)
	}
	if v := got.Value(1, 0); v != 0.25 {
		t.Errorf("load1 = %g, want 0.25", v)
	}
	if v := got.Value(2, 0); v != -1 {
		t.Errorf("maxconn = %g, want -1", v)
	}
}

func TestSeriesDamage(t *testing.T) {
	p, err := EncodeSeries(testSeries())
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{0, 3, 10, len(p) / 2, len(p) - 1} {
		if _, err := DecodeSeries(p[:cut]); err == nil {
			t.Errorf("decoded a payload cut to %d of %d bytes", cut, len(p))
		}
	}
	if _, err := DecodeSeries(append(p, 0)); err == nil {
		t.Error("decoded a payload with a byte left over")
	}
	bad := &Series{Source: "x", Fields: []SeriesField{{Name: "a"}}, TS: []uint64{1}}
	if _, err := EncodeSeries(bad); err == nil {
		t.Error("encoded a series without its value column")
	}
}

// FuzzDecodeSeries: arbitrary payloads are refused or decode to a series
// whose columns all hold one value per sample; and a reader, given one as a
// series section with its checksums right, decodes it the same way or
// reports the section damaged.
func FuzzDecodeSeries(f *testing.F) {
	p, err := EncodeSeries(testSeries())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p)
	f.Add(p[:len(p)/2])
	sch := testSchema(f)
	enc, _, err := codecs()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		s, err := DecodeSeries(p)
		r, sec := oneSection(t, sch, KindSeries, flagZstd, enc.EncodeAll(p, nil))
		switch _, serr := r.ReadSeries(sec); {
		case (err == nil) != (serr == nil):
			t.Fatalf("decoder says %v, reader says %v", err, serr)
		case serr != nil:
			requireDamageAt(t, serr, sec)
		}
		if err != nil {
			return
		}
		if len(s.Values) != len(s.Fields) {
			t.Fatalf("%d columns for %d fields", len(s.Values), len(s.Fields))
		}
		for _, col := range s.Values {
			if len(col) != len(s.TS) {
				t.Fatalf("%d values for %d samples", len(col), len(s.TS))
			}
		}
	})
}
