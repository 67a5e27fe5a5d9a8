// Package detector holds the detector service's parts: what cmd/detector
// wires together between the requests topic and the scores topic.
package detector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/model"
)

// DefaultRevalidate is the default revalidation period. The baseline
// service rebuilds a site every 10 minutes by default; asking every minute
// picks a new baseline up soon after, at the cost of one 304 per site.
const DefaultRevalidate = time.Minute

const (
	// fetchTimeout bounds one request to the baseline service. Its first
	// answer for a site may wait for a build (a ClickHouse aggregation);
	// a build outlasting this keeps running there and a retry collects it.
	fetchTimeout = 30 * time.Second
	// retryBase is the first wait after a failed fetch. It doubles with
	// every further failure, up to the revalidation period, so that a
	// down service is asked about each site a few times a period rather
	// than once per event.
	retryBase = time.Second
	// maxBaselineSize bounds what is read of a 200 answer. Real models
	// are a few KiB; this only stops a broken server from exhausting
	// memory.
	maxBaselineSize = 16 << 20
)

// ErrIncompatible means a fetched model does not score the features the
// detector computes: other names, another order, or another count.
var ErrIncompatible = errors.New("baseline incompatible with the detector's features")

// Stats are cumulative counts of a Baselines, for export as counters.
type Stats struct {
	Fetches      uint64 // requests sent to the baseline service
	NotModified  uint64 // 304 answers: the cached model is current
	Errors       uint64 // failed fetches: network, 5xx, bad body, incompatible
	Incompatible uint64 // fetched models rejected as ErrIncompatible
	Unscored     uint64 // Gets that found no baseline for the site
	Unlisted     uint64 // Gets of sites the service does not list: no fetch, no entry
	Listings     uint64 // requests for the list of sites
}

// Baselines lazily fetches the baseline of each site and traffic class
// from the baseline service (internal/baseline's API) and caches it, so
// that scoring costs one map lookup. A cached answer is revalidated by ETag once it is a revalidation
// period old; until the new answer arrives, callers keep getting the old
// one without waiting. Only the first Get of a site waits for the network.
// A failed fetch keeps the last good model and is retried after a backoff;
// a site without a baseline (404) is remembered as such for a period.
//
// Only the sites the service lists (GET /v1/sites, the sites of its
// history, asked again every revalidation period) are fetched and cached:
// a site name that requests carry but the service has no history of is
// not scored, costs no request and takes no memory, however many such
// names arrive (a Host header under the attacker's control, say). Until
// the list can be had (the service is down, or does not serve it), every
// site is asked for, as if listed.
//
// Site names must be lower case already, as pkg/features decodes them: the
// service matches names in lower case, and a second spelling would only
// cost a second cache entry. Close stops background fetches.
type Baselines struct {
	endpoint   string // base URL without a trailing slash
	token      string
	client     *http.Client
	revalidate time.Duration
	names      []string
	logger     *slog.Logger
	now        func() time.Time // time.Now; replaced by tests

	// sites maps a siteClass to its *entry. Entries are never changed,
	// only replaced, so Get reads one without a lock; sync.Map suits keys
	// that are written once a period and read on every event.
	sites sync.Map
	// first joins the callers waiting for a site class's first answer,
	// and for the first list of sites.
	first singleflight.Group
	// listing is the latest list of sites, nil before the first answer;
	// replaced, never changed. listRefreshing is set by the one Get that
	// starts its renewal.
	listing        atomic.Pointer[listing]
	listRefreshing atomic.Bool

	// ctx ends background fetches on Close; wg waits for them.
	ctx    context.Context
	cancel context.CancelFunc
	lifeMu sync.Mutex // orders wg.Add after closed against Close's wg.Wait
	closed bool
	wg     sync.WaitGroup

	fetches, notModified, errors, incompatible, unscored, unlisted, listings atomic.Uint64
}

// listing is what the service said of its sites.
type listing struct {
	sites    map[string]struct{} // nil: no list to go by, every site is asked for
	expires  time.Time
	failures int
}

// siteClass is what a baseline is of: a site's traffic class.
type siteClass struct {
	site  string
	class features.Class
}

func (k siteClass) String() string { return k.site + "/" + k.class.String() }

