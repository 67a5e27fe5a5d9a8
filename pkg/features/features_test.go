package features

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestVector(t *testing.T) {
	a := Aggregate{}
	a.Counts[CountRequests] = 20
	a.Counts[Count4xx] = 5
	a.Counts[CountNonGET] = 2
	a.Counts[CountNoReferer] = 4
	a.Counts[CountAssets] = 6
	a.Counts[CountSameSecond] = 5
	a.Distinct[SketchPaths] = 12
	a.Distinct[SketchUserAgents] = 1
	a.Distinct[SketchQueryShapes] = 3
	a.Distinct[SketchIPs] = 7
	// The log-odds of k of the 20 requests: ln((k + 1/4) / (20 - k + 1/4)).
	lo := func(k float64) float64 { return math.Log((k + 0.25) / (20 - k + 0.25)) }
	base := []float64{math.Log(21), 0.6, 0.05, 0.15, lo(4), lo(5), lo(2), lo(6), lo(5)}
	tests := []struct {
		name string
		set  Set
		want []float64
	}{
		{"address identity", SetOf(IdentityIP), base},
		{"fingerprint identity", SetOf(IdentityJA4), append(slices.Clone(base), math.Log(8))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := a.Vector(nil, tc.set)
			names := tc.set.Names()
			if len(got) != len(names) || len(names) != len(tc.set.Features()) {
				t.Fatalf("%d values for %d names", len(got), len(names))
			}
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 1e-15 {
					t.Errorf("%s = %v, want %v", names[i], got[i], tc.want[i])
				}
			}
		})
	}
	var empty Aggregate
	if got := empty.Vector(nil, 0); !slices.Equal(got, make([]float64, 9)) {
		t.Errorf("empty window = %v, want zeros", got)
	}
	// HyperLogLog estimates may exceed the requests they count: the shares
	// stay within [0, 1].
	over := Aggregate{}
	over.Counts[CountRequests] = 100
	over.Distinct[SketchPaths] = 102
	if got := over.Vector(nil, 0); got[1] != 1 {
		t.Errorf("share_new_paths %v for an estimate above the requests, want 1", got[1])
	}
	// Log-odds grow with the evidence: no static file in 500 requests is
	// further out than none in 5, where both shares would be 0.
	few, many := Aggregate{}, Aggregate{}
	few.Counts[CountRequests], many.Counts[CountRequests] = 5, 500
	i := slices.Index(SetOf(IdentityIP).Names(), "logodds_assets")
	if f, m := few.Vector(nil, 0)[i], many.Vector(nil, 0)[i]; !(m < f && f < -2.9 && m < -7.5) {
		t.Errorf("logodds_assets of none in 5 requests %v, in 500 %v; want about -3.0 and -7.6", f, m)
	}
	buf := make([]float64, 0, 8)
	if n := testing.AllocsPerRun(100, func() { buf = a.Vector(buf, SetFingerprint) }); n != 0 {
		t.Errorf("Vector allocates %v times", n)
	}
}

func TestWindow(t *testing.T) {
	w := DefaultWindow()
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 21, 10, 30, 59, 999, time.UTC)
	b := w.Bucket(t0)
	if want := uint32(t0.Unix() / 60); b != want {
		t.Fatalf("Bucket = %d, want %d", b, want)
	}
	if got := w.Start(b); !got.Equal(time.Date(2026, 11, 21, 10, 30, 0, 0, time.UTC)) {
		t.Errorf("Start = %v", got)
	}
	tests := []struct {
		name      string
		b, newest uint32
		late      bool
	}{
		{"newest", b, b, false},
		{"oldest in window", b - 9, b, false},
		{"just out of window", b - 10, b, true},
		{"newer than newest", b + 5, b, false},
		{"near zero", 0, 3, false},
	}
	for _, tc := range tests {
		if got := w.Late(tc.b, tc.newest); got != tc.late {
			t.Errorf("%s: Late(%d, %d) = %v, want %v", tc.name, tc.b, tc.newest, got, tc.late)
		}
	}
	if w.Span() != 10*time.Minute || w.First(b) != b-9 || w.First(3) != 0 {
		t.Errorf("Span %v First %d First(3) %d", w.Span(), w.First(b), w.First(3))
	}
	for _, tc := range []struct {
		newest uint32
		want   []uint32
	}{
		{3, []uint32{0, 1, 2, 3}},
		{math.MaxUint32, []uint32{math.MaxUint32 - 9, math.MaxUint32 - 8, math.MaxUint32 - 7, math.MaxUint32 - 6, math.MaxUint32 - 5,
			math.MaxUint32 - 4, math.MaxUint32 - 3, math.MaxUint32 - 2, math.MaxUint32 - 1, math.MaxUint32}},
	} {
		if got := slices.Collect(w.Range(tc.newest)); !slices.Equal(got, tc.want) {
			t.Errorf("Range(%d) = %v, want %v", tc.newest, got, tc.want)
		}
	}
	if got := w.Bucket(time.Unix(-100, 0)); got != 0 {
		t.Errorf("pre-1970 bucket = %d, want 0", got)
	}
}

func TestWindowValidate(t *testing.T) {
	for _, w := range []Window{
		{Buckets: 0, Width: time.Minute},
		{Buckets: 10, Width: 0},
		{Buckets: 10, Width: 1500 * time.Millisecond},
		{Buckets: 5000, Width: time.Minute},
	} {
		if err := w.Validate(); err == nil {
			t.Errorf("%+v: no error", w)
		}
	}
}

func TestSchema(t *testing.T) {
	seen := make(map[string]bool)
	for _, f := range Schema() {
		if seen[f.Name] {
			t.Errorf("feature %q defined twice", f.Name)
		}
		seen[f.Name] = true
		if c, ok := f.Source.Counter(); ok && int(c) >= NumCounters {
			t.Errorf("%s: counter %d out of range", f.Name, c)
		}
		if s, ok := f.Source.Sketch(); ok && int(s) >= NumSketches {
			t.Errorf("%s: sketch %d out of range", f.Name, s)
		}
	}
	for c := range Counter(NumCounters) {
		d := c.Def()
		if d.Name == "" || (d.Kind == FlaggedRequests) != (d.Flag != 0) {
			t.Errorf("counter %d: %+v: a name, and a flag exactly when it counts flagged requests", c, d)
		}
	}
	tests := []struct {
		set      Set
		name     string
		sketches []Sketch
		last     string
	}{
		{SetOf(IdentityIP), "base", []Sketch{SketchPaths, SketchUserAgents, SketchQueryShapes}, "logodds_same_second"},
		{SetOf(IdentityIPUA), "base", []Sketch{SketchPaths, SketchUserAgents, SketchQueryShapes}, "logodds_same_second"},
		{SetOf(IdentityJA3), "fingerprint", []Sketch{SketchPaths, SketchUserAgents, SketchQueryShapes, SketchIPs}, "log1p_distinct_ips"},
	}
	for _, tc := range tests {
		names := tc.set.Names()
		if tc.set.String() != tc.name || !slices.Equal(tc.set.Sketches(), tc.sketches) || names[len(names)-1] != tc.last {
			t.Errorf("set %s: sketches %v, last feature %s; want %s, %v, %s", tc.set, tc.set.Sketches(), names[len(names)-1], tc.name, tc.sketches, tc.last)
		}
	}
}
