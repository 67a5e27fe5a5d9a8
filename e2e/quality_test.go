package e2e

import (
	"strings"
	"testing"

	"github.com/anomalyd/anomalyd/internal/traffic"
)

// Detection quality the pipeline must reach on the quality run's traffic,
// counted per visitor.
const (
	minPrecision = 0.9
	minRecall    = 0.8
)

// TestDetectionQuality replays human history, builds every site's
// baseline, sends live traffic with bots of every scenario through the
// services with their default detection settings, and counts the visitors
// published on the detections topic against the traffic's labels.
func TestDetectionQuality(t *testing.T) {
	r := shared(t)
	for _, s := range r.sites {
		t.Logf("baseline %s: %s, version %s, %d visitor-windows", s.Site, s.Status, s.Version, s.Windows)
	}
	q, err := evaluate(r.live, r.detections)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d live requests, %d score records, %d detection records", r.live.events, len(r.scores), len(r.detections))
	t.Logf("per visitor: %v", q)
	if len(q.fps) > 0 {
		t.Logf("humans detected: %s", strings.Join(q.fps[:min(len(q.fps), 10)], "; "))
	}
	t.Logf("live events the detector dropped as older than its windows: %v", r.lateEvents)
	if p := q.precision(); p < minPrecision {
		t.Errorf("precision %.3f, want at least %.2f: %v", p, minPrecision, q)
	}
	if rc := q.recall(); rc < minRecall {
		t.Errorf("recall %.3f, want at least %.2f: %v", rc, minRecall, q)
	}
	for _, s := range traffic.Scenarios() {
		if q.visitors[string(s)] == 0 {
			t.Errorf("the live traffic has no %s bot", s)
		} else if q.detected[string(s)] == 0 {
			t.Errorf("no %s bot was detected, of %d", s, q.visitors[string(s)])
		}
	}
}
