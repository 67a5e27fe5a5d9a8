package baseline

import (
	"errors"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/model"
)

// TestHistoryCrowds: a campaign of the history, one shape in a burst, is
// its own crowd, even when its burst is large enough to make its shape a
// common one; people's visits, whose shapes come at their share all day
// (twice as many in a busy slot), are not.
func TestHistoryCrowds(t *testing.T) {
	type add struct {
		slots      []uint32
		shape      uint64
		n          int
		wantCrowds bool
	}
	people := func(slot uint32) int { // a busy slot, and the history's first, where visits under way look like starts
		switch slot {
		case 0:
			return 150
		case 9:
			return 120
		}
		return 60
	}
	cases := []struct {
		name  string
		scale int // people per slot, times people(slot)
		adds  []add
	}{
		{"a campaign of a tenth of the history's visits", 1, []add{{[]uint32{4}, 99, 150, true}, {[]uint32{5}, 99, 40, true}}},
		{"a campaign of more visits than the class's people, in three slots", 1, []add{
			{[]uint32{7}, 99, 300, true}, {[]uint32{8}, 99, 700, true}, {[]uint32{9}, 99, 400, true}}},
		// The campaign's slots must not make people's shapes, diluted
		// there, look rare in the others.
		{"a campaign of more visits than the class's people, on a busier site", 2, []add{
			{[]uint32{7}, 99, 1200, true}, {[]uint32{8}, 99, 2800, true}, {[]uint32{9}, 99, 1600, true}}},
		{"people coming to one page, spread over the day", 1, []add{{[]uint32{1, 3, 5, 7, 9, 11, 13, 15, 17}, 98, 8, false}}},
		// Windows from the middle of visits under way when the history
		// began, at four times their share of the other slots.
		{"the history's first slot", 1, []add{{[]uint32{0}, 4, 24, false}, {[]uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, 4, 4, false}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var all []start
			var want []bool
			put := func(slot uint32, shape uint64, n int, crowd bool) {
				for range n {
					all = append(all, start{site: "a.example", slot: slot, class: features.ClassBrowser, shape: shape, key: uint64(len(all))})
					want = append(want, crowd)
				}
			}
			for slot := range uint32(18) {
				p := tc.scale * people(slot)
				put(slot, 1, p*8/10, false)
				put(slot, 2, p*15/100, false)
				put(slot, 3, p*5/100, false)
			}
			for _, a := range tc.adds {
				for _, slot := range a.slots {
					put(slot, a.shape, a.n, a.wantCrowds)
				}
			}
			crowd := historyCrowds(all)
			for i := range all {
				if crowd[i] != want[i] {
					t.Fatalf("start %d (shape %d, slot %d): crowd %v", i, all[i].shape, all[i].slot, crowd[i])
				}
			}
		})
	}
}

