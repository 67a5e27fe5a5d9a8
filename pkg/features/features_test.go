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
	tests := []struct {
		name string
		ips  bool
		want []float64
	}{
		{"address identity", false, []float64{math.Log(21), 0.6, 0.05, 0.15, 0.2, 0.25, 0.1, 0.3, 0.25}},
		{"fingerprint identity", true, []float64{math.Log(21), 0.6, 0.05, 0.15, 0.2, 0.25, 0.1, 0.3, 0.25, math.Log(8)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := a.Vector(nil, tc.ips)
			if len(got) != len(FeatureNames(tc.ips)) {
				t.Fatalf("%d values for %d names", len(got), len(FeatureNames(tc.ips)))
			}
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 1e-15 {
					t.Errorf("%s = %v, want %v", FeatureNames(tc.ips)[i], got[i], tc.want[i])
				}
			}
		})
	}
	var empty Aggregate
	if got := empty.Vector(nil, false); !slices.Equal(got, make([]float64, 9)) {
		t.Errorf("empty window = %v, want zeros", got)
	}
	// HyperLogLog estimates may exceed the requests they count: the shares
	// stay within [0, 1].
	over := Aggregate{}
	over.Counts[CountRequests] = 100
	over.Distinct[SketchPaths] = 102
	if got := over.Vector(nil, false); got[1] != 1 {
		t.Errorf("share_new_paths %v for an estimate above the requests, want 1", got[1])
	}
	buf := make([]float64, 0, 8)
	if n := testing.AllocsPerRun(100, func() { buf = a.Vector(buf, true) }); n != 0 {
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
