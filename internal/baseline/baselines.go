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

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/pkg/hbos"
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

// Site statuses: the result of a site's last build.
const (
	StatusOK      = "ok"
	StatusTooFew  = "too-few" // fewer visitor-windows than MinWindows
	StatusError   = "error"
	StatusPending = "pending" // in the requests table, not built yet
)

// SiteStatus is what the service knows of one site.
type SiteStatus struct {
	Site string `json:"site"`
	// Status is the result of the last build: ok, too-few, error, or
	// pending before the first one.
	Status string `json:"status"`
	// Version, Built and Windows describe the baseline served: the last
	// good one, which a failed build does not replace. They are empty
	// while the site has none.
	Version string    `json:"version,omitempty"`
	Built   time.Time `json:"built,omitzero"`
	Windows int       `json:"windows,omitempty"` // visitor-windows of its history
	// Suspects are the visitors of its history left out as bots.
	Suspects int `json:"suspects,omitempty"`
	// Checked is when the last build ended, and Error why it failed.
	Checked time.Time `json:"checked,omitzero"`
	Error   string    `json:"error,omitempty"`
	// Requests and Newest are what the requests table held for the site
	// when the sites were last listed.
	Requests uint64    `json:"requests,omitempty"`
	Newest   time.Time `json:"newest,omitzero"`
}

// siteState is the cache entry of one site.
type siteState struct {
	good     *Baseline // the last good baseline, nil before the first
	status   string
	err      error     // of the last build
	checked  time.Time // when the last build ended; zero before
	requests uint64
	newest   time.Time
}

// Baselines builds, caches and shares per-site baselines. However many
// detector replicas ask, a site costs ClickHouse at most one aggregation
// per refresh period: a cached baseline is served until it is a period old,
// and concurrent askers of a stale or missing one wait for a single build.
// A failed build never replaces a good baseline, so the last good ones
// keep being served while ClickHouse is down.
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
		sites: make(map[string]*siteState),
	}
}

// Get returns the baseline of site, building it first if it is absent or a
// refresh period old. While a site has a good baseline, Get returns it even
// when a rebuild fails. Without one, the error matches ErrTooFewWindows
// when the site has too little history, and is the build's error otherwise.
// The Baseline is shared with every other caller: do not modify it.
func (b *Baselines) Get(ctx context.Context, site string) (*Baseline, error) {
	site = siteName(site)
	if good, err, ok := b.cached(site, b.refresh); ok {
		b.metrics.CacheHits.Inc()
		return good, err
	}
	b.metrics.CacheMisses.Inc()
	good, _, err := b.build(ctx, site, time.Time{}, b.refresh)
	if good != nil {
		return good, nil
	}
	return nil, err
}

// Rebuild builds the baseline of site now, whatever its age, and returns
// it, or the build's error (the last good baseline stays served). A build
// of the site already running is joined rather than repeated.
func (b *Baselines) Rebuild(ctx context.Context, site string) (*Baseline, error) {
	site = siteName(site)
	_, built, err := b.build(ctx, site, time.Time{}, 0)
	return built, err
}

// Run rebuilds every site of the requests table once per refresh period,
// one at a time so that ClickHouse gets a steady trickle of aggregations,
// until ctx is done. Errors are logged and kept in the sites' statuses.
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
	for _, s := range stats {
		if ctx.Err() != nil {
			return
		}
		// Half a period: a site built on demand since the last tick is
		// not built again, and one built by the last tick (a period ago,
		// give or take the ticker's jitter) is.
		b.build(ctx, s.Site, s.Newest, b.refresh/2)
	}
	b.logger.Debug("refreshed baselines", "sites", len(stats), "took", time.Since(start))
}

// Statuses lists every site of the requests table, and any other site
// that has a baseline, with its status, sorted by name. When the sites
// cannot be listed it returns what it knows with the error.
func (b *Baselines) Statuses(ctx context.Context) ([]SiteStatus, error) {
	_, err := b.listSites(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]SiteStatus, 0, len(b.sites))
	for site, st := range b.sites {
		out = append(out, st.report(site))
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
	if st := b.sites[site]; st != nil {
		return st.report(site)
	}
	return SiteStatus{Site: site, Status: StatusPending}
}

func (st *siteState) report(site string) SiteStatus {
	s := SiteStatus{Site: site, Status: st.status, Checked: st.checked, Requests: st.requests, Newest: st.newest}
	if st.good != nil {
		s.Version, s.Built, s.Windows, s.Suspects = st.good.Version, st.good.Built, st.good.Windows, st.good.Suspects
	}
	if st.err != nil {
		s.Error = st.err.Error()
	}
	return s
}

// cached returns the site's last build result, if it ended less than
// maxAge ago: the good baseline, else the build's error.
func (b *Baselines) cached(site string, maxAge time.Duration) (*Baseline, error, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.sites[site]
	if st == nil || st.checked.IsZero() {
		return nil, nil, false
	}
	if st.status == StatusError {
		maxAge = min(maxAge, errorRetry)
	}
	if time.Since(st.checked) >= maxAge {
		return nil, nil, false
	}
	if st.good != nil {
		return st.good, nil, true
	}
	return nil, st.err, true
}