// TestBuildLeavesOutHistoryCrowds: a campaign in the history does not
// teach the baseline its visitors (most are not known, so not
// returning), and its people still are.
func TestBuildLeavesOutHistoryCrowds(t *testing.T) {
	cfg := DefaultBuildConfig()
	cfg.MinWindows = 100
	gen := traffic.DefaultConfig()
	gen.Sites, gen.Visitors, gen.Events, gen.Duration = 1, 2000, 40_000, 3*time.Hour
	gen.Options.Campaigns = traffic.Campaigns{Stuffing: 1, Addresses: 300, MinRequests: 5, MaxRequests: 6,
		MinLength: 20 * time.Minute, MaxLength: 20 * time.Minute}
	reqs, err := traffic.Generate(gen)
	if err != nil {
		t.Fatal(err)
	}
	rows := requestRows(t, cfg.Window, reqs)
	mem := NewMemoryHistory()
	members, people := map[uint64]bool{}, map[uint64]bool{}
	newest := rows[0].Time
	for i := range rows {
		mem.Add(rows[i].Site, &rows[i].Obs)
		if reqs[i].Label == traffic.HumanLabel {
			people[rows[i].Obs.Visitor] = true
		} else {
			members[rows[i].Obs.Visitor] = true
		}
		if rows[i].Time.After(newest) {
			newest = rows[i].Time
		}
	}
	built, err := Build(t.Context(), mem, cfg, rows[0].Site, newest)
	if err != nil {
		t.Fatal(err)
	}
	known := func(vs map[uint64]bool) float64 {
		n := 0
		for v := range vs {
			if built.Known.Has(v) {
				n++
			}
		}
		return float64(n) / float64(len(vs))
	}
	// Most: members whose visits began in a rarer variant of the
	// campaign's shape make no crowd of their own.
	if k := known(members); k > 0.25 {
		t.Errorf("%.0f%% of the campaign's %d addresses known", 100*k, len(members))
	}
	if k := known(people); k < 0.95 {
		t.Errorf("%.0f%% of %d people known", 100*k, len(people))
	}
	b := built.Baselines[features.ClassBrowser]
	if b == nil || b.Starts == nil || b.Starts.Visits() < 500 {
		t.Fatalf("browser baseline %+v", b)
	}

	// A class with too few windows but the campaign's has no baseline of
	// its own, as a class with too little history: one fitted on them
	// would learn the campaign as ordinary.
	cfg.MinWindows = b.Windows
	built, err = Build(t.Context(), mem, cfg, rows[0].Site, newest)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := built.Baselines[features.ClassBrowser], built.Errs[features.ClassBrowser]; b != nil || !errors.Is(err, ErrTooFewWindows) {
		t.Errorf("-min-windows %d, the class's windows with the campaign's: got a baseline (%v) and error %v, want none and ErrTooFewWindows", cfg.MinWindows, b != nil, err)
	}
}

// TestBuildEarly: a build learns how the class's visits begin at
// -early-requests requests, with a model of its own whose threshold no
// -threshold-floor lifts (windows of two requests are so alike that their
// scores may all lie below it); a class served another class's baseline
// gets no early part, and -early-requests 0 builds none.
func TestBuildEarly(t *testing.T) {
	gen := traffic.DefaultConfig()
	gen.Sites, gen.Visitors, gen.Events, gen.Duration = 1, 1500, 20_000, 2*time.Hour
	reqs, err := traffic.Generate(gen)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultBuildConfig()
	cfg.MinWindows = 100
	cfg.ThresholdFloor = 1000
	rows := requestRows(t, cfg.Window, reqs)
	mem := NewMemoryHistory()
	newest := rows[0].Time
	for i := range rows {
		mem.Add(rows[i].Site, &rows[i].Obs)
		if rows[i].Time.After(newest) {
			newest = rows[i].Time
		}
	}
	built, err := Build(t.Context(), mem, cfg, rows[0].Site, newest)
	if err != nil {
		t.Fatal(err)
	}
	b := built.Baselines[features.ClassBrowser]
	if b == nil || b.Early == nil || b.Early.Requests != 2 || b.Early.Starts.Visits() < 500 {
		t.Fatalf("browser baseline's early part: %+v", b)
	}
	if b.Model.Threshold() != 1000 || b.Early.Model.Threshold() >= 1000 {
		t.Errorf("thresholds %v and, early, %v: want the floor, 1000, and the early model's own", b.Model.Threshold(), b.Early.Model.Threshold())
	}
	var dec model.Baseline
	if err := dec.UnmarshalBinary(b.Encoded); err != nil || dec.Early == nil || dec.Early.Starts.Visits() != b.Early.Starts.Visits() {
		t.Errorf("served encoding: early part %+v, %v", dec.Early, err)
	}
	if other, err := b.For(b.Site, features.ClassAPI, built.Known); err != nil || other.Early != nil || other.Starts != nil {
		t.Errorf("served for the API class: early part %+v, starts %v, %v", other.Early, other.Starts, err)
	}

	cfg.EarlyRequests = 0
	if built, err = Build(t.Context(), mem, cfg, rows[0].Site, newest); err != nil {
		t.Fatal(err)
	}
	if b := built.Baselines[features.ClassBrowser]; b == nil || b.Early != nil || b.Starts == nil {
		t.Errorf("-early-requests 0: browser baseline %+v", b)
	}
}
