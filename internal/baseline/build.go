// Package baseline builds and serves per-site HBOS baselines: what the
// ordinary visitors of a site look like, learned from the request history in
// ClickHouse and shared by every detector replica.
package baseline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/hbos"
	"github.com/anomalyd/anomalyd/pkg/keys"
	"github.com/anomalyd/anomalyd/pkg/model"
)

// BuildConfig says how baselines are built.
type BuildConfig struct {
	// Window and Set must match the detectors': the features are
	// computed over the same windows, and the same ones.
	Window features.Window
	Set    features.Set
	// Period is how much history a baseline learns from, ending at the
	// site's newest request (so replayed history works like live traffic).
	Period time.Duration
	// MaxAhead bounds that newest request: requests more than MaxAhead
	// past the clock are no anchor, so that rows stored before ingest
	// refused them cannot move a baseline's period out of the history.
	// The service sets it from -max-event-ahead.
	MaxAhead time.Duration
	// MinWindows is the fewest visitor-windows a site needs for a baseline.
	MinWindows int
	// MinRequests leaves windows of fewer requests out of the fit: the
	// detectors score no smaller window, so the threshold must be placed
	// among the ones they score. The service sets it, with Window and IPs,
	// from its features.Config.
	MinRequests int
	// EarlyRequests is the size of the windows that make a baseline's
	// early part (model.Early): how visits begin at that many requests,
	// which detectors record for crowds. 0, or not below MinRequests,
	// builds none.
	EarlyRequests int
	// Sample and MaxWindows bound a build: Sample keeps a deterministic
	// share of visitors, and at most MaxWindows visitor-windows are used.
	// A build holds about 16 bytes per feature per window: 2M windows of 8
	// features are some 256 MB.
	Sample     float64
	MaxWindows int
	// Trim is the share of a build's highest-scoring visitor-windows among
	// which the fit looks for bots in the history (see trim); their windows
	// are left out and the model fitted again. 0 fits once, on everything.
	Trim float64
	// HBOS fits the model; its Contamination places the threshold.
	HBOS hbos.Config
	// ThresholdSpread caps the threshold at the median score of the
	// windows fitted plus ThresholdSpread times their upper spread (third
	// quartile less median); 0 leaves it where Contamination puts it.
	// Bots the trim did not find sit in the tail that Contamination reads,
	// and lift the threshold with them; the median and quartile are of the
	// bulk, which a few percent of bots hardly move.
	ThresholdSpread float64
	// ThresholdFloor is the lowest threshold a baseline gets, so that a
	// site of very uniform visitors does not flag trivia.
	ThresholdFloor float64
	// Shadows are the candidate models fitted next to each baseline, to
	// the same windows (the policy's shadows section).
	Shadows []policy.Shadow
}

// DefaultBuildConfig is 7 days of history, at least 300 visitor-windows
// a class (fewer go to the pool of every site: a small class of its own
// judged its clients better than the pool or the browser baseline on
// traffic made elsewhere), all visitors up to 2M windows, and HBOS with 10 left-closed equal-width
// bins, alpha 1e-4 and contamination 0.005: the best of the grid that
// bench/eval_test.go's harness measured on generated traffic (see the
// README's detection figures).
func DefaultBuildConfig() BuildConfig {
	h := hbos.DefaultConfig()
	h.Bins = 10
	// A small alpha lets an empty bin (a value no ordinary visitor had)
	// weigh more than PyOD's 0.1 allows, which caps every feature's term
	// at -log2(0.1) = 3.3.
	h.Alpha = 1e-4
	h.Contamination = 0.005
	h.LeftClosed = true // window features are mostly log1p of small counts
	return BuildConfig{
		Window:        features.DefaultWindow(),
		MinRequests:   features.DefaultMinRequests,
		EarlyRequests: 2,
		Period:        7 * 24 * time.Hour,
		MaxAhead:      service.DefaultMaxEventAhead,
		MinWindows:    300,
		Sample:        1,
		MaxWindows:    2_000_000,
		Trim:          0.1,
		HBOS:          h,
		// On clean generated histories contamination puts thresholds 4
		// to 5 upper spreads above the median: 7 leaves such thresholds
		// alone and lowers those that bots lifted (the README's figures).
		ThresholdSpread: 7,
	}
}

