package baseline

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/model"
)

// TestAPI runs the HTTP API against a real ClickHouse.
func TestAPI(t *testing.T) {
	t.Parallel()
	conn := openClickHouse(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sites := loadSiteTraffic(ctx, t, conn, 2)
	m := NewMetrics(prometheus.NewRegistry())
	b := New(conn, "requests", smallBuildConfig(), time.Hour, m, testLogger(t))
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)

	do := func(t *testing.T, method, path string, header http.Header) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	decode := func(t *testing.T, resp *http.Response, body []byte, v any) {
		t.Helper()
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
	}

	var etag string
	t.Run("baseline", func(t *testing.T) {
		resp, body := do(t, "GET", "/v1/sites/"+sites[0]+"/baseline", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", resp.Status, body)
		}
		var bl model.Baseline
		if err := bl.UnmarshalBinary(body); err != nil || bl.Known == nil {
			t.Fatal(err)
		}
		etag = resp.Header.Get("ETag")
		h := resp.Header
		if len(etag) != 18 || etag[0] != '"' || etag[17] != '"' ||
			h.Get("Content-Type") != "application/octet-stream" || h.Get("Cache-Control") != "no-cache" {
			t.Errorf("headers %v", h)
		}
		if _, err := http.ParseTime(h.Get("Last-Modified")); err != nil {
			t.Errorf("Last-Modified: %v", err)
		}
	})
	if etag == "" {
		t.FailNow()
	}

	t.Run("conditional", func(t *testing.T) {
		for _, tc := range []struct {
			name, path, ifNoneMatch string
			want                    int
		}{
			{"no condition", sites[0], "", http.StatusOK},
			{"current version", sites[0], etag, http.StatusNotModified},
			{"weak current version", sites[0], "W/" + etag, http.StatusNotModified},
			{"among others", sites[0], `"0123456789abcdef", ` + etag, http.StatusNotModified},
			{"any", sites[0], "*", http.StatusNotModified},
			{"older version", sites[0], `"0123456789abcdef"`, http.StatusOK},
			{"site in upper case", strings.ToUpper(sites[0]), etag, http.StatusNotModified},
			{"another site's version", sites[1], etag, http.StatusOK},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := http.Header{}
				if tc.ifNoneMatch != "" {
					h.Set("If-None-Match", tc.ifNoneMatch)
				}
				resp, body := do(t, "GET", "/v1/sites/"+tc.path+"/baseline", h)
				if resp.StatusCode != tc.want {
					t.Fatalf("%s, want %d", resp.Status, tc.want)
				}
				if tc.want == http.StatusNotModified && (len(body) != 0 || resp.Header.Get("ETag") != etag) {
					t.Errorf("304 with %d bytes, ETag %s", len(body), resp.Header.Get("ETag"))
				}
			})
		}
	})

	t.Run("classes", func(t *testing.T) {
		for _, tc := range []struct {
			site, class string
			want        int
			served      string
		}{
			{sites[0], "", http.StatusOK, sites[0] + "/browser"},
			{sites[0], "browser", http.StatusOK, sites[0] + "/browser"},
			// No API clients anywhere: judged against people.
			{sites[0], "api", http.StatusOK, sites[0] + "/browser"},
			// Too little history of its own: the pool of every site.
			{tinySite, "", http.StatusOK, "*/browser"},
			{tinySite, "api", http.StatusOK, "*/browser"},
			{"*", "browser", http.StatusOK, "*/browser"},
			{sites[0], "robot", http.StatusBadRequest, ""},
		} {
			resp, body := do(t, "GET", "/v1/sites/"+tc.site+"/baseline?class="+tc.class, nil)
			if resp.StatusCode != tc.want || resp.Header.Get(ServedHeader) != tc.served {
				t.Errorf("%s class %q: %s, %s %q, want %d %q: %.200s", tc.site, tc.class, resp.Status, ServedHeader, resp.Header.Get(ServedHeader), tc.want, tc.served, body)
			}
		}
	})

	t.Run("no history", func(t *testing.T) {
		resp, body := do(t, "GET", "/v1/sites/unknown.example/baseline", nil)
		var e apiError
		decode(t, resp, body, &e)
		if resp.StatusCode != http.StatusNotFound || e.Status == nil || e.Status.Status != StatusTooFew ||
			!strings.Contains(e.Error, "no request of the site in the history") || e.Status.Version != "" {
			t.Errorf("unknown.example: %s %s", resp.Status, body)
		}
	})

	t.Run("rebuild", func(t *testing.T) {
		before := builds(m, resultOK)
		resp, body := do(t, "POST", "/v1/sites/"+strings.ToUpper(sites[0])+"/rebuild", nil)
		var st SiteStatus
		decode(t, resp, body, &st)
		if resp.StatusCode != http.StatusOK || st.Site != sites[0] || st.Status != StatusOK {
			t.Fatalf("%s: %s", resp.Status, body)
		}
		// Versions are digests: the same history gives the same one.
		if `"`+st.Version+`"` != etag || st.Windows < 20 {
			t.Errorf("rebuilt %+v, want version %s", st, etag)
		}
		if got := builds(m, resultOK); got != before+1 {
			t.Errorf("%d ok builds after a rebuild, want %d", got, before+1)
		}
		tooFew := builds(m, resultTooFew)
		resp, body = do(t, "POST", "/v1/sites/"+tinySite+"/rebuild", nil)
		var e apiError
		decode(t, resp, body, &e)
		if resp.StatusCode != http.StatusUnprocessableEntity || e.Status == nil || e.Status.Status != StatusTooFew {
			t.Errorf("rebuild of %s: %s %s", tinySite, resp.Status, body)
		}
		if got := builds(m, resultTooFew); got != tooFew+1 {
			t.Errorf("%d too-few builds after a rebuild, want %d", got, tooFew+1)
		}
	})

	t.Run("sites", func(t *testing.T) {
		resp, body := do(t, "GET", "/v1/sites", nil)
		var sts []SiteStatus
		decode(t, resp, body, &sts)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", resp.Status, body)
		}
		// unknown.example is not in the requests table: forgotten. The
		// pool of every site is there, under its name.
		want := map[string]string{sites[0]: StatusOK, sites[1]: StatusOK, tinySite: StatusTooFew, Pooled: StatusOK}
		if len(sts) != len(want) {
			t.Errorf("%d sites, want %d: %s", len(sts), len(want), body)
		}
		for _, st := range sts {
			if st.Status != want[st.Site] || (st.Requests == 0) != (st.Site == Pooled) || len(st.Classes) != features.NumClasses {
				t.Errorf("%+v, want status %s", st, want[st.Site])
			}
		}
	})

	t.Run("routes", func(t *testing.T) {
		for _, tc := range []struct {
			method, path string
			want         int
		}{
			{"POST", "/v1/sites/" + sites[0] + "/baseline", http.StatusMethodNotAllowed},
			{"GET", "/v1/sites/" + sites[0] + "/rebuild", http.StatusMethodNotAllowed},
			{"HEAD", "/v1/sites/" + sites[0] + "/baseline", http.StatusOK},
			{"GET", "/v1/sites/" + sites[0], http.StatusNotFound},
			{"GET", "/v2/sites", http.StatusNotFound},
		} {
			if resp, _ := do(t, tc.method, tc.path, nil); resp.StatusCode != tc.want {
				t.Errorf("%s %s: %s, want %d", tc.method, tc.path, resp.Status, tc.want)
			}
		}
	})
}

