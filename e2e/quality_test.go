package e2e

import (
	"bytes"
	"strings"
	"testing"

	"github.com/anomalyd/anomalyd/internal/backtest"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/records"
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

// TestBacktestAgrees runs replay backtest's code on the quality run's
// history and live traffic, with the services' settings, and compares its
// detected visitors with those the services published: an operator who
// tries settings with the backtest must see what the services would do.
// They may differ only where the services' event timing shows: sketches
// estimate what the backtest's baselines count exactly, and the detector
// of the quality run did not read the history.
func TestBacktestAgrees(t *testing.T) {
	r := shared(t)
	cfg := backtest.DefaultConfig()
	cfg.Features.Secret = identitySecret
	cfg.Build.MinWindows = 100 // as serviceFlags
	res, err := backtest.Run(t.Context(), cfg, bytes.NewReader(r.hist.lines), bytes.NewReader(r.live.lines))
	if err != nil {
		t.Fatal(err)
	}
	visitors := func(ds []records.Detection) map[string]bool {
		m := make(map[string]bool)
		for _, d := range ds {
			m[d.Site+"|"+d.Visitor] = true
		}
		return m
	}
	services, backtested := visitors(r.detections), visitors(res.Detections)
	var onlyServices, onlyBacktest []string
	for k := range services {
		if !backtested[k] {
			onlyServices = append(onlyServices, k)
		}
	}
	for k := range backtested {
		if !services[k] {
			onlyBacktest = append(onlyBacktest, k)
		}
	}
	t.Logf("detected visitors: services %d, backtest %d; only by the services %v, only by the backtest %v",
		len(services), len(backtested), onlyServices, onlyBacktest)
	for _, s := range res.Sites {
		for _, want := range r.sites {
			if want.Site == s.Site && want.Windows != s.Windows {
				t.Errorf("baseline of %s: the backtest learned from %d visitor-windows, the service from %d", s.Site, s.Windows, want.Windows)
			}
		}
	}
	if diff := len(onlyServices) + len(onlyBacktest); diff > max(1, len(services)/20) {
		t.Errorf("%d detected visitors differ between the services and the backtest, more than 5%% of %d", diff, len(services))
	}
}
