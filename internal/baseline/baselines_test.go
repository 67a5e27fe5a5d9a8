package baseline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/model"
)

// smallBuildConfig builds from small synthetic sites quickly: 5-minute
// windows, at least 20 of them.
func smallBuildConfig() BuildConfig {
	cfg := DefaultBuildConfig()
	cfg.Window = features.Window{Buckets: 5, Width: time.Minute}
	cfg.MinWindows = 20
	return cfg
}

// tinySite has too few visitor-windows for smallBuildConfig.
const tinySite = "tiny.example"

// loadSiteTraffic creates the requests table and fills it with n sites of
// 30 minutes of traffic each (a few hundred visitor-windows, each site its
// own), plus tinySite with three requests. It returns the n site names.
func loadSiteTraffic(ctx context.Context, t *testing.T, conn driver.Conn, n int) []string {
	t.Helper()
	if err := chstore.CreateRequests(ctx, conn, "requests", ""); err != nil {
		t.Fatal(err)
	}
	w := smallBuildConfig().Window
	var reqs []traffic.Request
	sites := make([]string, n)
	for i := range sites {
		sites[i] = fmt.Sprintf("site-%02d.example", i)
		gen := traffic.DefaultConfig()
		gen.Sites, gen.Visitors, gen.Events, gen.Duration = 1, 200, 1000, 30*time.Minute
		gen.Seed = uint64(i + 1)
		site, err := traffic.Generate(gen)
		if err != nil {
			t.Fatal(err)
		}
		for j := range site {
			site[j].Site = sites[i]
		}
		reqs = append(reqs, site...)
	}
	tiny := reqs[:3:3]
	tiny = append([]traffic.Request(nil), tiny...)
	for j := range tiny {
		tiny[j].Site = tinySite
	}
	reqs = append(reqs, tiny...)
	if err := chstore.InsertRequests(ctx, conn, "requests", requestRows(t, w, reqs)); err != nil {
		t.Fatal(err)
	}
	return sites
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventually waits up to timeout for cond, polling.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func builds(m *Metrics, result string) int {
	return int(testutil.ToFloat64(m.Builds.WithLabelValues(result)))
}

// TestBaselinesShareBuilds is the point of the baseline service: any
// number of detector replicas asking for the same sites at once cost
// ClickHouse one build per site, and Run keeps every site fresh once per
// period.
func TestBaselinesShareBuilds(t *testing.T) {
	t.Parallel()
	conn := openClickHouse(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sites := loadSiteTraffic(ctx, t, conn, 20)

	t.Run("concurrent clients", func(t *testing.T) {
		m := NewMetrics(prometheus.NewRegistry())
		b := New(conn, "requests", smallBuildConfig(), time.Hour, m, testLogger(t))
		srv := httptest.NewServer(b.Handler())
		t.Cleanup(srv.Close)

		// Three replicas ask for every site at the same moment.
		const clients = 3
		versions := make([][]string, clients)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for c := range clients {
			versions[c] = make([]string, len(sites))
			client := &http.Client{Timeout: time.Minute}
			for i, site := range sites {
				wg.Go(func() {
					<-start
					resp, err := client.Get(srv.URL + "/v1/sites/" + site + "/baseline")
					if err != nil {
						t.Error(err)
						return
					}
					defer resp.Body.Close()
					body, err := io.ReadAll(resp.Body)
					if err != nil || resp.StatusCode != http.StatusOK {
						t.Errorf("client %d, %s: %s %q %v", c, site, resp.Status, body, err)
						return
					}
					var m model.Baseline
					if err := m.UnmarshalBinary(body); err != nil {
						t.Errorf("client %d, %s: %v", c, site, err)
					}
					versions[c][i] = resp.Header.Get("ETag")
				})
			}
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		if got := builds(m, resultOK); got != len(sites) || builds(m, resultTooFew)+builds(m, resultError) != 0 {
			t.Errorf("%d ok builds (%d too few, %d failed) for %d sites, want one each",
				got, builds(m, resultTooFew), builds(m, resultError), len(sites))
		}
		hits, misses := testutil.ToFloat64(m.CacheHits), testutil.ToFloat64(m.CacheMisses)
		if hits+misses != clients*float64(len(sites)) || misses < float64(len(sites)) {
			t.Errorf("%v hits and %v misses for %d requests", hits, misses, clients*len(sites))
		}
		for c := 1; c < clients; c++ {
			for i := range sites {
				if versions[c][i] != versions[0][i] {
					t.Errorf("%s: client %d got %s, client 0 %s", sites[i], c, versions[c][i], versions[0][i])
				}
			}
		}

		// Later askers are served from the cache.
		for _, site := range sites {
			if _, err := b.Get(ctx, site, features.ClassBrowser); err != nil {
				t.Fatal(err)
			}
		}
		if got := builds(m, resultOK); got != len(sites) {
			t.Errorf("%d builds after asking again, want %d", got, len(sites))
		}
	})

	t.Run("Run", func(t *testing.T) {
		m := NewMetrics(nil)
		const refresh = 2 * time.Second
		b := New(conn, "requests", smallBuildConfig(), refresh, m, testLogger(t))
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			b.Run(runCtx)
		}()
		t.Cleanup(func() {
			stop()
			<-done
		})
		all := len(sites) + 2 // tinySite and the pool too
		eventually(t, time.Minute, "the first refresh", func() bool {
			return builds(m, resultOK)+builds(m, resultTooFew) >= all
		})
		sts, err := b.Statuses(ctx)
		if err != nil || len(sts) != all {
			t.Fatalf("%d statuses, %v; want %d", len(sts), err, all)
		}
		for _, st := range sts {
			want := StatusOK
			if st.Site == tinySite {
				want = StatusTooFew
			}
			if st.Site == Pooled {
				continue // no requests of its own: every site's
			}
			if st.Status != want || st.Requests == 0 || st.Newest.IsZero() || st.Checked.IsZero() ||
				(want == StatusOK) != (st.Version != "" && st.Windows >= 20 && !st.Built.IsZero()) {
				t.Errorf("status %+v, want %s", st, want)
			}
		}
		// The next period rebuilds every site once more.
		eventually(t, time.Minute, "the second refresh", func() bool {
			return builds(m, resultOK)+builds(m, resultTooFew) >= 2*all
		})
		stop()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context was done")
		}
		if n := builds(m, resultError); n != 0 {
			t.Errorf("%d failed builds", n)
		}
	})
}

// TestBaselinesServeLastGoodWhileClickHouseIsDown: a failed build keeps
// the last good baseline served and records the error; readiness follows
// ClickHouse.
func TestBaselinesServeLastGoodWhileClickHouseIsDown(t *testing.T) {
	t.Parallel()
	ch, conn := clickHouse(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	site := loadSiteTraffic(ctx, t, conn, 1)[0]
	m := NewMetrics(nil)
	const refresh = 50 * time.Millisecond
	b := New(conn, "requests", smallBuildConfig(), refresh, m, testLogger(t))
	ready := func() error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return b.Ready(ctx)
	}

	good, err := b.Get(ctx, site, features.ClassBrowser)
	if err != nil {
		t.Fatal(err)
	}
	if err := ready(); err != nil {
		t.Fatalf("ready with ClickHouse up: %v", err)
	}

	if err := ch.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * refresh) // the baseline is stale: Get tries to rebuild
	got, err := b.Get(ctx, site, features.ClassBrowser)
	if err != nil || got != good {
		t.Fatalf("Get with ClickHouse down: %v, %v; want the last good baseline", got, err)
	}
	if builds(m, resultError) == 0 {
		t.Error("no failed build counted")
	}
	if err := ready(); err == nil {
		t.Error("ready with ClickHouse down")
	}
	if err := b.Rebuild(ctx, site); err == nil || errors.Is(err, ErrTooFewWindows) {
		t.Errorf("Rebuild with ClickHouse down: %v", err)
	}
	if st := b.status(site); st.Status != StatusError || st.Error == "" || st.Version != good.Version {
		t.Errorf("status with ClickHouse down: %+v", st)
	}
	sts, err := b.Statuses(ctx)
	if err == nil || len(sts) != 1 || sts[0].Version != good.Version {
		t.Errorf("Statuses with ClickHouse down: %+v, %v; want the known site and an error", sts, err)
	}
	// The API keeps serving it too.
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/v1/sites/"+site+"/baseline", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("ETag") != `"`+good.Version+`"` {
		t.Errorf("API with ClickHouse down: %d, ETag %s", rec.Code, rec.Header().Get("ETag"))
	}
	// A site without a good baseline cannot get one: retry later.
	for _, req := range []*http.Request{
		httptest.NewRequestWithContext(ctx, "GET", "/v1/sites/"+tinySite+"/baseline", nil),
		httptest.NewRequestWithContext(ctx, "POST", "/v1/sites/"+site+"/rebuild", nil),
		httptest.NewRequestWithContext(ctx, "GET", "/v1/sites", nil),
	} {
		rec := httptest.NewRecorder()
		b.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"error":`) {
			t.Errorf("%s %s with ClickHouse down: %d %s", req.Method, req.URL, rec.Code, rec.Body)
		}
	}
	if testutil.ToFloat64(m.ClickHouseErrors.WithLabelValues(opPing)) == 0 {
		t.Error("no ClickHouse ping error counted")
	}

	if err := ch.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The pool's connections died with the server; new ones follow.
	eventually(t, 30*time.Second, "ready after ClickHouse restarts", func() bool { return ready() == nil })
	ok := builds(m, resultOK)
	eventually(t, 30*time.Second, "a rebuild after ClickHouse restarts", func() bool {
		_, err := b.Get(ctx, site, features.ClassBrowser)
		return err == nil && builds(m, resultOK) > ok
	})
	if st := b.status(site); st.Status != StatusOK || st.Error != "" || st.Version != good.Version {
		t.Errorf("status after the restart: %+v; want ok, version %s (same data)", st, good.Version)
	}
}

func TestSiteName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a.example", "a.example"},
		{"A.Example", "a.example"},
		{"WWW.EXAMPLE.COM", "www.example.com"},
		{"ÄÖ.Example", "ÄÖ.example"}, // ASCII only, as pkg/features
		{"", ""},
	} {
		if got := siteName(tc.in); got != tc.want {
			t.Errorf("siteName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// countingConn counts the queries sent through it.
type countingConn struct {
	driver.Conn
	queries atomic.Int64
}

func (c *countingConn) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	c.queries.Add(1)
	return c.Conn.QueryRow(ctx, query, args...)
}

func (c *countingConn) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	c.queries.Add(1)
	return c.Conn.Query(ctx, query, args...)
}

func (c *countingConn) Select(ctx context.Context, dest any, query string, args ...any) error {
	c.queries.Add(1)
	return c.Conn.Select(ctx, dest, query, args...)
}

// TestBaselinesUnknownSites asks for names that have no history, as any
// client can: once the table's sites are listed, they cost no query and
// leave no state behind, and a site the ingest inserts after the listing
// is served as soon as the ingest notes it.
func TestBaselinesUnknownSites(t *testing.T) {
	t.Parallel()
	conn := &countingConn{Conn: openClickHouse(t)}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sites := loadSiteTraffic(ctx, t, conn, 1)
	m := NewMetrics(prometheus.NewRegistry())
	b := New(conn, "requests", smallBuildConfig(), time.Hour, m, testLogger(t))

	// Before the first listing the service must ask ClickHouse, but keeps
	// nothing of a name without history.
	if _, err := b.Get(ctx, "before-listing.example", features.ClassBrowser); !errors.Is(err, ErrUnknownSite) {
		t.Fatalf("before the listing: %v, want ErrUnknownSite", err)
	}
	if _, err := b.listSites(ctx); err != nil {
		t.Fatal(err)
	}
	stateBefore := func() int { b.mu.Lock(); defer b.mu.Unlock(); return len(b.sites) }()
	if stateBefore != 2 { // the site and tinySite
		t.Errorf("%d sites in the cache after the listing, want 2", stateBefore)
	}

	queries := conn.queries.Load()
	const asked = 200
	for i := range asked {
		name := fmt.Sprintf("made-up-%d.example", i)
		if _, err := b.Get(ctx, name, features.Class(i%features.NumClasses)); !errors.Is(err, ErrUnknownSite) {
			t.Fatalf("%s: %v, want ErrUnknownSite", name, err)
		}
	}
	if err := b.Rebuild(ctx, "made-up-rebuild.example"); !errors.Is(err, ErrUnknownSite) {
		t.Errorf("rebuild of a made-up name: %v, want ErrUnknownSite", err)
	}
	if n := conn.queries.Load() - queries; n != 0 {
		t.Errorf("%d ClickHouse queries for %d made-up names, want 0", n, asked+1)
	}
	if n := func() int { b.mu.Lock(); defer b.mu.Unlock(); return len(b.sites) }(); n != stateBefore {
		t.Errorf("%d sites in the cache after made-up names, want %d", n, stateBefore)
	}
	if n := testutil.ToFloat64(m.UnknownSites); n != asked+1 {
		t.Errorf("unknown_sites_total %v, want %d", n, asked+1)
	}

	// A site inserted after the listing is unknown until the ingest notes
	// it; then it is built like any other.
	const late = "late.example"
	gen := traffic.DefaultConfig()
	gen.Sites, gen.Visitors, gen.Events, gen.Duration, gen.Seed = 1, 200, 1000, 30*time.Minute, 99
	reqs, err := traffic.Generate(gen)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		reqs[i].Site = late
	}
	if err := chstore.InsertRequests(ctx, conn, "requests", requestRows(t, smallBuildConfig().Window, reqs)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, late, features.ClassBrowser); !errors.Is(err, ErrUnknownSite) {
		t.Fatalf("%s before the ingest noted it: %v, want ErrUnknownSite", late, err)
	}
	b.Saw([]string{late, sites[0]})
	if bl, err := b.Get(ctx, late, features.ClassBrowser); err != nil || bl.Site != late {
		t.Errorf("%s once noted: %v, %v", late, bl, err)
	}
}

// TestPolicyContamination: a site's contamination in the policy places
// its threshold, from its next build on, and leaves the other sites'.
func TestPolicyContamination(t *testing.T) {
	t.Parallel()
	conn := openClickHouse(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sites := loadSiteTraffic(ctx, t, conn, 2)
	cfg := smallBuildConfig()
	cfg.ThresholdSpread = 0 // the threshold where contamination puts it
	threshold := func(b *Baselines, site string) float64 {
		t.Helper()
		if err := b.Rebuild(ctx, site); err != nil {
			t.Fatal(err)
		}
		bl, err := b.Get(ctx, site, features.ClassBrowser)
		if err != nil {
			t.Fatal(err)
		}
		return bl.Model.Threshold()
	}
	b := New(conn, "requests", cfg, time.Hour, nil, testLogger(t))
	before := []float64{threshold(b, sites[0]), threshold(b, sites[1])}
	pol, err := policy.Parse([]byte("sites:\n  "+sites[0]+": {contamination: 0.2}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b.SetPolicy(func() *policy.Policy { return pol })
	after := []float64{threshold(b, sites[0]), threshold(b, sites[1])}
	if !(after[0] < before[0]) || after[1] != before[1] {
		t.Errorf("thresholds %v with the policy, %v without: want %s's lower (20%% above it), the other's unchanged", after, before, sites[0])
	}
}
