package baseline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/model"
)

// DefaultRefresh is the default refresh period: how old a baseline may get
// before it is built again.
const DefaultRefresh = 10 * time.Minute

const (
	// errorRetry bounds how long a failed build is remembered, so that a
	// short ClickHouse outage does not leave a site without a baseline for
	// a whole refresh period. Failed builds cost ClickHouse nothing.
	errorRetry = 30 * time.Second
	// buildTimeout bounds one build. Builds run detached from the callers
	// that started them (others may be waiting for the result), so
	// something else must stop one that hangs.
	buildTimeout = 10 * time.Minute
)

// Site statuses: the result of a site's last build, for each class.
const (
	StatusOK      = "ok"
	StatusTooFew  = "too-few" // fewer visitor-windows than MinWindows
	StatusError   = "error"
	StatusPending = "pending" // in the requests table, not built yet
)

// ErrUnknownSite is a site of which the requests table has no request:
// nothing to build from, and no pooled baseline either, since nobody sends
// its traffic.
var ErrUnknownSite = errors.New("no request of the site in the history")

// SiteStatus is what the service knows of one site. Its top-level fields
// are of the browser class, the pages people see; Classes has every class.
type SiteStatus struct {
	Site string `json:"site"`
	// Status is the result of the last build of the browser class: ok,
	// too-few, error, or pending before the first one.
	Status string `json:"status"`
	// Version, Built, Windows and Suspects describe the browser baseline
	// served: the last good one, which a failed build does not replace.
	// They are empty while the site has none.
	Version  string    `json:"version,omitempty"`
	Built    time.Time `json:"built,omitzero"`
	Windows  int       `json:"windows,omitempty"`  // visitor-windows of its history
	Suspects int       `json:"suspects,omitempty"` // visitors of its history left out as bots
	// Checked is when the last build ended, and Error why it failed.
	Checked time.Time `json:"checked,omitzero"`
	Error   string    `json:"error,omitempty"`
	// Requests and Newest are what the requests table held for the site
	// when the sites were last listed.
	Requests uint64    `json:"requests,omitempty"`
	Newest   time.Time `json:"newest,omitzero"`
	// Classes are the baselines of every traffic class, browser first.
	Classes []ClassStatus `json:"classes,omitempty"`
}

// ClassStatus is what the service knows of one class of a site.
type ClassStatus struct {
	Class    string `json:"class"`
	Status   string `json:"status"`
	Version  string `json:"version,omitempty"`
	Windows  int    `json:"windows,omitempty"`
	Suspects int    `json:"suspects,omitempty"`
	Error    string `json:"error,omitempty"`
	// ServedBy names the baseline that judges the class when it has too
	// little history of its own: "*/api" (the class pooled over every
	// site), or "browser" (the site's browser baseline, when even the pool
	// has too little).
	ServedBy string `json:"served_by,omitempty"`
}

// classState is the cache entry of one class of a site.
type classState struct {
	good   *Baseline // the last good baseline, nil before the first
	status string
	err    error // of the last build
	// served is what judges the class while it has no good baseline: the
	// baseline servedFrom with the site's known visitors servedKnown.
	served      *Baseline
	servedFrom  *Baseline
	servedKnown *model.Known
}

// siteState is the cache entry of one site.
type siteState struct {
	classes  [features.NumClasses]classState
	known    *model.Known // of the last good build
	checked  time.Time    // when the last build ended; zero before
	requests uint64
	newest   time.Time
}

// Baselines builds, caches and shares per-site baselines, one per traffic
// class. However many detector replicas ask, a site costs ClickHouse at
// most one aggregation per refresh period, for all its classes: a cached
// baseline is served until it is a period old, and concurrent askers of a
// stale or missing one wait for a single build. A failed build never
// replaces a good baseline, so the last good ones keep being served while
// ClickHouse is down. A class with too little history of its own is served
// by the baseline pooled over every site (Pooled), built like a site's.
//
// Site names are lower-cased (ASCII only), as pkg/features does when it
// decodes events.
type Baselines struct {
	conn    driver.Conn
	table   string
	cfg     BuildConfig
	refresh time.Duration
	metrics *Metrics
	logger  *slog.Logger

	flights singleflight.Group // keyed by site

	mu    sync.Mutex
	sites map[string]*siteState
	// rebuilds limits the rebuilds asked through the API; nil: no limit.
	rebuilds *rate.Limiter
	// listed is set once the requests table's sites have been listed:
	// from then on, a site that is neither in sites nor noted by Saw has
	// no history, and asking for it costs no query and keeps no state.
	listed bool
	// policy is the operators' policy in force (see SetPolicy).
	policy func() *policy.Policy
	// scoresTable is the publisher's scores table, for the site pages.
	scoresTable string
}

