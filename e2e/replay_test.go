package e2e

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/pkg/records"
)

// TestReplayDeterministic runs the quality scenario on a second, fresh
// stack with the same identity secret and the same history and live
// traffic, and checks that both publish detections of the same visitors
// with the same scores, and score those visitors identically.
func TestReplayDeterministic(t *testing.T) {
	a := shared(t)
	hist, live := qualityTraffic(t)
	b, err := qualityRun(t, binaries(t), hist, live)
	if err != nil {
		t.Fatalf("the second quality run failed: %v", err)
	}
	t.Cleanup(func() { b.close(!t.Failed()) })

	if len(a.detections) == 0 {
		t.Error("the first run published no detection: nothing to compare")
	}
	da, db := detectionsByVisitor(a.detections), detectionsByVisitor(b.detections)
	var onlyA, onlyB, differ []string
	for k, x := range da {
		y, ok := db[k]
		switch {
		case !ok:
			onlyA = append(onlyA, k.String())
		case !sameDetections(x, y):
			differ = append(differ, fmt.Sprintf("%s: %s vs %s", k, formatDetections(x), formatDetections(y)))
		}
	}
	for k := range db {
		if _, ok := da[k]; !ok {
			onlyB = append(onlyB, k.String())
		}
	}
	t.Logf("run 1: %d detection records of %d visitors; run 2: %d of %d", len(a.detections), len(da), len(b.detections), len(db))
	report(t, "visitors detected only by run 1", onlyA)
	report(t, "visitors detected only by run 2", onlyB)
	report(t, "visitors detected by both runs with other detections", differ)

	// The score records of the detected visitors, in order per visitor.
	sa, sb := scoresByVisitor(a.scores), scoresByVisitor(b.scores)
	var scoreDiffs []string
	for k := range da {
		if !sameScores(sa[k], sb[k]) {
			scoreDiffs = append(scoreDiffs, fmt.Sprintf("%s: %s vs %s", k, formatScores(sa[k]), formatScores(sb[k])))
		}
	}
	report(t, "detected visitors scored differently", scoreDiffs)
	var all int
	for k, x := range sa {
		if sameScores(x, sb[k]) {
			all++
		}
	}
	t.Logf("all visitors: %d score records of %d visitors in run 1, %d of %d in run 2; %d visitors scored identically",
		len(a.scores), len(sa), len(b.scores), len(sb), all)
	if a.lateEvents != 0 || b.lateEvents != 0 {
		t.Logf("late events dropped by the detector: %v in run 1, %v in run 2", a.lateEvents, b.lateEvents)
	}
}

// report fails the test with what differs, the first few of each kind.
func report(t *testing.T, what string, items []string) {
	t.Helper()
	if len(items) == 0 {
		return
	}
	slices.Sort(items)
	t.Errorf("%d %s, e.g. %s", len(items), what, strings.Join(items[:min(len(items), 5)], "; "))
}

func detectionsByVisitor(ds []records.Detection) map[vkey][]records.Detection {
	out := make(map[vkey][]records.Detection)
	for _, d := range ds {
		k, err := detectionKey(d.Site, d.Visitor)
		if err != nil {
			k = vkey{site: d.Site + "|" + d.Visitor}
		}
		out[k] = append(out[k], d)
	}
	for _, x := range out {
		slices.SortFunc(x, func(p, q records.Detection) int { return p.DetectedAt.Compare(q.DetectedAt) })
	}
	return out
}

func scoresByVisitor(ss []records.Score) map[vkey][]records.Score {
	out := make(map[vkey][]records.Score)
	for _, s := range ss {
		k, err := detectionKey(s.Site, s.Visitor)
		if err != nil {
			k = vkey{site: s.Site + "|" + s.Visitor}
		}
		out[k] = append(out[k], s)
	}
	for _, x := range out {
		slices.SortStableFunc(x, func(p, q records.Score) int { return p.ScoredAt.Compare(q.ScoredAt) })
	}
	return out
}

// sameScore compares two scores as the same computation must give them;
// the tolerance only absorbs a JSON round trip.
func sameScore(x, y float64) bool { return math.Abs(x-y) <= 1e-9*max(1, math.Abs(x)) }

func sameDetections(x, y []records.Detection) bool {
	return slices.EqualFunc(x, y, func(p, q records.Detection) bool {
		return p.DetectedAt.Equal(q.DetectedAt) && sameScore(p.Score, q.Score) && sameScore(p.Threshold, q.Threshold) &&
			p.BaselineVersion == q.BaselineVersion && p.ExpiresAt.Equal(q.ExpiresAt)
	})
}

func sameScores(x, y []records.Score) bool {
	return slices.EqualFunc(x, y, func(p, q records.Score) bool {
		return p.ScoredAt.Equal(q.ScoredAt) && sameScore(p.Score, q.Score) && sameScore(p.Threshold, q.Threshold) &&
			p.BaselineVersion == q.BaselineVersion
	})
}

func formatDetections(ds []records.Detection) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%s %.4f/%.4f %s", d.DetectedAt.Format(time.TimeOnly), d.Score, d.Threshold, d.BaselineVersion))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func formatScores(ss []records.Score) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, fmt.Sprintf("%s %.4f/%.4f", s.ScoredAt.Format(time.TimeOnly), s.Score, s.Threshold))
	}
	if len(parts) > 6 {
		parts = append(parts[:6], fmt.Sprintf("... %d in all", len(ss)))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
