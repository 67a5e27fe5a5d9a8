package baseline

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
	"github.com/anomalyd/anomalyd/pkg/hbos"
	"github.com/anomalyd/anomalyd/pkg/keys"
	"github.com/anomalyd/anomalyd/pkg/model"
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
	cfg.Trim = 0 // one fit on everything: TestFitTrimsBots covers the robust fit
	gen := traffic.DefaultConfig()
	gen.Sites, gen.Visitors, gen.Events, gen.Duration = 1, 400, 8000, 60*time.Minute
	reqs, err := traffic.Generate(gen)
	if err != nil {
		t.Fatal(err)
	}
	rows := requestRows(t, cfg.Window, reqs)
	if err := chstore.CreateRequests(ctx, conn, "requests", ""); err != nil {
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

	b, err := buildBrowser(ctx, ClickHouseWindows{conn, "requests"}, cfg, site, newest)
	if err != nil {
		t.Fatal(err)
	}

	// The expected model: live windows, one MemoryStore per tumbling window.
	stores := map[uint32]*featurestore.MemoryStore{}
	seen := map[[2]uint64]bool{}
	for i := range rows {
		o := rows[i].Obs
		win := o.Bucket / uint32(cfg.Window.Buckets)
		if stores[win] == nil {
			stores[win] = featurestore.NewMemoryStore(cfg.Window)
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
	var decoded model.Baseline
	if err := decoded.UnmarshalBinary(b.Encoded); err != nil || len(b.Version) != 16 || decoded.Known == nil {
		t.Errorf("encoded baseline: %v, version %q", err, b.Version)
	}

	// Candidates: fitted to the same windows with their settings, each on
	// its features, in the live order; one naming a feature the set does
	// not score is left out, and the live model is the same.
	withShadows := cfg
	withShadows.Shadows = []policy.Shadow{
		{Name: "narrow", Bins: 5, Features: []string{"logodds_4xx", "log1p_requests"}},
		{Name: "ips", Features: []string{"log1p_distinct_ips"}},
		{Name: "one", OneClass: true, Bins: 7},
	}
	built, err := Build(ctx, ClickHouseWindows{conn, "requests"}, withShadows, site, newest)
	if err != nil {
		t.Fatal(err)
	}
	sb := built.Baselines[features.ClassBrowser]
	if len(built.ShadowErrs) == 0 || !strings.Contains(built.ShadowErrs[0].Error(), "log1p_distinct_ips") {
		t.Errorf("a candidate of a feature not scored: %v", built.ShadowErrs)
	}
	if sb.Model.Threshold() != b.Model.Threshold() || len(sb.Shadows) != 2 || sb.Shadows[0].Name != "narrow" || sb.Shadows[1].Name != "one" {
		t.Fatalf("with candidates: threshold %v (want %v), shadows %+v", sb.Model.Threshold(), b.Model.Threshold(), sb.Shadows)
	}
	// The candidate of one class: fitted to the windows of both classes,
	// the same model in each class's baseline.
	one := sb.Shadows[1].Model
	if api := built.Baselines[features.ClassAPI]; api != nil && (len(api.Shadows) != 2 || api.Shadows[1].Model != one) {
		t.Errorf("the api baseline's candidates %+v: want the browser's one-class model too", api.Shadows)
	}
	edges, _ := one.Histogram(0)
	if len(edges) != 8 || len(one.Names()) != len(b.Model.Names()) {
		t.Errorf("one-class candidate: %d edges, features %v", len(edges), one.Names())
	}
	narrow := sb.Shadows[0].Model
	if names := narrow.Names(); !slices.Equal(names, []string{"log1p_requests", "logodds_4xx"}) {
		t.Errorf("candidate's features %v", names)
	}
	five := cfg.HBOS
	five.Bins = 5
	wantNarrow, err := hbos.FitColumns([][]float64{cols[0], cols[5]}, five)
	if err != nil {
		t.Fatal(err)
	}
	for j := range 2 {
		ge, gd := narrow.Histogram(j)
		we, wd := wantNarrow.Histogram(j)
		if len(ge) != 6 || !slices.Equal(ge, we) || !slices.Equal(gd, wd) {
			t.Errorf("candidate's feature %d: edges %v densities %v, want %v %v", j, ge, gd, we, wd)
		}
	}
	if err := decoded.UnmarshalBinary(sb.Encoded); err != nil || len(decoded.Shadows) != 2 || decoded.Shadows[0].Name != "narrow" || sb.Version == b.Version {
		t.Errorf("encoded with a candidate: %v, %+v, version %s (without: %s)", err, decoded.Shadows, sb.Version, b.Version)
	}

	// A floor lifts the threshold; too little history is an error.
	cfg.ThresholdFloor = 1e9
	if floored, err := buildBrowser(ctx, ClickHouseWindows{conn, "requests"}, cfg, site, newest); err != nil || floored.Model.Threshold() != 1e9 {
		t.Errorf("threshold floor: %v, %v", err, floored)
	}
	cfg.MinWindows = b.Windows + 1
	if _, err := buildBrowser(ctx, ClickHouseWindows{conn, "requests"}, cfg, site, newest); !errors.Is(err, ErrTooFewWindows) {
		t.Errorf("min windows above the history: %v, want ErrTooFewWindows", err)
	}
}

// TestFitTrimsBots fits on windows of people and of a few bots, present
// in many windows each: the robust fit leaves the bots out, so that a bot's
// window scores above the threshold, which one fit on everything would
// not do, while a person whose one window lands in the tail stays in.
func TestFitTrimsBots(t *testing.T) {
	cfg := DefaultBuildConfig()
	cfg.MinWindows = 100
	cfg.ThresholdSpread = 0 // the trim alone
	w := fitWindows{set: cfg.Set}
	add := w.add
	set := cfg.Set
	rng := rand.New(rand.NewPCG(1, 2))
	person := func() features.Aggregate { return fitPerson(rng) }
	for v := range uint64(3000) {
		add(v, person())
	}
	// Two percent of the windows: 6 bots of 10 windows each, above the
	// 0.5% contamination that places the threshold.
	for b := range uint64(6) {
		for range 10 {
			add(1_000_000+b, bot())
		}
	}
	botVec := func() []float64 { a := bot(); return a.Vector(nil, set) }()

	cfg.Trim = 0
	naive, _, err := Fit(w.cols, w.visitors, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := naive.Score(botVec); s > naive.Threshold() {
		t.Fatalf("one fit on everything: a bot scores %.1f, above the threshold %.1f; the test shows nothing", s, naive.Threshold())
	}
	cfg.Trim = DefaultBuildConfig().Trim
	m, stats, err := Fit(w.cols, w.visitors, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := m.Score(botVec); !(s > m.Threshold()) {
		t.Errorf("robust fit: a bot scores %.1f, not above the threshold %.1f", s, m.Threshold())
	}
	if stats.Suspects != 6 || stats.Trimmed != 60 || stats.Windows != 3060 {
		t.Errorf("robust fit left out %d visitors, %d windows of %d; want the 6 bots' 60 windows of 3060", stats.Suspects, stats.Trimmed, stats.Windows)
	}

	// Bots that live one window each, 1% of the windows: the single
	// windows far out go too.
	w = fitWindows{set: set}
	for v := range uint64(3000) {
		add(v, person())
	}
	for b := range uint64(30) {
		add(2_000_000+b, bot())
	}
	cfg.Trim = 0
	if naive, _, err = Fit(w.cols, w.visitors, cfg); err != nil {
		t.Fatal(err)
	}
	if s, _ := naive.Score(botVec); s > naive.Threshold() {
		t.Fatalf("short-lived bots, one fit on everything: a bot scores %.1f, above the threshold %.1f; the test shows nothing", s, naive.Threshold())
	}
	cfg.Trim = DefaultBuildConfig().Trim
	if m, stats, err = Fit(w.cols, w.visitors, cfg); err != nil {
		t.Fatal(err)
	}
	if s, _ := m.Score(botVec); !(s > m.Threshold()) || stats.Suspects < 30 {
		t.Errorf("short-lived bots, robust fit: a bot scores %.1f against the threshold %.1f; %d visitors left out, want the 30 bots at least", s, m.Threshold(), stats.Suspects)
	}
}

// fitWindows are the columns and visitors that Fit takes.
type fitWindows struct {
	set      features.Set
	cols     [][]float64
	visitors []uint64
}

// add adds a visitor's window.
func (w *fitWindows) add(visitor uint64, a features.Aggregate) {
	v := a.Vector(nil, w.set)
	if w.cols == nil {
		w.cols = make([][]float64, len(v))
	}
	for j := range v {
		w.cols[j] = append(w.cols[j], v[j])
	}
	w.visitors = append(w.visitors, visitor)
}

// above is the share of the first n windows that score above m's
// threshold.
func (w *fitWindows) above(m *hbos.Model, n int) float64 {
	x := make([]float64, len(w.cols))
	above := 0
	for i := range n {
		for j := range w.cols {
			x[j] = w.cols[j][i]
		}
		if s, _ := m.Score(x); s > m.Threshold() {
			above++
		}
	}
	return float64(above) / float64(n)
}

// fitPerson is a person's window: a few pages with their static files.
func fitPerson(rng *rand.Rand) features.Aggregate {
	var a features.Aggregate
	n := uint64(5 + rng.IntN(30))
	a.Counts[features.CountRequests] = n
	a.Counts[features.CountAssets] = n * uint64(3+rng.IntN(4)) / 10
	a.Counts[features.CountNoReferer] = uint64(rng.IntN(2))
	a.Distinct[features.SketchPaths] = n/2 + uint64(rng.IntN(int(n/2)))
	a.Distinct[features.SketchUserAgents] = 1
	return a
}

// bot is a crawler's window: hundreds of pages, no static file, no
// referer, half of them in the same second as the one before.
func bot() features.Aggregate {
	var a features.Aggregate
	a.Counts[features.CountRequests] = 300
	a.Counts[features.CountNoReferer] = 300
	a.Counts[features.CountSameSecond] = 150
	a.Distinct[features.SketchPaths] = 300
	a.Distinct[features.SketchUserAgents] = 1
	return a
}

// TestFitConfirmsSuspects: on a history of people alone, the trim takes
// out the people whose windows fall in its top share, but judged by the
// model fitted without them most are ordinary again and come back, so the
// baseline stays as wide as the site's people; with bots among them, the
// bots stay out (TestFitTrimsBots).
func TestFitConfirmsSuspects(t *testing.T) {
	cfg := DefaultBuildConfig()
	cfg.MinWindows = 100
	w := fitWindows{set: cfg.Set}
	rng := rand.New(rand.NewPCG(5, 6))
	for v := range uint64(2000) {
		w.add(v, fitPerson(rng))
		w.add(v, fitPerson(rng))
	}
	first, err := hbos.FitColumns(w.cols, cfg.HBOS)
	if err != nil {
		t.Fatal(err)
	}
	_, trimmed := trim(first, w.cols, w.visitors, cfg.Trim)
	if trimmed < 20 {
		t.Fatalf("the trim alone takes out %d people; the test shows nothing", trimmed)
	}
	_, stats, err := Fit(w.cols, w.visitors, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Suspects > trimmed/4 {
		t.Errorf("%d people left out as bots after confirming, of %d the trim took out; want at most a quarter", stats.Suspects, trimmed)
	}
	if len(stats.Left) != stats.Suspects {
		t.Errorf("%d visitors in Left, %d suspects", len(stats.Left), stats.Suspects)
	}
	t.Logf("trim alone: %d people; confirmed: %d", trimmed, stats.Suspects)
}

// TestFitCapsThreshold fits once, with no trim, on a history whose
// crawlers (each its own rate and paths) are 3% of its windows, six times
// the contamination: the threshold that contamination places is among
// them, and the cap at seven upper spreads above the median puts it below
// a crawler while people above it stay as few as contamination allows.
// On the people alone the cap leaves the threshold where it was.
func TestFitCapsThreshold(t *testing.T) {
	cfg := DefaultBuildConfig()
	cfg.MinWindows, cfg.Trim = 100, 0
	w := fitWindows{set: cfg.Set}
	rng := rand.New(rand.NewPCG(3, 4))
	const people = 3800
	for v := range uint64(people) {
		w.add(v, fitPerson(rng))
	}
	fit := func(spread float64) *hbos.Model {
		t.Helper()
		cfg.ThresholdSpread = spread
		m, _, err := Fit(w.cols, w.visitors, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	spread := DefaultBuildConfig().ThresholdSpread
	if clean, capped := fit(0), fit(spread); capped.Threshold() != clean.Threshold() {
		t.Errorf("people alone: the cap moved the threshold from %.2f to %.2f", clean.Threshold(), capped.Threshold())
	}

	for b := range uint64(120) {
		var a features.Aggregate
		n := uint64(50 + rng.IntN(400))
		a.Counts[features.CountRequests] = n
		a.Counts[features.CountNoReferer] = n
		a.Counts[features.CountSameSecond] = n / uint64(2+rng.IntN(3))
		a.Distinct[features.SketchPaths] = n
		a.Distinct[features.SketchUserAgents] = 1
		w.add(1_000_000+b, a)
	}
	botVec := func() []float64 { a := bot(); return a.Vector(nil, cfg.Set) }()
	uncapped := fit(0)
	if s, _ := uncapped.Score(botVec); s > uncapped.Threshold() {
		t.Fatalf("uncapped: a crawler scores %.1f, above the threshold %.1f; the test shows nothing", s, uncapped.Threshold())
	}
	m := fit(spread)
	if s, _ := m.Score(botVec); !(s > m.Threshold()) {
		t.Errorf("capped at %v spreads: a crawler scores %.1f, not above the threshold %.1f", spread, s, m.Threshold())
	}
	if share := w.above(m, people); share > 0.005 {
		t.Errorf("capped: %.2f%% of people's windows above the threshold %.1f, want at most 0.5%%", 100*share, m.Threshold())
	}
}

// buildBrowser builds site and returns its browser baseline, or why it has
// none.
func buildBrowser(ctx context.Context, src WindowSource, cfg BuildConfig, site string, newest time.Time) (*Baseline, error) {
	built, err := Build(ctx, src, cfg, site, newest)
	if err != nil {
		return nil, err
	}
	return built.Baselines[features.ClassBrowser], built.Errs[features.ClassBrowser]
}

// TestBuildOneClassShadow: a candidate of one class is fitted once to the
// windows of every class, and the same model judges each class.
func TestBuildOneClassShadow(t *testing.T) {
	cfg := DefaultBuildConfig()
	cfg.Window = features.Window{Buckets: 5, Width: time.Minute}
	cfg.MinWindows, cfg.Trim = 50, 0
	cfg.Shadows = []policy.Shadow{{Name: "one", OneClass: true}}
	mem := NewMemoryHistory()
	const site = "a.example"
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	var newest time.Time
	for v := range 400 {
		api := v%2 == 1
		at := start.Add(time.Duration(rng.IntN(3600)) * time.Second)
		for r := range 4 + rng.IntN(8) {
			o := features.Observation{Site: keys.SiteID(site), Visitor: uint64(1000 + v), Bucket: cfg.Window.Bucket(at)}
			o.Second = uint32(at.Unix())
			o.Hashes[features.SketchPaths] = uint64(1 + rng.IntN(30))
			o.Hashes[features.SketchUserAgents] = uint64(1 + v)
			if api {
				o.Flags |= features.FlagAPI | features.FlagNoReferer
			} else if r%3 == 0 {
				o.Flags |= features.FlagAsset
			}
			mem.Add(site, &o)
			if at.After(newest) {
				newest = at
			}
			at = at.Add(time.Duration(1+rng.IntN(20)) * time.Second)
		}
	}
	built, err := Build(t.Context(), mem, cfg, site, newest)
	if err != nil {
		t.Fatal(err)
	}
	br, api := built.Baselines[features.ClassBrowser], built.Baselines[features.ClassAPI]
	if br == nil || api == nil {
		t.Fatalf("baselines: browser %v, api %v (%v)", br != nil, api != nil, built.Errs)
	}
	if len(br.Shadows) != 1 || len(api.Shadows) != 1 || br.Shadows[0].Model != api.Shadows[0].Model {
		t.Fatalf("candidates: browser %+v, api %+v; want one model shared", br.Shadows, api.Shadows)
	}
	// Its histogram of no-referer log-odds spans both classes' values:
	// the browser windows' low ones and the API windows' high ones.
	one := br.Shadows[0].Model
	j := slices.Index(one.Names(), "logodds_no_referer")
	edges, _ := one.Histogram(j)
	bEdges, _ := br.Model.Histogram(j)
	aEdges, _ := api.Model.Histogram(j)
	if edges[0] != min(bEdges[0], aEdges[0]) || edges[len(edges)-1] != max(bEdges[len(bEdges)-1], aEdges[len(aEdges)-1]) {
		t.Errorf("one-class range [%v, %v], browser [%v, %v], api [%v, %v]", edges[0], edges[len(edges)-1], bEdges[0], bEdges[len(bEdges)-1], aEdges[0], aEdges[len(aEdges)-1])
	}
}

// TestRefitWithout: a campaign of one window per address, a third of the
// class's windows, is ordinary to the robust fit; fitted again without the
// history's crowds, its window stands out, and its addresses count among
// the suspects. With too few windows left, there is no model.
func TestRefitWithout(t *testing.T) {
	cfg := DefaultBuildConfig()
	cfg.MinWindows = 100
	w := fitWindows{set: cfg.Set}
	rng := rand.New(rand.NewPCG(3, 4))
	for v := range uint64(2000) {
		w.add(v, fitPerson(rng))
	}
	crowds := map[uint64]bool{}
	for b := range uint64(1000) {
		w.add(1_000_000+b, bot())
		crowds[1_000_000+b] = true
	}
	m, stats, err := Fit(w.cols, w.visitors, cfg)
	if err != nil {
		t.Fatal(err)
	}
	botVec := func() []float64 { a := bot(); return a.Vector(nil, cfg.Set) }()
	if s, _ := m.Score(botVec); s > m.Threshold() {
		t.Fatalf("the first fit: the campaign's window scores %.1f, above the threshold %.1f; the test shows nothing", s, m.Threshold())
	}
	refit, st, err := refitWithout(m, stats, w.cols, w.visitors, crowds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := refit.Score(botVec); !(s > refit.Threshold()) {
		t.Errorf("refitted: the campaign's window scores %.1f, not above the threshold %.1f", s, refit.Threshold())
	}
	if st.Suspects < 1000 || st.Trimmed < 1000 || st.Windows != 3000 || !st.Left[1_000_000] {
		t.Errorf("refitted: %d suspects, %d of %d windows left out; want the campaign's 1000 at least", st.Suspects, st.Trimmed, st.Windows)
	}

	cfg.MinWindows = 2500 // more than the people's windows
	if got, _, err := refitWithout(m, stats, w.cols, w.visitors, crowds, cfg); !errors.Is(err, ErrTooFewWindows) || got != nil {
		t.Errorf("too few windows without the crowds: got a model and error %v, want no model and ErrTooFewWindows", err)
	}
}
