package backtest

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/replay"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// testTraffic is a small history of people and the live traffic after it
// with a few bots, as JSONL without labels.
func testTraffic(t *testing.T) (history, live []byte) {
	t.Helper()
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	hist := traffic.Config{Sites: 2, Visitors: 2000, Events: 60_000, Start: start, Duration: time.Hour, Seed: 3, Skew: 1.1, SkewOffset: 10}
	lv := hist
	lv.Seed, lv.Events, lv.Start, lv.Duration = 4, 10_000, start.Add(hist.Duration), 10*time.Minute
	lv.Bots = map[traffic.Scenario]int{traffic.Scraper: 2, traffic.CredentialStuffing: 2}
	write := func(cfg traffic.Config) []byte {
		var buf bytes.Buffer
		if _, err := replay.Generate(t.Context(), replay.GenerateConfig{Traffic: cfg}, &buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	return write(hist), write(lv)
}

func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Build.MinWindows = 100
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRun: every line is read and accounted for, malformed ones counted
// without stopping the run, every site gets its baselines, the bots are
// scored and detected, and the same files give the same detections.
func TestRun(t *testing.T) {
	history, live := testTraffic(t)
	lines := func(b []byte) int64 { return int64(bytes.Count(b, []byte("\n"))) }
	// Two lines the services would dead-letter, and a blank one, which is
	// not an event.
	live = append(live, "{not json\n\n{\"ZoneName\":\"a.example\"}\n"...)

	cfg := testConfig(t)
	res, err := Run(t.Context(), cfg, bytes.NewReader(history), bytes.NewReader(live))
	if err != nil {
		t.Fatal(err)
	}
	if res.HistoryEvents != lines(history) || res.Events != lines(live)-1 {
		t.Errorf("read %d history and %d live events, want %d and %d", res.HistoryEvents, res.Events, lines(history), lines(live)-1)
	}
	if res.Malformed != 2 {
		t.Errorf("%d malformed lines, want 2", res.Malformed)
	}
	var sites []string
	for _, s := range res.Sites {
		sites = append(sites, s.Site)
		if s.Status != "ok" || s.Windows == 0 || s.Threshold <= 0 {
			t.Errorf("site %s: status %s, %d windows, threshold %v: %s", s.Site, s.Status, s.Windows, s.Threshold, s.Error)
		}
	}
	if len(sites) != 3 || !slices.Contains(sites, "*") {
		t.Errorf("baselines of %v, want the two sites and the pool (*)", sites)
	}
	if res.Scores == 0 || len(res.Detections) == 0 {
		t.Fatalf("%d scores and %d detections: the test shows nothing", res.Scores, len(res.Detections))
	}
	for _, d := range res.Detections {
		if err := d.Validate(); err != nil {
			t.Errorf("detection %+v: %v", d, err)
		}
	}

	again, err := Run(t.Context(), cfg, bytes.NewReader(history), bytes.NewReader(live))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(again.Detections), keys(res.Detections); !slices.Equal(got, want) {
		t.Errorf("a second run detected %d (%v...), the first %d (%v...)", len(got), got[:min(3, len(got))], len(want), want[:min(3, len(want))])
	}
}

// keys are the detections' visitors and times, in order.
func keys(ds []records.Detection) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Site + "|" + d.Visitor + "|" + d.DetectedAt.Format(time.RFC3339Nano)
	}
	return out
}

// TestRunTooLittleHistory: a history too short for a baseline says so per
// site and class, and scores nothing.
func TestRunTooLittleHistory(t *testing.T) {
	history, live := testTraffic(t)
	cfg := testConfig(t)
	cfg.Build.MinWindows = 1_000_000
	res, err := Run(t.Context(), cfg, bytes.NewReader(history), bytes.NewReader(live))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Sites {
		if s.Status != "too-few" || !strings.Contains(s.Error, "too few") {
			t.Errorf("site %s: status %q, error %q; want too-few", s.Site, s.Status, s.Error)
		}
	}
	if res.Scores != 0 || len(res.Detections) != 0 {
		t.Errorf("%d scores and %d detections without a baseline", res.Scores, len(res.Detections))
	}
}
