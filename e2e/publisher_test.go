package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/internal/publisher"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// TestPublisherKill kills the publisher (SIGKILL) while scores with bots
// among them flow and it has begun publishing, and starts it again. The
// restarted publisher reads back what it had published and reads the
// uncommitted scores again: no visitor is published twice within its
// detection's TTL unless its score rose by the rise margin, and every
// score record is in the scores table.
func TestPublisherKill(t *testing.T) {
	r := shared(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	st, pub := r.st, r.st.Service(pipeline.Publisher)
	b := faultTraffic(t, r, "publisher-kill traffic", 46, 3000, 12_000, 4*time.Minute, map[traffic.Scenario]int{traffic.Scraper: 4, traffic.CredentialStuffing: 4, traffic.UARotation: 4})
	scoresFrom, err := r.kc.ends(ctx, pipeline.TopicScores)
	if err != nil {
		t.Fatal(err)
	}
	detsFrom, err := r.kc.ends(ctx, pipeline.TopicDetections)
	if err != nil {
		t.Fatal(err)
	}
	published0 := metric(ctx, t, st, pipeline.Publisher, "anomalyd_publisher_detections_published_total")

	sendErr := make(chan error, 1)
	go func() {
		_, err := send(ctx, st.Brokers(), b, restartRate)
		sendErr <- err
	}()
	err = poll(ctx, 2*time.Minute, "the publisher to publish", func(ctx context.Context) (bool, string, error) {
		v, err := pub.MetricsValue(ctx, "anomalyd_publisher_detections_published_total")
		return v > published0, fmt.Sprintf("%v published", v-published0), err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Kill(); err != nil {
		t.Fatalf("killing the publisher: %v", err)
	}
	if err := pub.Start(ctx); err != nil {
		t.Fatalf("starting the publisher again: %v", err)
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	if err := drain(ctx, st, r.kc); err != nil {
		t.Fatal(err)
	}

	dets, err := readDetectionRecords(ctx, r.kc, detsFrom)
	if err != nil {
		t.Fatal(err)
	}
	byVisitor := make(map[string][]records.Detection)
	for _, d := range dets {
		byVisitor[d.Site+"|"+d.Visitor] = append(byVisitor[d.Site+"|"+d.Visitor], d)
	}
	twice := 0
	for k, ds := range byVisitor {
		slices.SortFunc(ds, func(a, b records.Detection) int { return a.DetectedAt.Compare(b.DetectedAt) })
		for i := 1; i < len(ds); i++ {
			prev, d := ds[i-1], ds[i]
			if d.Revoked != "" {
				continue // it ends prev: what comes after is published anew
			}
			if d.DetectedAt.Before(prev.ExpiresAt) && d.Score < prev.Score+publisher.DefaultRiseMargin {
				twice++
				t.Errorf("%s published again at %s (score %.2f) within the detection of %s (score %.2f)",
					k, d.DetectedAt.Format(time.RFC3339), d.Score, prev.DetectedAt.Format(time.RFC3339), prev.Score)
			}
		}
	}
	if len(dets) == 0 {
		t.Fatal("no detection published: the test shows nothing")
	}
	t.Logf("%d detections of %d visitors after a kill and a restart; %d published twice", len(dets), len(byVisitor), twice)
	checkScoresStored(ctx, t, r, scoresFrom, b)
}