// flight is what one build gives all its waiters.
type flight struct {
	good  *Baseline // the baseline to serve: the new one, else the last good
	built *Baseline // the new one; nil if the build failed or was not needed
}

// build builds the baseline of site, unless its last build ended less than
// maxAge ago, or joins the build of site already running. newest is the
// site's newest request time, or zero to look it up. It returns the
// baseline to serve, the one built, and the build's error.
func (b *Baselines) build(ctx context.Context, site string, newest time.Time, maxAge time.Duration) (good, built *Baseline, err error) {
	ch := b.flights.DoChan(site, func() (any, error) {
		// Checked again inside the flight: a build may have ended between
		// the caller's look at the cache and now.
		if good, err, ok := b.cached(site, maxAge); ok {
			return flight{good: good, built: good}, err
		}
		// Detached from the caller, who may leave while others wait.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), buildTimeout)
		defer cancel()
		return b.buildSite(bctx, site, newest)
	})
	select {
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("waiting for the baseline of %q: %w", site, ctx.Err())
	case r := <-ch:
		f, _ := r.Val.(flight)
		return f.good, f.built, r.Err
	}
}

// buildSite builds and records one baseline.
func (b *Baselines) buildSite(ctx context.Context, site string, newest time.Time) (flight, error) {
	start := time.Now()
	var (
		nb  *Baseline
		err error
	)
	if newest.Unix() <= 0 { // not given, or the site has no request up to notAfter
		newest, err = b.newest(ctx, site)
	}
	if err == nil {
		nb, err = Build(ctx, ClickHouseWindows{b.conn, b.table}, b.cfg, site, newest)
		if err != nil && fromClickHouse(err) {
			b.metrics.ClickHouseErrors.WithLabelValues(opBuild).Inc()
		}
	}
	took := time.Since(start)
	b.metrics.BuildSeconds.Observe(took.Seconds())

	b.mu.Lock()
	st := b.sites[site]
	if st == nil {
		st = &siteState{}
		b.sites[site] = st
	}
	prev := st.good
	st.checked, st.err = time.Now(), err
	switch {
	case err == nil:
		st.status, st.good = StatusOK, nb
	case errors.Is(err, ErrTooFewWindows):
		st.status = StatusTooFew
	default:
		st.status = StatusError
	}
	good, status := st.good, st.status
	b.mu.Unlock()

	log := b.logger.With("site", site, "took", took)
	switch status {
	case StatusOK:
		b.metrics.Builds.WithLabelValues(resultOK).Inc()
		// A new version is news; the same one again every period is not.
		level := slog.LevelDebug
		if prev == nil || prev.Version != nb.Version {
			level = slog.LevelInfo
		}
		log.Log(ctx, level, "baseline built", "version", nb.Version, "windows", nb.Windows, "suspects", nb.Suspects, "trimmed_windows", nb.Trimmed)
	case StatusTooFew:
		b.metrics.Builds.WithLabelValues(resultTooFew).Inc()
		log.Debug("no baseline", "reason", err)
	default:
		b.metrics.Builds.WithLabelValues(resultError).Inc()
		log.Warn("baseline build failed", "err", err, "serving", versionOf(good))
	}
	return flight{good: good, built: nb}, err
}

// newest returns the time of the site's newest request no later than
// BuildConfig.MaxAhead past the clock, or now for a site without any
// (whose build then finds too few windows). It reads one site's range of
// the primary key, not the whole table as chstore.Sites does, so that a
// build on demand stays as cheap as the aggregation.
func (b *Baselines) newest(ctx context.Context, site string) (time.Time, error) {
	var t time.Time
	err := b.conn.QueryRow(ctx, "SELECT max(time) FROM "+b.table+" WHERE site = ? AND time <= ?", site, b.notAfter()).Scan(&t)
	if err != nil {
		b.metrics.ClickHouseErrors.WithLabelValues(opNewest).Inc()
		return t, fmt.Errorf("finding the newest request of %q: %w", site, err)
	}
	if t.Unix() <= 0 { // max() of no rows is the zero DateTime
		t = time.Now()
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
			st = &siteState{status: StatusPending}
			b.sites[s.Site] = st
		}
		st.requests, st.newest = s.Requests, s.Newest
	}
	for site, st := range b.sites {
		if !listed[site] && st.good == nil {
			delete(b.sites, site)
		}
	}
	return stats, nil
}

// notAfter is the newest request time that anchors a build.
func (b *Baselines) notAfter() time.Time { return time.Now().Add(b.cfg.MaxAhead).UTC() }

// fromClickHouse tells a build that failed in ClickHouse from one that
// failed fitting the model.
func fromClickHouse(err error) bool {
	for _, e := range []error{ErrTooFewWindows, hbos.ErrConfig, hbos.ErrEmpty, hbos.ErrRagged, hbos.ErrNonFinite, hbos.ErrWidth, hbos.ErrEncoding} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

func versionOf(b *Baseline) string {
	if b == nil {
		return "none"
	}
	return b.Version
}

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