// RegisterFlags registers the build's flags, with c's values as defaults.
// The window's flags are not among them: the service registers them once
// for both building and ingest.
func (c *BuildConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Period, "baseline-period", c.Period, "history a baseline learns from, ending at the site's newest request")
	fs.IntVar(&c.MinWindows, "min-windows", c.MinWindows, "fewest visitor-windows a site needs to get a baseline")
	fs.Float64Var(&c.Sample, "sample", c.Sample, "share of visitors (0, 1] a build uses, chosen deterministically by visitor id, to bound large sites")
	fs.IntVar(&c.MaxWindows, "max-windows", c.MaxWindows, "most visitor-windows one build reads (about 128 bytes each in memory)")
	fs.IntVar(&c.EarlyRequests, "early-requests", c.EarlyRequests, "requests in the window of a visit's beginning that baselines learn, and detectors then record for every visit, so that crowds of visitors too short-lived to be scored are found; 0 (or -min-requests or more) for none")
	fs.Float64Var(&c.ThresholdSpread, "threshold-spread", c.ThresholdSpread, "most a baseline's threshold may lie above the median score of the windows it learned from, in upper spreads (third quartile less median) of those scores, so that bots in the history cannot lift it; 0 for no cap")
	fs.Float64Var(&c.ThresholdFloor, "threshold-floor", c.ThresholdFloor, "lowest score threshold a baseline may have")
	fs.Float64Var(&c.Trim, "trim", c.Trim, "share [0, 0.5] of a build's highest-scoring visitor-windows among which bots in the history are looked for: visitors with most of their windows (two at least) there are left out and the baseline fitted again; 0 fits once, on everything")
	c.HBOS.RegisterFlags(fs)
}

// Validate reports the first unusable setting, naming its flag.
func (c *BuildConfig) Validate() error {
	switch {
	case c.Period <= 0:
		return fmt.Errorf("-baseline-period must be positive, got %v", c.Period)
	case c.MinWindows < 1:
		return fmt.Errorf("-min-windows must be at least 1, got %d", c.MinWindows)
	case c.MinRequests < 1:
		return fmt.Errorf("-min-requests must be at least 1, got %d", c.MinRequests)
	case !(c.Sample > 0 && c.Sample <= 1):
		return fmt.Errorf("-sample must be in (0, 1], got %v", c.Sample)
	case !(c.Trim >= 0 && c.Trim <= 0.5):
		return fmt.Errorf("-trim must be in [0, 0.5], got %v", c.Trim)
	case !(c.ThresholdSpread >= 0):
		return fmt.Errorf("-threshold-spread must be at least 0, got %v", c.ThresholdSpread)
	case c.EarlyRequests < 0:
		return fmt.Errorf("-early-requests must be at least 0, got %d", c.EarlyRequests)
	case c.MaxWindows < c.MinWindows:
		return fmt.Errorf("-max-windows (%d) must be at least -min-windows (%d)", c.MaxWindows, c.MinWindows)
	}
	if err := c.Window.Validate(); err != nil {
		return err
	}
	return c.HBOS.Validate()
}

// ErrTooFewWindows is a site without enough history for a baseline.
var ErrTooFewWindows = errors.New("too few visitor-windows for a baseline")

// Pooled is the site name of the baseline pooled over every site's
// windows, which serves a site's class that has too little history of its
// own.
const Pooled = "*"

// Baseline is one site's fitted model of one traffic class, the visitors
// its history knows, and where they came from.
type Baseline struct {
	Site  string // Pooled for the pooled baseline
	Class features.Class
	Model *hbos.Model
	// Known are the site's visitors in the history, but those the fit
	// left out as bots; nil for the pooled baselines.
	Known *model.Known
	// Starts is how the history's visits of the class began, but those
	// of visitors the fit left out, and Early how they began at their
	// first few requests; nil when the baseline is served for another
	// class (and Early when the class had too few visits for its model).
	Starts *model.Starts
	Early  *model.Early
	// Shadows are the candidate models fitted to the same windows.
	Shadows []model.Shadow
	Encoded []byte // the pkg/model encoding of Model, Known, Starts, Early and Shadows: what the API serves
	Version string // a digest of Encoded: the ETag
	Windows int    // visitor-windows of the history of the class
	// Suspects are the visitors of the history left out as bots, and
	// Trimmed their windows (see Fit).
	Suspects, Trimmed int
	From, To          time.Time
	Built             time.Time
}