// New returns a Baselines building from the requests in table with cfg,
// which must be valid. refresh (positive) is how old a baseline may get;
// Run rebuilds every site once per refresh. A nil metrics is an
// unregistered set; a nil logger discards.
func New(conn driver.Conn, table string, cfg BuildConfig, refresh time.Duration, metrics *Metrics, logger *slog.Logger) *Baselines {
	if refresh <= 0 {
		panic(fmt.Sprintf("baseline.New: refresh must be positive, got %v", refresh))
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Baselines{
		conn: conn, table: table, cfg: cfg, refresh: refresh,
		metrics: metrics, logger: logger,
		sites:  make(map[string]*siteState),
		policy: func() *policy.Policy { return nil },
	}
}

// SetPolicy makes the builds take the policy from source (a
// policy.Watcher's Policy): a site's contamination, or the defaults', in
// place of -contamination, from its next build on. nil: none.
func (b *Baselines) SetPolicy(source func() *policy.Policy) {
	if source == nil {
		source = func() *policy.Policy { return nil }
	}
	b.policy = source
}

// Get returns the baseline that judges class for site, building it first
// if it is absent or a refresh period old. While a site has a good
// baseline, Get returns it even when a rebuild fails. A class with too
// little history of the site's own is judged by the baseline of the class
// pooled over every site (its Site is Pooled), and a class that even the
// pool has too little of, by the site's browser baseline (its Class says
// so): better judged against people than not at all. Without a baseline,
// the error matches ErrTooFewWindows when the site has too little history,
// ErrUnknownSite when it has none, and is the build's error otherwise. The
// Baseline is shared with every other caller: do not modify it.
func (b *Baselines) Get(ctx context.Context, site string, class features.Class) (*Baseline, error) {
	site = siteName(site)
	own, err := b.get(ctx, site, class)
	if own != nil || site == Pooled || !errors.Is(err, ErrTooFewWindows) {
		return own, err
	}
	if pooled, _ := b.get(ctx, Pooled, class); pooled != nil {
		return b.served(site, class, pooled)
	}
	if class != features.ClassBrowser {
		if browser, _ := b.Get(ctx, site, features.ClassBrowser); browser != nil {
			return b.served(site, class, browser)
		}
	}
	return nil, err
}

// served is bl, a baseline of another site or class, as it judges site's
// class: with site's known visitors, encoded once per version of bl.
func (b *Baselines) served(site string, class features.Class, bl *Baseline) (*Baseline, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.sites[site]
	if st == nil {
		return bl, nil
	}
	cs := &st.classes[class]
	if cs.served != nil && cs.servedFrom == bl && cs.servedKnown == st.known {
		return cs.served, nil
	}
	s, err := bl.For(site, class, st.known)
	if err != nil {
		return nil, err
	}
	cs.served, cs.servedFrom, cs.servedKnown = s, bl, st.known
	return s, nil
}

// get is Get without the pooled fallback.
func (b *Baselines) get(ctx context.Context, site string, class features.Class) (*Baseline, error) {
	if b.unknown(site) {
		b.metrics.UnknownSites.Inc()
		return nil, fmt.Errorf("%q: %w", site, ErrUnknownSite)
	}
	if good, err, ok := b.cached(site, class, b.refresh); ok {
		b.metrics.CacheHits.Inc()
		return good, err
	}
	b.metrics.CacheMisses.Inc()
	f, err := b.build(ctx, site, time.Time{}, b.refresh)
	if good := f.good[class]; good != nil {
		return good, nil
	}
	if err == nil {
		err = f.errs[class]
	}
	return nil, err
}

// DefaultRebuildLimit is how many rebuilds a minute the API accepts by
// default: enough for an operator replaying history into a few dozen
// sites at once, few enough that a client cannot keep ClickHouse busy.
const DefaultRebuildLimit = 60

// LimitRebuilds limits the rebuilds asked through the API to perMinute
// (all sites together, in bursts of as many), 0 for no limit. Call it
// before serving.
func (b *Baselines) LimitRebuilds(perMinute int) {
	b.rebuilds = nil
	if perMinute > 0 {
		b.rebuilds = rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute)
	}
}

// unknown reports whether site is known to have no history: the sites
// have been listed, and it was neither listed nor seen by the ingest
// since. Names that clients make up are answered from this, so that they
// cost ClickHouse nothing and the cache does not grow with them.
func (b *Baselines) unknown(site string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.listed && site != Pooled && b.sites[site] == nil
}

