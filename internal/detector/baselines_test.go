package detector

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/hbos"
	"github.com/anomalyd/anomalyd/pkg/model"
)

// TestMain checks that Close and the test servers leave no goroutines
// behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var testNames = []string{"log1p_requests", "log1p_distinct_paths"}

const (
	testToken  = "s3cret"
	testPeriod = time.Minute
)

// fitModel fits a tiny real model whose features are named names.
func fitModel(t *testing.T, names []string, shift float64) []byte {
	t.Helper()
	cols := make([][]float64, len(names))
	for j := range cols {
		for i := range 50 {
			cols[j] = append(cols[j], shift+float64(i%7+j))
		}
	}
	m, err := hbos.FitColumns(cols, hbos.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetNames(names); err != nil {
		t.Fatal(err)
	}
	enc, err := (&model.Baseline{Model: m}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// fakeService implements GET /v1/sites/{site}/baseline as internal/baseline
// does: ETag, If-None-Match and 304, 404 and 503 with a JSON error body,
// and the bearer token. It records what it was asked.
type fakeService struct {
	mu       sync.Mutex
	models   map[string][]byte // site -> encoding
	versions map[string]string
	down     bool          // answer 503
	block    chan struct{} // when set, requests wait for it to close
	arrived  chan struct{} // when set, receives once per request
	requests int
	inm      []string // If-None-Match of every request
	classes  []string // the class parameter of every request
	// sites is what GET /v1/sites lists; nil answers 404, as a service
	// that does not list its sites.
	sites []string
}

// serveSites answers GET /v1/sites with sites.
func (f *fakeService) serveSites(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sites == nil || r.Header.Get("Authorization") != "Bearer "+testToken {
		http.NotFound(w, r)
		return
	}
	list := make([]map[string]string, 0, len(f.sites))
	for _, s := range f.sites {
		list = append(list, map[string]string{"site": s, "status": "ok"})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(list)
}

func (f *fakeService) set(site, version string, enc []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.models[site], f.versions[site] = enc, version
}

func (f *fakeService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	f.inm = append(f.inm, r.Header.Get("If-None-Match"))
	f.classes = append(f.classes, r.URL.Query().Get("class"))
	block, arrived := f.block, f.arrived
	enc, version, down := f.models[r.PathValue("site")], f.versions[r.PathValue("site")], f.down
	f.mu.Unlock()
	if arrived != nil {
		arrived <- struct{}{}
	}
	if block != nil {
		<-block
	}
	writeErr := func(code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"error": msg, "status": map[string]string{"site": r.PathValue("site")}})
	}
	switch {
	case r.Header.Get("Authorization") != "Bearer "+testToken:
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeErr(http.StatusUnauthorized, "unauthorized")
	case down:
		writeErr(http.StatusServiceUnavailable, "clickhouse unreachable")
	case enc == nil:
		writeErr(http.StatusNotFound, "too few visitor-windows for a baseline")
	case r.Header.Get("If-None-Match") == `"`+version+`"`:
		w.Header().Set("ETag", `"`+version+`"`)
		w.WriteHeader(http.StatusNotModified)
	default:
		w.Header().Set("ETag", `"`+version+`"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(enc)
	}
}

func (f *fakeService) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func (f *fakeService) lastINM() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inm[len(f.inm)-1]
}

// fakeClock is a settable clock safe for the background fetches to read.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

type fixture struct {
	svc   *fakeService
	srv   *httptest.Server
	clock *fakeClock
	b     *Baselines
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		svc:   &fakeService{models: map[string][]byte{}, versions: map[string]string{}},
		clock: &fakeClock{},
	}
	f.clock.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	mux := http.NewServeMux()
	mux.Handle("GET /v1/sites/{site}/baseline", f.svc)
	mux.HandleFunc("GET /v1/sites", f.svc.serveSites)
	f.srv = httptest.NewServer(mux)
	f.b = NewBaselines(f.srv.URL+"/", testToken, f.srv.Client(), testPeriod, testNames, nil)
	f.b.now = f.clock.now
	t.Cleanup(func() {
		f.b.Close()
		f.srv.Close()
	})
	return f
}

// get is Get of site that also waits for the background fetch it started.
func (f *fixture) get(t *testing.T, site string) (*model.Baseline, string, bool) {
	t.Helper()
	m, v, ok := f.b.Get(t.Context(), site, features.ClassBrowser)
	f.b.wg.Wait()
	return m, v, ok
}

func (f *fixture) wantRequests(t *testing.T, want int) {
	t.Helper()
	if got := f.svc.count(); got != want {
		t.Fatalf("service got %d requests, want %d", got, want)
	}
}

// TestBaselinesUnlisted: a site name the service does not list costs no
// request and no cache entry, however many arrive; a listed site is
// fetched; a site listed later is fetched once the list is renewed; and
// without a list every site is asked for, as before.
func TestBaselinesUnlisted(t *testing.T) {
	f := newFixture(t)
	f.svc.set("shop.example", "v1", fitModel(t, testNames, 0))
	f.svc.mu.Lock()
	f.svc.sites = []string{"shop.example"}
	f.svc.mu.Unlock()

	for i := range 1000 {
		if _, _, ok := f.get(t, fmt.Sprintf("made-up-%d.example", i)); ok {
			t.Fatal("a site the service does not list was scored")
		}
	}
	f.wantRequests(t, 0)
	entries := 0
	f.b.sites.Range(func(any, any) bool { entries++; return true })
	if entries != 0 {
		t.Errorf("%d cache entries for sites the service does not list", entries)
	}
	if st := f.b.Stats(); st.Unlisted != 1000 || st.Listings != 1 {
		t.Errorf("stats %+v: want 1000 unlisted and 1 listing", st)
	}
	if _, v, ok := f.get(t, "shop.example"); !ok || v != "v1" {
		t.Fatalf("listed site: ok %v, version %q", ok, v)
	}
	f.wantRequests(t, 1)

	// A site that gets history is listed at the next renewal.
	f.svc.set("new.example", "n1", fitModel(t, testNames, 0))
	f.svc.mu.Lock()
	f.svc.sites = append(f.svc.sites, "new.example")
	f.svc.mu.Unlock()
	if _, _, ok := f.get(t, "new.example"); ok {
		t.Fatal("scored before the list was renewed")
	}
	f.clock.advance(testPeriod)
	f.get(t, "new.example") // starts the renewal
	if _, v, ok := f.get(t, "new.example"); !ok || v != "n1" {
		t.Fatalf("after the renewal: ok %v, version %q", ok, v)
	}

	// A service that does not list its sites: every site is asked for.
	g := newFixture(t)
	g.svc.set("shop.example", "v1", fitModel(t, testNames, 0))
	if _, _, ok := g.get(t, "shop.example"); !ok {
		t.Fatal("without a list, a site with a baseline was not scored")
	}
	g.get(t, "made-up.example")
	g.wantRequests(t, 2)
}

// TestBaselinesClasses: each traffic class of a site is a baseline of its
// own, asked for by its name and cached apart.
func TestBaselinesClasses(t *testing.T) {
	f := newFixture(t)
	f.svc.set("a.example", "v1", fitModel(t, testNames, 0))
	for _, c := range []features.Class{features.ClassAPI, features.ClassBrowser, features.ClassAPI} {
		if _, _, ok := f.b.Get(t.Context(), "a.example", c); !ok {
			t.Fatalf("Get %s: no model", c)
		}
		f.b.wg.Wait()
	}
	f.svc.mu.Lock()
	defer f.svc.mu.Unlock()
	if !slices.Equal(f.svc.classes, []string{"api", "browser"}) {
		t.Errorf("requests asked for classes %q, want api then browser, each once", f.svc.classes)
	}
}

func TestBaselinesRevalidate(t *testing.T) {
	f := newFixture(t)
	f.svc.set("a.example", "v1", fitModel(t, testNames, 0))

	m1, v, ok := f.get(t, "a.example")
	if !ok || v != "v1" || m1 == nil {
		t.Fatalf("first Get = %v, %q, %v; want the v1 model", m1, v, ok)
	}
	f.wantRequests(t, 1)
	if inm := f.svc.lastINM(); inm != "" {
		t.Errorf("first request has If-None-Match %q", inm)
	}

	// Within the period: from the cache, no request.
	f.clock.advance(testPeriod - time.Second)
	if m, _, _ := f.get(t, "a.example"); m != m1 {
		t.Error("Get within the period returned another model")
	}
	f.wantRequests(t, 1)

	// After it: the stale model at once, and one conditional request.
	f.clock.advance(time.Second)
	if m, v, ok := f.get(t, "a.example"); m != m1 || v != "v1" || !ok {
		t.Fatal("Get after the period did not return the cached model")
	}
	f.wantRequests(t, 2)
	if inm := f.svc.lastINM(); inm != `"v1"` {
		t.Errorf("revalidation sent If-None-Match %q, want %q", inm, `"v1"`)
	}
	if s := f.b.Stats(); s.NotModified != 1 || s.Fetches != 2 || s.Errors != 0 {
		t.Errorf("stats = %+v, want 2 fetches, 1 not modified", s)
	}
	// The 304 renewed the entry for a period.
	f.get(t, "a.example")
	f.wantRequests(t, 2)

	// A new version replaces the model at the next revalidation.
	f.svc.set("a.example", "v2", fitModel(t, testNames, 5))
	f.clock.advance(testPeriod)
	if _, v, _ := f.get(t, "a.example"); v != "v1" {
		t.Errorf("Get that starts the revalidation = %q, want v1 (stale, no waiting)", v)
	}
	if m, v, ok := f.get(t, "a.example"); m == m1 || v != "v2" || !ok {
		t.Errorf("after revalidation Get = %q, %v; want the v2 model", v, ok)
	}
	f.wantRequests(t, 3)
}

func TestBaselinesServiceDown(t *testing.T) {
	f := newFixture(t)
	f.svc.set("a.example", "v1", fitModel(t, testNames, 0))
	m1, _, _ := f.get(t, "a.example")

	f.svc.mu.Lock()
	f.svc.down = true
	f.svc.mu.Unlock()
	f.clock.advance(testPeriod)
	// The failures back off 1s, 2s, 4s...: over 10 seconds of Gets, every
	// 100ms, the service is asked 4 times (at 0, 1, 3 and 7 s), not 100.
	for range 100 {
		if m, v, ok := f.get(t, "a.example"); m != m1 || v != "v1" || !ok {
			t.Fatalf("Get while the service is down = %q, %v; want the last good v1", v, ok)
		}
		f.clock.advance(100 * time.Millisecond)
	}
	f.wantRequests(t, 1+4)
	if s := f.b.Stats(); s.Errors != 4 {
		t.Errorf("stats = %+v, want 4 errors", s)
	}

	// Back up: the next retry revalidates, and the period is normal again.
	f.svc.mu.Lock()
	f.svc.down = false
	f.svc.mu.Unlock()
	f.clock.advance(8 * time.Second)
	f.get(t, "a.example")
	f.wantRequests(t, 6)
	f.clock.advance(testPeriod - time.Second)
	if m, _, ok := f.get(t, "a.example"); m != m1 || !ok {
		t.Fatal("lost the model after the service came back")
	}
	f.wantRequests(t, 6)

	// Unreachable altogether: still the last good model.
	f.srv.Close()
	f.clock.advance(time.Second)
	f.get(t, "a.example")
	if m, _, ok := f.get(t, "a.example"); m != m1 || !ok {
		t.Fatal("lost the model when the service became unreachable")
	}
	if s := f.b.Stats(); s.Errors != 5 {
		t.Errorf("stats = %+v, want 5 errors", s)
	}
}

func TestBaselinesNoBaseline(t *testing.T) {
	f := newFixture(t)
	for range 10 {
		if m, v, ok := f.get(t, "new.example"); ok || m != nil || v != "" {
			t.Fatalf("Get of a site without a baseline = %v, %q, %v", m, v, ok)
		}
	}
	// The 404 is remembered for a period.
	f.wantRequests(t, 1)
	if s := f.b.Stats(); s.Unscored != 10 || s.Errors != 0 {
		t.Errorf("stats = %+v, want 10 unscored, no errors", s)
	}
	// A baseline built since is found at the next revalidation.
	f.svc.set("new.example", "v1", fitModel(t, testNames, 0))
	f.clock.advance(testPeriod)
	f.get(t, "new.example")
	if _, v, ok := f.get(t, "new.example"); !ok || v != "v1" {
		t.Errorf("Get after the baseline was built = %q, %v", v, ok)
	}
	f.wantRequests(t, 2)
}

func TestBaselinesIncompatible(t *testing.T) {
	f := newFixture(t)
	other := []string{"log1p_requests", "log1p_distinct_ips"}
	f.svc.set("bad.example", "v1", fitModel(t, other, 0))
	f.svc.set("a.example", "v1", fitModel(t, testNames, 0))
	if _, _, ok := f.get(t, "bad.example"); ok {
		t.Error("a model of other features was accepted")
	}

	// A compatible model is kept when its successor is not, and the
	// service is not asked again before a period has passed.
	m1, _, _ := f.get(t, "a.example")
	f.svc.set("a.example", "v2", fitModel(t, testNames[:1], 0))
	f.clock.advance(testPeriod)
	f.get(t, "a.example")
	if m, v, ok := f.get(t, "a.example"); m != m1 || v != "v1" || !ok {
		t.Errorf("after an incompatible v2, Get = %q, %v; want the v1 model", v, ok)
	}
	f.clock.advance(testPeriod / 2)
	f.get(t, "a.example")
	f.wantRequests(t, 3)
	if s := f.b.Stats(); s.Incompatible != 2 || s.Errors != 2 {
		t.Errorf("stats = %+v, want 2 incompatible", s)
	}
}

func TestBaselinesBadBody(t *testing.T) {
	f := newFixture(t)
	f.svc.set("a.example", "v1", []byte("not a model"))
	if _, _, ok := f.get(t, "a.example"); ok {
		t.Error("a corrupt model was accepted")
	}
	if s := f.b.Stats(); s.Errors != 1 {
		t.Errorf("stats = %+v, want 1 error", s)
	}
}

func TestBaselinesToken(t *testing.T) {
	f := newFixture(t)
	f.svc.set("a.example", "v1", fitModel(t, testNames, 0))
	// The fixture's fake service answers 401 without the token.
	if _, _, ok := f.get(t, "a.example"); !ok {
		t.Fatal("Get with the token failed")
	}
	b := NewBaselines(f.srv.URL, "wrong", f.srv.Client(), testPeriod, testNames, nil)
	defer b.Close()
	if _, _, ok := b.Get(t.Context(), "a.example", features.ClassBrowser); ok {
		t.Error("Get with a wrong token succeeded")
	}
	if s := b.Stats(); s.Errors != 1 {
		t.Errorf("stats = %+v, want the 401 counted as an error", s)
	}
}

// TestBaselinesConcurrent checks that concurrent first Gets of a site share
// one request, that a caller can stop waiting, and that a slow
// revalidation makes no one wait.
func TestBaselinesConcurrent(t *testing.T) {
	f := newFixture(t)
	f.svc.set("a.example", "v1", fitModel(t, testNames, 0))
	block, arrived := make(chan struct{}), make(chan struct{}, 100)
	f.svc.block, f.svc.arrived = block, arrived

	// A caller whose context ends stops waiting; the fetch goes on.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan bool)
	go func() {
		_, _, ok := f.b.Get(ctx, "a.example", features.ClassBrowser)
		done <- ok
	}()
	<-arrived
	cancel()
	if <-done {
		t.Error("Get with a cancelled context returned a model")
	}

	var wg sync.WaitGroup
	var oks atomic.Int32
	for range 20 {
		wg.Go(func() {
			if _, v, ok := f.b.Get(t.Context(), "a.example", features.ClassBrowser); ok && v == "v1" {
				oks.Add(1)
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // let them reach the wait
	close(block)
	wg.Wait()
	if oks.Load() != 20 {
		t.Errorf("%d of 20 concurrent Gets got the model", oks.Load())
	}
	f.b.wg.Wait()
	f.wantRequests(t, 1)

	// A stale entry is served while its revalidation hangs.
	block = make(chan struct{})
	f.svc.mu.Lock()
	f.svc.block = block
	f.svc.mu.Unlock()
	f.clock.advance(testPeriod)
	for range 10 {
		if _, v, ok := f.b.Get(t.Context(), "a.example", features.ClassBrowser); !ok || v != "v1" {
			t.Fatalf("Get during a hanging revalidation = %q, %v", v, ok)
		}
	}
	<-arrived
	close(block)
	f.b.wg.Wait()
	f.wantRequests(t, 2)
}
