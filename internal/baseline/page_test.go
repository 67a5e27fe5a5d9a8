package baseline

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/pkg/records"
)

const pageToken = "page-test-token-0123456789"

// TestSitePage serves a site's page from the service's HTTP server,
// behind its token, and opens it in a real headless Chromium: a histogram
// per feature and class with a baseline, the version, and the recent
// detections from the scores table, the score below its threshold left
// out.
func TestSitePage(t *testing.T) {
	t.Parallel()
	conn := openClickHouse(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	site := loadSiteTraffic(ctx, t, conn, 1)[0]
	if err := chstore.CreateScores(ctx, conn, "scores", ""); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	var rows []chstore.ScoreRow
	for i, score := range []float64{30, 12, 4} { // threshold 10
		rec := &records.Score{V: records.Version, Site: site, Visitor: records.VisitorID(uint64(0xabc0 + i)), Score: score, Threshold: 10,
			Features:    []records.Contribution{{Feature: "log1p_requests", Value: 3, Contribution: score / 2}, {Feature: "logodds_4xx", Value: 2, Contribution: score / 4}},
			WindowStart: now.Add(-10 * time.Minute), WindowEnd: now, BaselineVersion: "v", ScoredAt: now.Add(-time.Duration(i) * time.Minute)}
		rows = append(rows, chstore.ScoreRow{Record: rec, Visitor: uint64(0xabc0 + i)})
	}
	if err := chstore.InsertScores(ctx, conn, "scores", rows); err != nil {
		t.Fatal(err)
	}
	b := New(conn, "requests", smallBuildConfig(), time.Hour, nil, testLogger(t))
	b.SetScoresTable("scores")
	srv, err := service.NewServer(service.HTTPConfig{Listen: "127.0.0.1:0", Token: pageToken}, service.NewRegistry(), nil, b.Handler(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(t.Context())
	if err := srv.Start(sctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		srv.Shutdown(context.Background())
	})
	base := "http://" + srv.Addr().String()

	// Without the token: refused, with a challenge a browser answers.
	resp, err := http.Get(base + "/v1/sites/" + site + "/page")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %s", resp.Status)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/sites/"+site+"/page", nil)
	req.SetBasicAuth("anomalyd", pageToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || strings.Contains(string(body), "<script") {
		t.Fatalf("the page: %s %q, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(body))
	}
	bl, err := b.Get(ctx, site, 0)
	if err != nil {
		t.Fatal(err)
	}

	dom := testenv.ChromiumDOM(t, strings.Replace(base, "http://", "http://anomalyd:"+pageToken+"@", 1)+"/v1/sites/"+site+"/page")
	for _, want := range []string{
		`<h1 id="site">` + site + `</h1>`,
		`<code class="version">` + bl.Version + `</code>`,
		records.VisitorID(0xabc0), records.VisitorID(0xabc1),
		"log1p_requests (+15.0), logodds_4xx (+7.5)",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	if strings.Contains(dom, records.VisitorID(0xabc2)) {
		t.Error("a score below its threshold is shown as a detection")
	}
	for _, name := range bl.Model.Names() {
		if !strings.Contains(dom, fmt.Sprintf(`<svg class="histogram" data-feature="%s"`, name)) {
			t.Errorf("no histogram of %s rendered", name)
		}
	}
	if n := strings.Count(dom, `<rect class="bin`); n < bl.Model.Features() {
		t.Errorf("%d bins drawn for %d features", n, bl.Model.Features())
	}
	if !strings.Contains(dom, `class="bin beyond"`) {
		t.Error("no bin marked past the threshold's reach")
	}
}