// Saw notes that the requests table has requests of sites now: the ingest
// calls it after each insert, so that a new site is served before the
// next listing.
func (b *Baselines) Saw(sites []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, site := range sites {
		if b.sites[site] == nil {
			b.sites[site] = pendingSite()
		}
	}
}

// pendingSite is the state of a site with history and no build yet.
func pendingSite() *siteState {
	st := &siteState{}
	for c := range st.classes {
		st.classes[c].status = StatusPending
	}
	return st
}

// Rebuild builds the baselines of site now, whatever their age, and
// returns the build's error: ErrTooFewWindows when no class got one, or
// the aggregation's (the last good baselines stay served). A build of the
// site already running is joined rather than repeated.
func (b *Baselines) Rebuild(ctx context.Context, site string) error {
	site = siteName(site)
	if b.unknown(site) {
		b.metrics.UnknownSites.Inc()
		return fmt.Errorf("%q: %w", site, ErrUnknownSite)
	}
	f, err := b.build(ctx, site, time.Time{}, 0)
	if err != nil {
		return err
	}
	for c := range f.built {
		if f.built[c] != nil {
			return nil
		}
	}
	return errors.Join(f.errs[:]...)
}

// Run rebuilds every site of the requests table once per refresh period,
// and the pooled baselines, one at a time so that ClickHouse gets a steady
// trickle of aggregations, until ctx is done. Errors are logged and kept
// in the sites' statuses.
func (b *Baselines) Run(ctx context.Context) {
	t := time.NewTicker(b.refresh)
	defer t.Stop()
	for {
		b.refreshAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (b *Baselines) refreshAll(ctx context.Context) {
	stats, err := b.listSites(ctx)
	if err != nil {
		if ctx.Err() == nil {
			b.logger.Warn("refreshing baselines: keeping the last good ones", "err", err)
		}
		return
	}
	start := time.Now()
	var newest time.Time
	for _, s := range stats {
		if ctx.Err() != nil {
			return
		}
		// Half a period: a site built on demand since the last tick is
		// not built again, and one built by the last tick (a period ago,
		// give or take the ticker's jitter) is.
		b.build(ctx, s.Site, s.Newest, b.refresh/2)
		if s.Newest.After(newest) {
			newest = s.Newest
		}
	}
	if len(stats) > 0 && ctx.Err() == nil {
		b.build(ctx, Pooled, newest, b.refresh/2)
	}
	b.logger.Debug("refreshed baselines", "sites", len(stats), "took", time.Since(start))
}

// Statuses lists every site of the requests table, and any other site
// that has a baseline, with its status, sorted by name; the pooled
// baselines come as the site Pooled. When the sites cannot be listed it
// returns what it knows with the error.
func (b *Baselines) Statuses(ctx context.Context) ([]SiteStatus, error) {
	_, err := b.listSites(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]SiteStatus, 0, len(b.sites))
	for site, st := range b.sites {
		out = append(out, b.report(site, st))
	}
	slices.SortFunc(out, func(x, y SiteStatus) int { return cmp.Compare(x.Site, y.Site) })
	return out, err
}

// Ready reports whether ClickHouse answers, for /readyz. Baselines are
// still served while it does not, but none can be built or refreshed.
func (b *Baselines) Ready(ctx context.Context) error {
	if err := b.conn.Ping(ctx); err != nil {
		b.metrics.ClickHouseErrors.WithLabelValues(opPing).Inc()
		return fmt.Errorf("clickhouse: %w", err)
	}
	return nil
}

// status returns the status of one site.
func (b *Baselines) status(site string) SiteStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.sites[site]
	if st == nil {
		st = pendingSite()
	}
	return b.report(site, st)
}

// report is the status of site; b.mu is held.
func (b *Baselines) report(site string, st *siteState) SiteStatus {
	s := SiteStatus{Site: site, Checked: st.checked, Requests: st.requests, Newest: st.newest}
	pooled := b.sites[Pooled]
	for c := range features.Class(features.NumClasses) {
		cs := &st.classes[c]
		r := ClassStatus{Class: c.String(), Status: cs.status}
		if cs.good != nil {
			r.Version, r.Windows, r.Suspects = cs.good.Version, cs.good.Windows, cs.good.Suspects
		}
		if cs.err != nil {
			r.Error = cs.err.Error()
		}
		if cs.good == nil && cs.status == StatusTooFew && site != Pooled {
			switch {
			case pooled != nil && pooled.classes[c].good != nil:
				r.ServedBy = Pooled + "/" + c.String()
			case c != features.ClassBrowser:
				r.ServedBy = "browser"
			}
		}
		s.Classes = append(s.Classes, r)
		if c == features.ClassBrowser {
			s.Status, s.Error = cs.status, r.Error
			if cs.good != nil {
				s.Version, s.Built, s.Windows, s.Suspects = cs.good.Version, cs.good.Built, cs.good.Windows, cs.good.Suspects
			}
		}
	}
	return s
}

