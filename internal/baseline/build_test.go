package baseline

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/hbos"
)

// TestBuildHasTheExpectedHistograms fits a baseline from ClickHouse and
// compares it with a model fitted directly on the feature vectors that
// pkg/features computes live for the same visitor-windows: same histograms,
// same threshold, bit for bit.
func TestBuildHasTheExpectedHistograms(t *testing.T) {
	conn := openClickHouse(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cfg := DefaultBuildConfig()
	cfg.Window = features.Window{Buckets: 5, Width: time.Minute}
	cfg.MinWindows = 100
	gen := traffic.DefaultConfig()
	gen.Sites, gen.Visitors, gen.Events, gen.Duration = 1, 400, 8000, 60*time.Minute
	reqs, err := traffic.Generate(gen)
	if err != nil {
		t.Fatal(err)
	}
	rows := requestRows(t, cfg.Window, reqs)
	if err := chstore.CreateRequests(ctx, conn, "requests"); err != nil {
		t.Fatal(err)
	}
	if err := chstore.InsertRequests(ctx, conn, "requests", rows); err != nil {
		t.Fatal(err)
	}
	site := rows[0].Site
	newest := rows[0].Time
	for _, r := range rows {
		if r.Time.After(newest) {
			newest = r.Time
		}
	}

	b, err := Build(ctx, ClickHouseWindows{conn, "requests"}, cfg, site, newest)
	if err != nil {
		t.Fatal(err)
	}

	// The expected model: live windows, one MemoryStore per tumbling window.
	stores := map[uint32]*features.MemoryStore{}
	seen := map[[2]uint64]bool{}
	for i := range rows {
		o := rows[i].Obs
		win := o.Bucket / uint32(cfg.Window.Buckets)
		if stores[win] == nil {
			stores[win] = features.NewMemoryStore(cfg.Window)
		}
		if err := stores[win].Add(ctx, []features.Observation{o}); err != nil {
			t.Fatal(err)
		}
		seen[[2]uint64{o.Visitor, uint64(win)}] = true
	}
	cols := make([][]float64, len(features.Set(0).Names()))
	var vec []float64
	// Histograms and the percentile threshold do not depend on row order.
	for k := range seen {
		win := uint32(k[1])
		agg, err := stores[win].Window(ctx, rows[0].Obs.Site, k[0], win*uint32(cfg.Window.Buckets)+uint32(cfg.Window.Buckets)-1)
		if err != nil {
			t.Fatal(err)
		}
		if agg.Counts[features.CountRequests] < uint64(cfg.MinRequests) {
			continue // the baseline learns only from windows the detector scores
		}
		vec = agg.Vector(vec, 0)
		for j, v := range vec {
			cols[j] = append(cols[j], v)
		}
	}
	want, err := hbos.FitColumns(cols, cfg.HBOS)
	if err != nil {
		t.Fatal(err)
	}
	if b.Windows != len(cols[0]) {
		t.Fatalf("baseline learned from %d windows, want %d", b.Windows, len(cols[0]))
	}
	for j, name := range b.Model.Names() {
		ge, gd := b.Model.Histogram(j)
		we, wd := want.Histogram(j)
		if !slices.Equal(ge, we) || !slices.Equal(gd, wd) {
			t.Errorf("%s: histogram edges %v densities %v, want %v %v", name, ge, gd, we, wd)
		}
	}
	if b.Model.Threshold() != want.Threshold() {
		t.Errorf("threshold %v, want %v", b.Model.Threshold(), want.Threshold())
	}
	var decoded hbos.Model
	if err := decoded.UnmarshalBinary(b.Encoded); err != nil || len(b.Version) != 16 {
		t.Errorf("encoded baseline: %v, version %q", err, b.Version)
	}

	// A floor lifts the threshold; too little history is an error.
	cfg.ThresholdFloor = 1e9
	if floored, err := Build(ctx, ClickHouseWindows{conn, "requests"}, cfg, site, newest); err != nil || floored.Model.Threshold() != 1e9 {
		t.Errorf("threshold floor: %v, %v", err, floored)
	}
	cfg.MinWindows = b.Windows + 1
	if _, err := Build(ctx, ClickHouseWindows{conn, "requests"}, cfg, site, newest); !errors.Is(err, ErrTooFewWindows) {
		t.Errorf("min windows above the history: %v, want ErrTooFewWindows", err)
	}
}