// entry is what is known of one site class. A nil model means the site is not
// scored: it has no baseline (404), or no fetch has succeeded yet.
type entry struct {
	model    *model.Baseline
	version  string    // the ETag's value, without quotes
	etag     string    // the ETag as received, sent back in If-None-Match
	expires  time.Time // when to ask the service again
	failures int       // consecutive failed fetches, for the backoff

	// refreshing is set by the one Get that starts this entry's
	// revalidation; the entry that replaces it starts clear.
	refreshing atomic.Bool
}

// NewBaselines returns a cache of the baselines served at baseURL (the
// -baseline-url, validated by service.BaselineClientConfig), sending token
// as a bearer token when it is not empty. revalidate (positive) is how long
// an answer is used before it is checked again. featureNames are the
// features the detector computes, in order (features.Set.Names): a model
// fitted on others is rejected. A nil client is a default http.Client; a
// nil logger discards.
func NewBaselines(baseURL, token string, client *http.Client, revalidate time.Duration, featureNames []string, logger *slog.Logger) *Baselines {
	if revalidate <= 0 {
		panic(fmt.Sprintf("detector.NewBaselines: revalidate must be positive, got %v", revalidate))
	}
	if client == nil {
		client = &http.Client{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Baselines{
		endpoint:   strings.TrimRight(baseURL, "/"),
		token:      token,
		client:     client,
		revalidate: revalidate,
		names:      slices.Clone(featureNames),
		logger:     logger,
		now:        time.Now,
		ctx:        ctx,
		cancel:     cancel,
	}
}

// Get returns the model of site's traffic class and its version, or ok
// false when the class is not to be scored: it has no baseline, or none
// could be fetched yet. Only the first Get of a site class waits for the
// baseline service, and at most until ctx is done; concurrent first Gets
// share one fetch. Later Gets never wait: a stale entry is returned while
// one background fetch revalidates it. The model is shared: do not modify
// it.
func (b *Baselines) Get(ctx context.Context, site string, class features.Class) (bl *model.Baseline, version string, ok bool) {
	k := siteClass{site, class}
	var e *entry
	if v, found := b.sites.Load(k); found {
		e = v.(*entry)
		// Load first so that readers of a stale entry do not all write
		// the same cache line.
		if !b.now().Before(e.expires) && !e.refreshing.Load() && e.refreshing.CompareAndSwap(false, true) {
			b.background(k)
		}
	} else {
		if !b.listed(ctx, site) {
			b.unlisted.Add(1)
			b.unscored.Add(1)
			return nil, "", false
		}
		e = b.waitFirst(ctx, k)
	}
	if e == nil || e.model == nil {
		b.unscored.Add(1)
		return nil, "", false
	}
	return e.model, e.version, true
}

// Stats returns the counts so far.
func (b *Baselines) Stats() Stats {
	return Stats{
		Fetches:      b.fetches.Load(),
		NotModified:  b.notModified.Load(),
		Errors:       b.errors.Load(),
		Incompatible: b.incompatible.Load(),
		Unscored:     b.unscored.Load(),
		Unlisted:     b.unlisted.Load(),
		Listings:     b.listings.Load(),
	}
}

// listed reports whether the service lists site, or gives no list to go
// by. Only the first call waits for the list, at most until ctx is done;
// later ones renew it in the background once it is a period old.
func (b *Baselines) listed(ctx context.Context, site string) bool {
	l := b.listing.Load()
	if l == nil {
		ch := b.first.DoChan("\x00sites", func() (any, error) {
			if l := b.listing.Load(); l != nil {
				return l, nil
			}
			if !b.begin() {
				return (*listing)(nil), nil
			}
			defer b.wg.Done()
			return b.refreshListing(), nil
		})
		select {
		case r := <-ch:
			l = r.Val.(*listing)
		case <-ctx.Done():
		}
	} else if !b.now().Before(l.expires) && !b.listRefreshing.Load() && b.listRefreshing.CompareAndSwap(false, true) {
		if b.begin() {
			go func() {
				defer b.wg.Done()
				b.refreshListing()
				b.listRefreshing.Store(false)
			}()
		} else {
			b.listRefreshing.Store(false)
		}
	}
	if l == nil || l.sites == nil {
		return true
	}
	_, ok := l.sites[site]
	return ok
}

// refreshListing asks the service for its sites, stores what the answer
// means and returns it. A failure keeps the last list, and is retried
// after a backoff.
func (b *Baselines) refreshListing() *listing {
	old := b.listing.Load()
	if old == nil {
		old = &listing{}
	}
	ctx, cancel := context.WithTimeout(b.ctx, fetchTimeout)
	defer cancel()
	sites, err := b.fetchSites(ctx)
	now := b.now()
	next := &listing{sites: sites, expires: now.Add(b.revalidate)}
	if err != nil {
		next.sites, next.failures = old.sites, old.failures+1
		next.expires = now.Add(b.backoff(next.failures))
		level := slog.LevelDebug
		if next.failures == 1 {
			level = slog.LevelWarn
		}
		b.logger.Log(ctx, level, "listing the baseline service's sites; sites not listed before are asked for one by one meanwhile",
			"failures", next.failures, "retry_in", b.backoff(next.failures), "err", err)
	}
	b.listing.Store(next)
	return next
}

// fetchSites sends GET /v1/sites and returns the names it lists.
func (b *Baselines) fetchSites(ctx context.Context) (map[string]struct{}, error) {
	u := b.endpoint + "/v1/sites"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	b.listings.Add(1)
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	defer io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s%s", u, resp.Status, apiErrorText(resp.Body))
	}
	var list []struct {
		Site string `json:"site"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBaselineSize)).Decode(&list); err != nil {
		return nil, fmt.Errorf("decoding GET %s: %w", u, err)
	}
	sites := make(map[string]struct{}, len(list))
	for _, s := range list {
		sites[s.Site] = struct{}{}
	}
	return sites, nil
}

// Close cancels the fetches under way and waits for them to end. Get keeps
// answering from the cache afterwards, without fetching.
func (b *Baselines) Close() {
	b.lifeMu.Lock()
	b.closed = true
	b.lifeMu.Unlock()
	b.cancel()
	b.wg.Wait()
}

// begin counts a fetch in wg unless the cache is closed.
func (b *Baselines) begin() bool {
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	return true
}

// background revalidates k without making anyone wait.
func (b *Baselines) background(k siteClass) {
	if !b.begin() {
		return
	}
	go func() {
		defer b.wg.Done()
		b.refresh(k)
	}()
}

// waitFirst fetches a site class seen for the first time, or joins the
// fetch already under way, and waits for it until ctx is done. The fetch
// runs detached from ctx: other callers may be waiting for it, and its
// answer is worth caching even when this caller has given up.
func (b *Baselines) waitFirst(ctx context.Context, k siteClass) *entry {
	ch := b.first.DoChan(k.String(), func() (any, error) {
		// A caller that missed the entry just before it was stored
		// must not fetch it again.
		if v, ok := b.sites.Load(k); ok {
			return v.(*entry), nil
		}
		if !b.begin() {
			return (*entry)(nil), nil
		}
		defer b.wg.Done()
		return b.refresh(k), nil
	})
	select {
	case r := <-ch:
		return r.Val.(*entry)
	case <-ctx.Done():
		return nil
	}
}

// refresh asks the service for k's baseline, stores what the answer means
// for the cache and returns it. Only one refresh of a site class runs at a
// time: the first one under singleflight, later ones under the entry's
// refreshing flag, and a later one needs the entry the earlier one stored.
func (b *Baselines) refresh(k siteClass) *entry {
	old := &entry{}
	if v, ok := b.sites.Load(k); ok {
		old = v.(*entry)
	}
	site := k.String()
	ctx, cancel := context.WithTimeout(b.ctx, fetchTimeout)
	defer cancel()
	fetched, etag, status, err := b.fetch(ctx, k, old.etag)
	now := b.now()
	next := &entry{model: old.model, version: old.version, etag: old.etag, expires: now.Add(b.revalidate)}
	switch {
	case errors.Is(err, ErrIncompatible):
		// Asking again soon would fetch the same model: the detector and
		// the baseline service disagree on the features until one of them
		// is reconfigured. Keep the last good model meanwhile.
		b.errors.Add(1)
		b.incompatible.Add(1)
		b.logger.Error("rejecting baseline", "site", site, "version", etagVersion(etag), "err", err)
	case err != nil:
		b.errors.Add(1)
		next.failures = old.failures + 1
		next.expires = now.Add(b.backoff(next.failures))
		// The first failure is news; the retries that follow are not, and
		// during an outage there is one per site.
		level := slog.LevelDebug
		if next.failures == 1 {
			level = slog.LevelWarn
		}
		b.logger.Log(ctx, level, "fetching baseline", "site", site, "failures", next.failures,
			"retry_in", b.backoff(next.failures), "keeping_version", old.version, "err", err)
	case status == http.StatusNotModified:
		b.notModified.Add(1)
	case status == http.StatusNotFound:
		// The service is the authority on whether a site has a baseline
		// (it keeps serving its last good one while builds fail), so a
		// 404 ends scoring with a model it no longer vouches for.
		if old.model != nil {
			b.logger.Info("site no longer has a baseline", "site", site, "version", old.version)
		}
		next.model, next.version, next.etag = nil, "", ""
	default:
		next.model, next.version, next.etag = fetched, etagVersion(etag), etag
		b.logger.Debug("fetched baseline", "site", site, "version", next.version, "previous", old.version)
	}
	if err == nil && old.failures > 0 {
		b.logger.Info("baseline service answers again", "site", site, "after_failures", old.failures)
	}
	b.sites.Store(k, next)
	return next
}

// backoff is the wait after the given number of consecutive failures.
func (b *Baselines) backoff(failures int) time.Duration {
	d := retryBase
	for i := 1; i < failures && d < b.revalidate; i++ {
		d *= 2
	}
	return min(d, b.revalidate)
}

// fetch sends one conditional GET for k's baseline. It returns the
// decoded model on 200, nothing else on 304 and 404, and an error for any
// other answer or an unusable model.
func (b *Baselines) fetch(ctx context.Context, k siteClass, etag string) (bl *model.Baseline, newETag string, status int, err error) {
	u := b.endpoint + "/v1/sites/" + url.PathEscape(k.site) + "/baseline?class=" + k.class.String()
	site := k.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", 0, fmt.Errorf("building request: %w", err)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	b.fetches.Add(1)
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, "", 0, err // already names the method and URL
	}
	defer resp.Body.Close()
	// Drain what is left of small answers so the connection is reused.
	defer io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))

	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified, http.StatusNotFound:
		return nil, "", resp.StatusCode, nil
	default:
		return nil, "", resp.StatusCode, fmt.Errorf("GET %s: %s%s", u, resp.Status, apiErrorText(resp.Body))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBaselineSize+1))
	if err != nil {
		return nil, "", resp.StatusCode, fmt.Errorf("reading baseline of %q: %w", site, err)
	}
	if len(body) > maxBaselineSize {
		return nil, "", resp.StatusCode, fmt.Errorf("baseline of %q is larger than %d bytes", site, maxBaselineSize)
	}
	bl = new(model.Baseline)
	if err := bl.UnmarshalBinary(body); err != nil {
		return nil, "", resp.StatusCode, fmt.Errorf("decoding baseline of %q: %w", site, err)
	}
	newETag = resp.Header.Get("ETag")
	if names := bl.Model.Names(); !slices.Equal(names, b.names) {
		return nil, newETag, resp.StatusCode, fmt.Errorf("%w: model has %d features %q, detector computes %d %q",
			ErrIncompatible, bl.Model.Features(), names, len(b.names), b.names)
	}
	if dropped := bl.IndexShadows(b.names); len(dropped) > 0 {
		b.logger.Warn("candidate models not scored: they need features this detector does not compute", "site", site, "models", dropped)
	}
	return bl, newETag, resp.StatusCode, nil
}

// etagVersion is the baseline version an ETag names: "v1" and W/"v1" are v1.
func etagVersion(etag string) string {
	return strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)
}

// apiErrorText is ": " and the "error" field of the service's JSON error
// body, or nothing when the body is not one.
func apiErrorText(r io.Reader) string {
	var body struct {
		Error string `json:"error"`
	}
	if json.NewDecoder(io.LimitReader(r, 64<<10)).Decode(&body) != nil || body.Error == "" {
		return ""
	}
	return ": " + body.Error
}