// cached returns the site class's last build result, if the site's last
// build ended less than maxAge ago: the good baseline, else the build's
// error.
func (b *Baselines) cached(site string, class features.Class, maxAge time.Duration) (*Baseline, error, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.sites[site]
	if st == nil || st.checked.IsZero() {
		return nil, nil, false
	}
	cs := &st.classes[class]
	if cs.status == StatusError {
		maxAge = min(maxAge, errorRetry)
	}
	if time.Since(st.checked) >= maxAge {
		return nil, nil, false
	}
	if cs.good != nil {
		return cs.good, nil, true
	}
	return nil, cs.err, true
}

// flight is what one build gives all its waiters, per class.
type flight struct {
	good  [features.NumClasses]*Baseline // to serve: the new one, else the last good
	built [features.NumClasses]*Baseline // the new ones; nil where the build failed or was not needed
	errs  [features.NumClasses]error     // why a class has no new one
}

// build builds the baselines of site, unless its last build ended less
// than maxAge ago, or joins the build of site already running. newest is
// the site's newest request time, or zero to look it up. It returns what
// the build gave each class, and the build's error when the aggregation
// itself failed.
func (b *Baselines) build(ctx context.Context, site string, newest time.Time, maxAge time.Duration) (flight, error) {
	ch := b.flights.DoChan(site, func() (any, error) {
		// Checked again inside the flight: a build may have ended between
		// the caller's look at the cache and now.
		if f, ok := b.cachedFlight(site, maxAge); ok {
			return f, nil
		}
		// Detached from the caller, who may leave while others wait.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), buildTimeout)
		defer cancel()
		return b.buildSite(bctx, site, newest)
	})
	select {
	case <-ctx.Done():
		return flight{}, fmt.Errorf("waiting for the baselines of %q: %w", site, ctx.Err())
	case r := <-ch:
		f, _ := r.Val.(flight)
		return f, r.Err
	}
}

// cachedFlight is the cache's answer for every class of site, if its last
// build ended less than maxAge ago (a failed one errorRetry).
func (b *Baselines) cachedFlight(site string, maxAge time.Duration) (flight, bool) {
	var f flight
	for c := range features.Class(features.NumClasses) {
		good, err, ok := b.cached(site, c, maxAge)
		if !ok {
			return flight{}, false
		}
		f.good[c], f.built[c], f.errs[c] = good, good, err
	}
	return f, true
}

// buildSite builds and records the baselines of one site.
func (b *Baselines) buildSite(ctx context.Context, site string, newest time.Time) (flight, error) {
	start := time.Now()
	var (
		built *Built
		err   error
	)
	if newest.Unix() <= 0 { // not given, or the site has no request up to notAfter
		newest, err = b.newest(ctx, site)
	}
	if err == nil {
		cfg := b.cfg
		pol := b.policy()
		if c := pol.Contamination(site); c > 0 {
			cfg.HBOS.Contamination = c
		}
		cfg.Shadows = pol.Shadows()
		built, err = Build(ctx, ClickHouseWindows{b.conn, b.table}, cfg, site, newest)
		if err != nil {
			b.metrics.ClickHouseErrors.WithLabelValues(opBuild).Inc()
		}
		if built != nil {
			for _, serr := range built.ShadowErrs {
				b.logger.Warn("a candidate model left out", "site", site, "err", serr)
			}
		}
	}
	took := time.Since(start)
	b.metrics.BuildSeconds.Observe(took.Seconds())

	var f flight
	b.mu.Lock()
	st := b.sites[site]
	if st == nil && errors.Is(err, ErrUnknownSite) {
		// Nothing to remember of a name without history.
		b.mu.Unlock()
		for c := range f.errs {
			f.errs[c] = err
		}
		b.metrics.Builds.WithLabelValues(resultTooFew).Inc()
		return f, err
	}
	if st == nil {
		st = &siteState{}
		b.sites[site] = st
	}
	st.checked = time.Now()
	if built != nil && built.Known != nil {
		st.known = built.Known
	}
	var prev [features.NumClasses]*Baseline
	anyOK, anyTooFew := false, false
	for c := range st.classes {
		cs := &st.classes[c]
		prev[c] = cs.good
		cerr := err
		if built != nil {
			f.built[c], cerr = built.Baselines[c], built.Errs[c]
		}
		cs.err = cerr
		switch {
		case cerr == nil:
			cs.status, cs.good = StatusOK, f.built[c]
			anyOK = true
		case errors.Is(cerr, ErrTooFewWindows) || errors.Is(cerr, ErrUnknownSite):
			cs.status = StatusTooFew
			anyTooFew = true
		default:
			cs.status = StatusError
		}
		f.good[c], f.errs[c] = cs.good, cerr
	}
	b.mu.Unlock()

	log := b.logger.With("site", site, "took", took)
	switch {
	case anyOK:
		b.metrics.Builds.WithLabelValues(resultOK).Inc()
		for c, nb := range f.built {
			if nb == nil {
				continue
			}
			// A new version is news; the same one again every period is not.
			level := slog.LevelDebug
			if prev[c] == nil || prev[c].Version != nb.Version {
				level = slog.LevelInfo
			}
			log.Log(ctx, level, "baseline built", "class", nb.Class, "version", nb.Version, "windows", nb.Windows,
				"suspects", nb.Suspects, "trimmed_windows", nb.Trimmed)
		}
	case anyTooFew && (err == nil || errors.Is(err, ErrUnknownSite)):
		b.metrics.Builds.WithLabelValues(resultTooFew).Inc()
		log.Debug("no baseline", "reason", errors.Join(f.errs[:]...))
	default:
		b.metrics.Builds.WithLabelValues(resultError).Inc()
		log.Warn("baseline build failed", "err", errors.Join(err, errors.Join(f.errs[:]...)))
	}
	return f, err
}

