package baseline

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// TestShadowComparison compares a candidate with the live model from a
// real scores table: per site, the visitors both detect, live only and
// the candidate only, at -min-hits scores above the threshold within the
// period before the newest score, with examples the furthest out first.
func TestShadowComparison(t *testing.T) {
	t.Parallel()
	conn := openClickHouse(t)
	ctx := t.Context()
	if err := chstore.CreateScores(ctx, conn, "scores", ""); err != nil {
		t.Fatal(err)
	}
	newest := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var rows []chstore.ScoreRow
	// scores adds n scores of visitor by model, 30 s apart, before at.
	scores := func(site, model string, visitor uint64, at time.Time, n int, score float64) {
		for i := range n {
			when := at.Add(-time.Duration(i) * 30 * time.Second)
			rec := &records.Score{V: records.Version, Site: site, Visitor: records.VisitorID(visitor), Model: model, Score: score, Threshold: 10,
				Features:    []records.Contribution{{Feature: "log1p_requests", Value: 3, Contribution: score}},
				WindowStart: when.Add(-10 * time.Minute), WindowEnd: when, BaselineVersion: "v", ScoredAt: when}
			rows = append(rows, chstore.ScoreRow{Record: rec, Visitor: visitor})
		}
	}
	scores("a.example", "", 1, newest, 3, 20)                   // both
	scores("a.example", "wide", 1, newest, 3, 15)               //
	scores("a.example", "", 2, newest, 3, 12)                   // live only: the candidate scores it below
	scores("a.example", "wide", 2, newest, 3, 9)                //
	scores("a.example", "wide", 3, newest, 3, 40)               // the candidate only
	scores("a.example", "wide", 4, newest, 3, 30)               // the candidate only, less far out
	scores("a.example", "", 5, newest, 2, 50)                   // two hits: no detection
	scores("a.example", "", 6, newest.Add(-3*time.Hour), 3, 50) // before the period
	scores("b.example", "", 7, newest, 4, 11)                   // a site with live detections only
	if err := chstore.InsertScores(ctx, conn, "scores", rows); err != nil {
		t.Fatal(err)
	}
	b := New(conn, "requests", smallBuildConfig(), time.Hour, nil, testLogger(t))
	h := b.Handler()
	get := func(query string) (*httptest.ResponseRecorder, ShadowComparison) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/shadow"+query, nil))
		var c ShadowComparison
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil {
				t.Fatal(err)
			}
		}
		return rec, c
	}
	if rec, _ := get(""); rec.Code != http.StatusNotFound {
		t.Errorf("without a scores table: %d %s", rec.Code, rec.Body)
	}
	b.SetScoresTable("scores")
	rec, c := get("?period=2h")
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if !c.To.Equal(newest) || !c.From.Equal(newest.Add(-2*time.Hour)) || c.MinHits != DefaultShadowMinHits {
		t.Errorf("period %v to %v at %d hits", c.From, c.To, c.MinHits)
	}
	id := records.VisitorID
	want := []SiteComparison{
		{Site: "a.example", Live: 2, Models: []ModelComparison{{Model: "wide", Both: 1, LiveOnly: 1, CandidateOnly: 2,
			BothExamples: []string{id(1)}, LiveOnlyExamples: []string{id(2)}, CandidateOnlyExamples: []string{id(3), id(4)}}}},
		{Site: "b.example", Live: 1, Models: []ModelComparison{{Model: "wide", LiveOnly: 1, LiveOnlyExamples: []string{id(7)}}}},
	}
	if !slices.EqualFunc(c.Sites, want, sameSiteComparison) {
		t.Errorf("comparison\n%+v\nwant\n%+v", c.Sites, want)
	}
	// One site, one example, and the two-hit visitor with min_hits 2.
	_, c = get("?period=2h&site=A.example&examples=1&min_hits=2")
	want = []SiteComparison{{Site: "a.example", Live: 3, Models: []ModelComparison{{Model: "wide", Both: 1, LiveOnly: 2, CandidateOnly: 2,
		BothExamples: []string{id(1)}, LiveOnlyExamples: []string{id(5)}, CandidateOnlyExamples: []string{id(3)}}}}}
	if !slices.EqualFunc(c.Sites, want, sameSiteComparison) {
		t.Errorf("one site:\n%+v\nwant\n%+v", c.Sites, want)
	}
	for _, q := range []string{"?period=-1h", "?period=x", "?min_hits=0", "?examples=-1", "?examples=100000"} {
		if rec, _ := get(q); rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, rec.Code)
		}
	}
}

func sameSiteComparison(a, b SiteComparison) bool {
	return a.Site == b.Site && a.Live == b.Live && slices.EqualFunc(a.Models, b.Models, func(x, y ModelComparison) bool {
		return x.Model == y.Model && x.Both == y.Both && x.LiveOnly == y.LiveOnly && x.CandidateOnly == y.CandidateOnly &&
			slices.Equal(x.BothExamples, y.BothExamples) && slices.Equal(x.LiveOnlyExamples, y.LiveOnlyExamples) &&
			slices.Equal(x.CandidateOnlyExamples, y.CandidateOnlyExamples)
	})
}