// TestAPIRebuildNeedsAdmin: behind the service's server with an
// -admin-token, the read token gets baselines but may not rebuild.
func TestAPIRebuildNeedsAdmin(t *testing.T) {
	t.Parallel()
	conn := openClickHouse(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sites := loadSiteTraffic(ctx, t, conn, 1)
	b := New(conn, "requests", smallBuildConfig(), time.Hour, nil, testLogger(t))
	const reader, admin = "reader-token-0123456789", "admin-token-0123456789"
	srv, err := service.NewServer(service.HTTPConfig{Listen: "127.0.0.1:0", Token: reader, AdminToken: admin}, service.NewRegistry(), nil, b.Handler(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/v1/sites/" + sites[0] + "/baseline", reader, http.StatusOK},
		{"POST", "/v1/sites/" + sites[0] + "/rebuild", reader, http.StatusForbidden},
		{"POST", "/v1/sites/" + sites[0] + "/rebuild", admin, http.StatusOK},
	} {
		req, err := http.NewRequestWithContext(ctx, tc.method, "http://"+srv.Addr().String()+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s with the %s: %s %.100q, want %d", tc.method, tc.path, map[string]string{reader: "read token", admin: "admin token"}[tc.token], resp.Status, body, tc.want)
		}
	}
}

// TestAPIRebuildLimit: past -rebuild-limit a minute, rebuilds are refused
// with 429 and when to ask again, and cost ClickHouse nothing.
func TestAPIRebuildLimit(t *testing.T) {
	t.Parallel()
	conn := openClickHouse(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sites := loadSiteTraffic(ctx, t, conn, 1)
	m := NewMetrics(prometheus.NewRegistry())
	b := New(conn, "requests", smallBuildConfig(), time.Hour, m, testLogger(t))
	b.LimitRebuilds(2)
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)
	for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusTooManyRequests} {
		resp, err := srv.Client().Post(srv.URL+"/v1/sites/"+sites[0]+"/rebuild", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("rebuild %d: %s %.100q, want %d", i+1, resp.Status, body, want)
		}
		if want == http.StatusTooManyRequests {
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
				t.Errorf("Retry-After %q, want 1 to 60 seconds", resp.Header.Get("Retry-After"))
			}
		}
	}
	if got := builds(m, resultOK); got != 2 {
		t.Errorf("%d builds, want 2: the refused rebuild built nothing", got)
	}
	if n := testutil.ToFloat64(m.RebuildsLimited); n != 1 {
		t.Errorf("rebuilds_limited_total %v, want 1", n)
	}
}