// newest returns the time of the site's newest request (of any site for
// Pooled) no later than BuildConfig.MaxAhead past the clock. A site without
// any is ErrUnknownSite. It reads one site's range of the primary key, not
// the whole table as chstore.Sites does, so that a build on demand stays
// as cheap as the aggregation.
func (b *Baselines) newest(ctx context.Context, site string) (time.Time, error) {
	var t time.Time
	var err error
	if site == Pooled {
		err = b.conn.QueryRow(ctx, "SELECT max(time) FROM "+b.table+" WHERE time <= ?", b.notAfter()).Scan(&t)
	} else {
		err = b.conn.QueryRow(ctx, "SELECT max(time) FROM "+b.table+" WHERE site = ? AND time <= ?", site, b.notAfter()).Scan(&t)
	}
	if err != nil {
		b.metrics.ClickHouseErrors.WithLabelValues(opNewest).Inc()
		return t, fmt.Errorf("finding the newest request of %q: %w", site, err)
	}
	if t.Unix() <= 0 { // max() of no rows is the zero DateTime
		return t, fmt.Errorf("%q: %w", site, ErrUnknownSite)
	}
	return t, nil
}

// listSites lists the sites of the requests table and notes them in the
// cache: new ones as pending, and it forgets sites that have neither
// requests nor a baseline (names asked for that do not exist), so that the
// cache does not grow with every name a client tries.
func (b *Baselines) listSites(ctx context.Context) ([]chstore.SiteStats, error) {
	stats, err := chstore.Sites(ctx, b.conn, b.table, b.notAfter())
	if err != nil {
		b.metrics.ClickHouseErrors.WithLabelValues(opListSites).Inc()
		return nil, err
	}
	listed := make(map[string]bool, len(stats))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range stats {
		listed[s.Site] = true
		st := b.sites[s.Site]
		if st == nil {
			st = pendingSite()
			b.sites[s.Site] = st
		}
		st.requests, st.newest = s.Requests, s.Newest
	}
	b.listed = true
	for site, st := range b.sites {
		if !listed[site] && site != Pooled && !st.hasGood() {
			delete(b.sites, site)
		}
	}
	return stats, nil
}

// hasGood reports whether any class of the site has a baseline.
func (st *siteState) hasGood() bool {
	for c := range st.classes {
		if st.classes[c].good != nil {
			return true
		}
	}
	return false
}

// notAfter is the newest request time that anchors a build.
func (b *Baselines) notAfter() time.Time { return time.Now().Add(b.cfg.MaxAhead).UTC() }

// siteName lower-cases ASCII letters only, as pkg/features (and
// ClickHouse's lower()) do, so a site asked for in any case is the one the
// detectors and the requests table name.
func siteName(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			buf := []byte(s)
			for j := i; j < len(buf); j++ {
				if 'A' <= buf[j] && buf[j] <= 'Z' {
					buf[j] += 'a' - 'A'
				}
			}
			return string(buf)
		}
	}
	return s
}
