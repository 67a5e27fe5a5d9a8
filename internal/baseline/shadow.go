package baseline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/anomalyd/anomalyd/pkg/records"
)

// ShadowComparison compares, per site, the visitors each candidate model
// (the policy's shadows) detects with those the live model detects, from
// the scores table: a visitor is detected by a model when at least
// MinHits of its scores by that model in the period are above their
// threshold. That is the publisher's hits gate without its TTL, crowds
// and groups, the same for every model, so that the models, not the
// selection, make the differences.
type ShadowComparison struct {
	// From and To bound the period, in event time: Period back from the
	// newest score of the table.
	From    time.Time        `json:"from"`
	To      time.Time        `json:"to"`
	MinHits int              `json:"min_hits"`
	Sites   []SiteComparison `json:"sites"`
}

// SiteComparison is one site's comparison.
type SiteComparison struct {
	Site string `json:"site"`
	// Live is how many visitors the live model detected.
	Live   int               `json:"live"`
	Models []ModelComparison `json:"models"`
}

// ModelComparison is one candidate's detections against live's on a site,
// with examples of each: visitor ids, the most anomalous first.
type ModelComparison struct {
	Model                 string   `json:"model"`
	Both                  int      `json:"both"`
	LiveOnly              int      `json:"live_only"`
	CandidateOnly         int      `json:"candidate_only"`
	BothExamples          []string `json:"both_examples,omitempty"`
	LiveOnlyExamples      []string `json:"live_only_examples,omitempty"`
	CandidateOnlyExamples []string `json:"candidate_only_examples,omitempty"`
}

// detectedRow is a visitor a model detected on a site: its largest score
// over its threshold, which orders the examples.
type detectedRow struct {
	site, model string
	visitor     uint64
	margin      float64
}

// ErrNoScores is a comparison asked of a service without the scores table
// (-scores-table), or of a table without scores.
var ErrNoScores = errors.New("no scores to compare")

// CompareShadows compares the models over the period of event time before
// the table's newest score, for site ("" for every site), with at most
// examples visitor ids in each list.
func (b *Baselines) CompareShadows(ctx context.Context, period time.Duration, site string, minHits, examples int) (*ShadowComparison, error) {
	if b.scoresTable == "" {
		return nil, fmt.Errorf("%w: the service has no -scores-table", ErrNoScores)
	}
	var newest time.Time
	if err := b.conn.QueryRow(ctx, "SELECT max(scored_at) FROM "+b.scoresTable).Scan(&newest); err != nil {
		return nil, fmt.Errorf("querying %s: %w", b.scoresTable, err)
	}
	if newest.Unix() <= 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrNoScores, b.scoresTable)
	}
	from := newest.Add(-period)
	q := `SELECT site, model, visitor, max(score - threshold) AS margin
FROM ` + b.scoresTable + ` FINAL
WHERE scored_at >= ? AND (? = '' OR site = ?)
GROUP BY site, model, visitor
HAVING countIf(score > threshold) >= ?`
	rows, err := b.conn.Query(ctx, q, from, site, site, uint64(minHits))
	if err != nil {
		return nil, fmt.Errorf("querying %s: %w", b.scoresTable, err)
	}
	defer rows.Close()
	var found []detectedRow
	for rows.Next() {
		var r detectedRow
		if err := rows.Scan(&r.site, &r.model, &r.visitor, &r.margin); err != nil {
			return nil, fmt.Errorf("reading %s: %w", b.scoresTable, err)
		}
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", b.scoresTable, err)
	}
	return &ShadowComparison{From: from.UTC(), To: newest.UTC(), MinHits: minHits, Sites: compareShadows(found, examples)}, nil
}

// compareShadows sorts the detected rows into each site's comparison of
// every candidate with the live model (model ""), sites and models by
// name.
func compareShadows(found []detectedRow, examples int) []SiteComparison {
	type key struct{ site, model string }
	detected := make(map[key]map[uint64]float64)
	var sites, models []string
	for _, r := range found {
		k := key{r.site, r.model}
		if detected[k] == nil {
			detected[k] = make(map[uint64]float64)
		}
		detected[k][r.visitor] = r.margin
		if !slices.Contains(sites, r.site) {
			sites = append(sites, r.site)
		}
		if r.model != "" && !slices.Contains(models, r.model) {
			models = append(models, r.model)
		}
	}
	slices.Sort(sites)
	slices.Sort(models)
	out := make([]SiteComparison, 0, len(sites))
	for _, site := range sites {
		live := detected[key{site, ""}]
		sc := SiteComparison{Site: site, Live: len(live)}
		for _, model := range models {
			cand := detected[key{site, model}]
			var both, liveOnly, candOnly []detectedRow
			for v, margin := range live {
				if _, ok := cand[v]; ok {
					both = append(both, detectedRow{visitor: v, margin: max(margin, cand[v])})
				} else {
					liveOnly = append(liveOnly, detectedRow{visitor: v, margin: margin})
				}
			}
			for v, margin := range cand {
				if _, ok := live[v]; !ok {
					candOnly = append(candOnly, detectedRow{visitor: v, margin: margin})
				}
			}
			sc.Models = append(sc.Models, ModelComparison{
				Model: model, Both: len(both), LiveOnly: len(liveOnly), CandidateOnly: len(candOnly),
				BothExamples: exampleIDs(both, examples), LiveOnlyExamples: exampleIDs(liveOnly, examples),
				CandidateOnlyExamples: exampleIDs(candOnly, examples),
			})
		}
		out = append(out, sc)
	}
	return out
}

// exampleIDs are the ids of the n visitors of rows furthest over their
// thresholds (ties by id, so that an answer does not depend on map order).
func exampleIDs(rows []detectedRow, n int) []string {
	slices.SortFunc(rows, func(a, b detectedRow) int {
		if c := cmp.Compare(b.margin, a.margin); c != 0 {
			return c
		}
		return cmp.Compare(a.visitor, b.visitor)
	})
	var out []string
	for _, r := range rows[:min(n, len(rows))] {
		out = append(out, records.VisitorID(r.visitor))
	}
	return out
}

// Defaults of GET /v1/shadow's parameters.
const (
	DefaultShadowPeriod   = 24 * time.Hour
	DefaultShadowMinHits  = 3 // the publisher's -min-hits
	DefaultShadowExamples = 5
	maxShadowExamples     = 1000
)

func (b *Baselines) serveShadow(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	period, minHits, examples := DefaultShadowPeriod, DefaultShadowMinHits, DefaultShadowExamples
	var err error
	if v := q.Get("period"); v != "" {
		if period, err = time.ParseDuration(v); err != nil || period <= 0 {
			writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("period %q: want a positive duration such as 24h", v)})
			return
		}
	}
	if v := q.Get("min_hits"); v != "" {
		if minHits, err = strconv.Atoi(v); err != nil || minHits < 1 {
			writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("min_hits %q: want a whole number of at least 1", v)})
			return
		}
	}
	if v := q.Get("examples"); v != "" {
		if examples, err = strconv.Atoi(v); err != nil || examples < 0 || examples > maxShadowExamples {
			writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("examples %q: want a whole number in [0, %d]", v, maxShadowExamples)})
			return
		}
	}
	c, err := b.CompareShadows(r.Context(), period, siteName(q.Get("site")), minHits, examples)
	switch {
	case errors.Is(err, ErrNoScores):
		writeJSON(w, http.StatusNotFound, apiError{Error: err.Error()})
	case err != nil:
		b.logger.Warn("comparing candidate models", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error()})
	default:
		writeJSON(w, http.StatusOK, c)
	}
}