// Built is what one build of a site made: a baseline of each traffic
// class, or why the class has none (ErrTooFewWindows, or the fit's error),
// and the visitors the site's history knows.
type Built struct {
	Baselines [features.NumClasses]*Baseline
	Errs      [features.NumClasses]error
	Known     *model.Known // nil for the pooled baselines
	// ShadowErrs are the candidates that could not be fitted, each left
	// out of its class's baseline; the live baselines do not depend on
	// them.
	ShadowErrs []error
}

// Build fits the baselines of every traffic class of site (Pooled: of
// every site together) from the history in src up to newest. One
// aggregation of the history serves every class: each window goes to its
// class (features.Aggregate.Class). The error is the aggregation's; a
// class without a baseline has its reason in Built.Errs.
func Build(ctx context.Context, src WindowSource, cfg BuildConfig, site string, newest time.Time) (*Built, error) {
	names := cfg.Set.Names()
	q := chstore.WindowQuery{
		Site:        site,
		From:        newest.Add(-cfg.Period),
		To:          newest.Add(time.Second), // newest itself is in
		Sample:      cfg.Sample,
		MinRequests: cfg.MinRequests,
		Limit:       cfg.MaxWindows,
	}
	if site == Pooled {
		q.Site = ""
	}
	var cols [features.NumClasses][][]float64
	var visitors [features.NumClasses][]uint64
	for c := range cols {
		cols[c] = make([][]float64, len(names))
	}
	vec := make([]float64, 0, len(names))
	err := src.Windows(ctx, cfg.Window, q, func(vw chstore.VisitorWindow) error {
		c := vw.Agg.Class()
		vec = vw.Agg.Vector(vec, cfg.Set)
		for j, v := range vec {
			cols[c][j] = append(cols[c][j], v)
		}
		// Pooled windows of one address on two sites are two visitors.
		visitors[c] = append(visitors[c], vw.Visitor^keys.SiteID(vw.Site))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("building the baselines of %q: %w", site, err)
	}
	built := &Built{}
	left := make(map[uint64]bool)
	var stats [features.NumClasses]FitStats
	var models [features.NumClasses]*hbos.Model
	for c := range features.Class(features.NumClasses) {
		models[c], stats[c], built.Errs[c] = Fit(cols[c], visitors[c], cfg)
		if built.Errs[c] != nil {
			built.Errs[c] = fmt.Errorf("the %s baseline of %q: %w", c, site, built.Errs[c])
		}
		for v := range stats[c].Left {
			left[v] = true
		}
	}
	// After the fit, and before the known visitors: the history's crowds
	// are bots too.
	starts, early, crowds, err := visitStarts(ctx, src, cfg, q, left)
	if err != nil {
		return nil, err
	}
	if len(crowds) > 0 {
		for c := range models {
			if models[c] == nil {
				continue
			}
			if models[c], stats[c], built.Errs[c] = refitWithout(models[c], stats[c], cols[c], visitors[c], crowds, cfg); built.Errs[c] != nil {
				built.Errs[c] = fmt.Errorf("the %s baseline of %q without the history's crowds: %w", features.Class(c), site, built.Errs[c])
			}
		}
	}
	if site != Pooled {
		if built.Known, err = knownVisitors(ctx, src, site, q.From, q.To, left); err != nil {
			return nil, err
		}
	}
	// A candidate of one class is fitted once, to every class's windows.
	oneClass := make(map[string]*hbos.Model)
	for _, sh := range cfg.Shadows {
		if !sh.OneClass {
			continue
		}
		all := make([][]float64, len(names))
		var everyone []uint64
		for c := range cols {
			for j := range all {
				all[j] = append(all[j], cols[c][j]...)
			}
			everyone = append(everyone, visitors[c]...)
		}
		sm, err := fitShadow(all, everyone, cfg, sh)
		if err != nil {
			built.ShadowErrs = append(built.ShadowErrs, fmt.Errorf("the candidate %s of %q: %w", sh.Name, site, err))
			continue
		}
		oneClass[sh.Name] = sm
	}
	for c, m := range models {
		if m == nil {
			continue
		}
		var shadows []model.Shadow
		for _, sh := range cfg.Shadows {
			if sh.OneClass {
				if sm := oneClass[sh.Name]; sm != nil {
					shadows = append(shadows, model.Shadow{Name: sh.Name, Model: sm})
				}
				continue
			}
			sm, err := fitShadow(cols[c], visitors[c], cfg, sh)
			if err != nil {
				built.ShadowErrs = append(built.ShadowErrs, fmt.Errorf("the candidate %s of the %s baseline of %q: %w", sh.Name, features.Class(c), site, err))
				continue
			}
			shadows = append(shadows, model.Shadow{Name: sh.Name, Model: sm})
		}
		b := &Baseline{
			Site: site, Class: features.Class(c), Model: m, Known: built.Known, Starts: starts[c], Early: early[c], Shadows: shadows,
			Windows: len(visitors[c]), Suspects: stats[c].Suspects, Trimmed: stats[c].Trimmed,
			From: q.From, To: newest, Built: time.Now().UTC(),
		}
		if err := b.encode(); err != nil {
			return nil, err
		}
		built.Baselines[c] = b
	}
	return built, nil
}

// visitStarts counts, per class, the shapes the visits of q began in (see
// VisitStart), and fits the early parts, but for the visitors left out as
// bots (left, keyed as Build keys them for Fit) and those of the
// history's own crowds (see historyCrowds), whose visitors it adds to
// left and returns. A class's early part is nil without enough early
// starts.
func visitStarts(ctx context.Context, src WindowSource, cfg BuildConfig, q chstore.WindowQuery, left map[uint64]bool) ([features.NumClasses]*model.Starts, [features.NumClasses]*model.Early, map[uint64]bool, error) {
	var starts [features.NumClasses]*model.Starts
	var early [features.NumClasses]*model.Early
	crowds := make(map[uint64]bool)
	for c := range starts {
		starts[c] = model.NewStarts()
	}
	names := cfg.Set.Names()
	var all, earlyAll []start
	var vecs [][]float64 // of earlyAll
	vec := make([]float64, 0, len(names))
	span := uint32(cfg.Window.Span() / time.Second)
	err := src.VisitStarts(ctx, cfg.Window, q, cfg.EarlyRequests, func(vs VisitStart) error {
		key := vs.Visitor ^ keys.SiteID(vs.Site)
		if left[key] {
			return nil
		}
		vec = vs.Agg.Vector(vec, cfg.Set)
		st := start{site: vs.Site, slot: vs.Second / span, class: vs.Agg.Class(), shape: features.Shape(vec), key: key}
		if vs.Early {
			earlyAll = append(earlyAll, st)
			vecs = append(vecs, slices.Clone(vec))
		} else {
			all = append(all, st)
		}
		return nil
	})
	if err != nil {
		return starts, early, crowds, fmt.Errorf("the visit starts of %q: %w", q.Site, err)
	}
	for _, sts := range [][]start{all, earlyAll} {
		for i, crowd := range historyCrowds(sts) {
			if crowd {
				left[sts[i].key] = true
				crowds[sts[i].key] = true
			}
		}
	}
	for _, st := range all {
		if !left[st.key] {
			starts[st.class].Add(st.shape)
		}
	}
	if len(earlyAll) == 0 {
		return starts, early, crowds, nil
	}
	var cols [features.NumClasses][][]float64
	var visitors [features.NumClasses][]uint64
	for i, st := range earlyAll {
		if left[st.key] {
			continue
		}
		c := st.class
		if early[c] == nil {
			early[c] = &model.Early{Requests: cfg.EarlyRequests, Starts: model.NewStarts()}
			cols[c] = make([][]float64, len(names))
		}
		early[c].Starts.Add(st.shape)
		for j, v := range vecs[i] {
			cols[c][j] = append(cols[c][j], v)
		}
		visitors[c] = append(visitors[c], st.key)
	}
	// The floor is for thresholds that decide detections; a beginning's
	// decides none, and windows of a few requests are so alike that their
	// scores may all lie below it.
	ec := cfg
	ec.ThresholdFloor = math.Inf(-1)
	for c := range early {
		if early[c] == nil {
			continue
		}
		m, _, err := Fit(cols[c], visitors[c], ec)
		if err != nil { // too few: the class's crowds go without
			early[c] = nil
			continue
		}
		early[c].Model = m
	}
	return starts, early, crowds, nil
}

// refitWithout fits a class's model again without the windows of the
// history's crowds' visitors, so that a campaign large enough to look
// ordinary to the fit, hundreds of addresses each a window or two, does
// not teach the model its windows. Those of the class's visitors count
// among its suspects. When too few windows are left (ErrTooFewWindows),
// the class gets no baseline of its own, as a class with too little
// history: the first fit learned the campaign as ordinary, and the
// pooled baseline, fitted without it, judges the class instead.
func refitWithout(m *hbos.Model, stats FitStats, cols [][]float64, visitors []uint64, crowds map[uint64]bool, cfg BuildConfig) (*hbos.Model, FitStats, error) {
	kept := make([][]float64, len(cols))
	var keptVisitors []uint64
	out := make(map[uint64]bool)
	for i, v := range visitors {
		if crowds[v] {
			out[v] = true
			continue
		}
		for j := range kept {
			kept[j] = append(kept[j], cols[j][i])
		}
		keptVisitors = append(keptVisitors, v)
	}
	if len(out) == 0 {
		return m, stats, nil
	}
	refit, st, err := Fit(kept, keptVisitors, cfg)
	if err != nil {
		return nil, stats, err
	}
	st.Windows, st.Suspects, st.Trimmed = len(visitors), st.Suspects+len(out), st.Trimmed+len(visitors)-len(keptVisitors)
	if st.Left == nil {
		st.Left = make(map[uint64]bool, len(out))
	}
	for v := range out {
		st.Left[v] = true
	}
	return refit, st, nil
}

// knownVisitors are the visitors of site in [from, to), but those left out
// as bots (left, keyed as Build keys them for Fit).
func knownVisitors(ctx context.Context, src WindowSource, site string, from, to time.Time, left map[uint64]bool) (*model.Known, error) {
	var ids []uint64
	err := src.Visitors(ctx, site, from, to, func(v uint64) error {
		if !left[v^keys.SiteID(site)] {
			ids = append(ids, v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("the known visitors of %q: %w", site, err)
	}
	known := model.NewKnown(len(ids))
	for _, v := range ids {
		known.Add(v)
	}
	return known, nil
}

// encode sets Encoded and Version from Model, Known, Starts, Early and
// Shadows.
func (b *Baseline) encode() error {
	enc, err := (&model.Baseline{Model: b.Model, Known: b.Known, Starts: b.Starts, Early: b.Early, Shadows: b.Shadows}).MarshalBinary()
	if err != nil {
		return fmt.Errorf("encoding the %s baseline of %q: %w", b.Class, b.Site, err)
	}
	sum := sha256.Sum256(enc)
	b.Encoded, b.Version = enc, hex.EncodeToString(sum[:8])
	return nil
}

// For returns b as served to site: b itself when it is site's own, else (a
// pooled baseline, or the browser one for another class) a copy carrying
// site's known visitors.
func (b *Baseline) For(site string, class features.Class, known *model.Known) (*Baseline, error) {
	if b.Site == site && b.Class == class {
		return b, nil
	}
	c := *b
	c.Known = known
	if b.Class != class {
		c.Starts, c.Early = nil, nil // another class's visits begin otherwise
	}
	if err := c.encode(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Fit fits a site's model to the feature columns of its visitor-windows,
// in cfg.Set.Names() order, visitors[i] being window i's visitor: the
// robust HBOS fit (see trim), the feature names and the threshold floor.
// Build feeds it from the requests table; backtests from memory.
func Fit(cols [][]float64, visitors []uint64, cfg BuildConfig) (*hbos.Model, FitStats, error) {
	return fit(cols, cfg.Set.Names(), visitors, cfg)
}

// fitShadow fits the candidate sh to the windows Fit fitted a live model
// to: the columns of its features, with its settings in place of cfg's.
func fitShadow(cols [][]float64, visitors []uint64, cfg BuildConfig, sh policy.Shadow) (*hbos.Model, error) {
	names := cfg.Set.Names()
	if len(sh.Features) > 0 {
		picked := make([][]float64, 0, len(sh.Features))
		var pickedNames []string
		for j, name := range names { // in the live order, as the detector's vector has them
			if slices.Contains(sh.Features, name) {
				picked, pickedNames = append(picked, cols[j]), append(pickedNames, name)
			}
		}
		for _, f := range sh.Features {
			if !slices.Contains(names, f) {
				return nil, fmt.Errorf("the feature %s is not scored with -identity's features (%s)", f, strings.Join(names, ", "))
			}
		}
		cols, names = picked, pickedNames
	}
	if sh.Bins > 0 {
		cfg.HBOS.Bins = sh.Bins
	}
	if sh.Alpha > 0 {
		cfg.HBOS.Alpha = sh.Alpha
	}
	if sh.Contamination > 0 {
		cfg.HBOS.Contamination = sh.Contamination
	}
	switch {
	case sh.Trim > 0:
		cfg.Trim = sh.Trim
	case sh.Trim < 0:
		cfg.Trim = 0
	}
	switch {
	case sh.ThresholdSpread > 0:
		cfg.ThresholdSpread = sh.ThresholdSpread
	case sh.ThresholdSpread < 0:
		cfg.ThresholdSpread = 0
	}
	if err := cfg.HBOS.Validate(); err != nil {
		return nil, err
	}
	m, _, err := fit(cols, names, visitors, cfg)
	return m, err
}

// fit is Fit of the columns of the features names.
func fit(cols [][]float64, names []string, visitors []uint64, cfg BuildConfig) (*hbos.Model, FitStats, error) {
	if len(cols) != len(names) {
		return nil, FitStats{}, fmt.Errorf("%d feature columns, want %d", len(cols), len(names))
	}
	n := len(cols[0])
	if n < cfg.MinWindows {
		return nil, FitStats{}, fmt.Errorf("%w: has %d, needs %d", ErrTooFewWindows, n, cfg.MinWindows)
	}
	if len(visitors) != n {
		return nil, FitStats{}, fmt.Errorf("%d visitors for %d windows", len(visitors), n)
	}
	m, err := hbos.FitColumns(cols, cfg.HBOS)
	if err != nil {
		return nil, FitStats{}, fmt.Errorf("fitting: %w", err)
	}
	stats := FitStats{Windows: n}
	fitted := cols
	for range trimRounds {
		if cfg.Trim == 0 {
			break
		}
		keep, suspects := trim(m, cols, visitors, cfg.Trim)
		if suspects == stats.Suspects {
			break
		}
		left := make(map[uint64]bool, suspects)
		for i, k := range keep {
			if !k {
				left[visitors[i]] = true
			}
		}
		kept := make([][]float64, len(cols))
		for j, col := range cols {
			kept[j] = make([]float64, 0, n)
			for i, v := range col {
				if keep[i] {
					kept[j] = append(kept[j], v)
				}
			}
		}
		if len(kept[0]) < cfg.MinWindows {
			break
		}
		if m, err = hbos.FitColumns(kept, cfg.HBOS); err != nil {
			return nil, FitStats{}, fmt.Errorf("refitting: %w", err)
		}
		fitted = kept
		stats.Suspects, stats.Trimmed, stats.Left = suspects, n-len(kept[0]), left
	}
	if stats.Suspects > 0 {
		if m, fitted, err = confirm(m, cols, fitted, visitors, &stats, cfg); err != nil {
			return nil, FitStats{}, err
		}
	}
	if err := m.SetNames(names); err != nil {
		return nil, FitStats{}, err
	}
	if cfg.ThresholdSpread > 0 {
		m.SetThreshold(min(m.Threshold(), spreadCap(m, fitted, cfg.ThresholdSpread)))
	}
	m.SetThreshold(max(m.Threshold(), cfg.ThresholdFloor))
	return m, stats, nil
}

// confirm keeps out only the suspects that m, fitted without them, still
// finds outliers: most of their windows above its threshold (capped as
// Fit caps it). A bot left out of the fit loses the bins it filled and
// stands further out; a person the trim took from the tail of a history
// without bots falls back among the others. Putting such people back
// keeps the baseline as wide as its people, which a trim that always
// leaves out the top of a history would narrow. When some come back, the
// model is fitted again on the windows kept and theirs; it returns the
// model and the windows it was fitted on.
func confirm(m *hbos.Model, cols, fitted [][]float64, visitors []uint64, stats *FitStats, cfg BuildConfig) (*hbos.Model, [][]float64, error) {
	threshold := m.Threshold()
	if cfg.ThresholdSpread > 0 {
		threshold = min(threshold, spreadCap(m, fitted, cfg.ThresholdSpread))
	}
	type tally struct{ windows, above int }
	per := make(map[uint64]tally, len(stats.Left))
	x := make([]float64, len(cols))
	for i, v := range visitors {
		if !stats.Left[v] {
			continue
		}
		for j, col := range cols {
			x[j] = col[i]
		}
		s, _ := m.Score(x)
		t := per[v]
		t.windows++
		if s > threshold {
			t.above++
		}
		per[v] = t
	}
	back := 0
	for v, t := range per {
		if t.above == 0 || 2*t.above < t.windows {
			delete(stats.Left, v)
			back++
		}
	}
	if back == 0 {
		return m, fitted, nil
	}
	n := len(cols[0])
	kept := make([][]float64, len(cols))
	for j, col := range cols {
		kept[j] = make([]float64, 0, n)
		for i, v := range col {
			if !stats.Left[visitors[i]] {
				kept[j] = append(kept[j], v)
			}
		}
	}
	m, err := hbos.FitColumns(kept, cfg.HBOS)
	if err != nil {
		return nil, nil, fmt.Errorf("refitting with the suspects not confirmed: %w", err)
	}
	stats.Suspects, stats.Trimmed = len(stats.Left), n-len(kept[0])
	return m, kept, nil
}

// spreadCap is the median score of the windows cols under m plus spread
// times their third quartile less the median.
func spreadCap(m *hbos.Model, cols [][]float64, spread float64) float64 {
	scores := scoreWindows(m, cols)
	slices.Sort(scores)
	median := stat.Quantile(0.5, stat.LinInterp, scores, nil)
	return median + spread*(stat.Quantile(0.75, stat.LinInterp, scores, nil)-median)
}

// trimRounds bounds how often the fit looks for bots again under the
// model fitted without the ones found: each round can find those that the
// ones found had hidden.
const trimRounds = 3

// FitStats says what a robust fit left out.
type FitStats struct {
	Windows  int             // visitor-windows of the history
	Suspects int             // visitors whose windows were left out
	Trimmed  int             // windows left out, theirs
	Left     map[uint64]bool // the visitors left out, as Fit's visitors name them
}

// trim finds the visitors that history shows to be bots under m: those
// with most of their windows (two at least) in the top share of all
// windows, and those with a single window, in the top tenth of that share.
// Automation repeats itself window after window, and a bot that lives a
// window or less is as far out as automation gets. A person lands in the
// tail in one window of a session now and then, and is kept, so that the
// threshold, placed by contamination among the windows kept, stays among
// people. It returns which windows to keep and how many visitors were
// left out.
func trim(m *hbos.Model, cols [][]float64, visitors []uint64, share float64) (keep []bool, suspects int) {
	n := len(cols[0])
	scores := scoreWindows(m, cols)
	sorted := slices.Clone(scores)
	slices.Sort(sorted)
	cut := sorted[min(n-1, int(float64(n)*(1-share)))]
	far := sorted[min(n-1, int(float64(n)*(1-share/10)))]
	type tally struct{ windows, tail, far int }
	per := make(map[uint64]tally)
	for i, v := range visitors {
		t := per[v]
		t.windows++
		if scores[i] > cut {
			t.tail++
		}
		if scores[i] > far {
			t.far++
		}
		per[v] = t
	}
	suspect := func(t tally) bool { return (t.tail >= 2 && 2*t.tail >= t.windows) || (t.windows == 1 && t.far == 1) }
	keep = make([]bool, n)
	for i, v := range visitors {
		keep[i] = !suspect(per[v])
	}
	for _, t := range per {
		if suspect(t) {
			suspects++
		}
	}
	return keep, suspects
}

// scoreWindows scores every window of cols under m, the model fitted to
// them.
func scoreWindows(m *hbos.Model, cols [][]float64) []float64 {
	scores := make([]float64, len(cols[0]))
	x := make([]float64, len(cols))
	for i := range scores {
		for j, col := range cols {
			x[j] = col[i]
		}
		scores[i], _ = m.Score(x)
	}
	return scores
}
