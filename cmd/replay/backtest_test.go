package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/traffic"
)

// writeTraffic writes cfg's traffic as labelled (or not) JSON lines to a
// file and returns its path.
func writeTraffic(t *testing.T, name string, cfg traffic.Config, labels bool) string {
	t.Helper()
	reqs, err := traffic.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := traffic.WriteJSONL(f, reqs, labels); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBacktest(t *testing.T) {
	hist := traffic.Config{Sites: 2, Visitors: 3000, Events: 120_000, Start: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC),
		Duration: 2 * time.Hour, Seed: 3, Skew: 1.1, SkewOffset: 10}
	live := hist
	live.Seed, live.Events, live.Start, live.Duration = 4, 15_000, hist.Start.Add(hist.Duration), 15*time.Minute
	live.Bots = traffic.EveryScenario(3)
	h := writeTraffic(t, "history.jsonl", hist, true)
	l := writeTraffic(t, "live.jsonl", live, true)
	report := filepath.Join(t.TempDir(), "report.json")

	r := runReplay(t, nil, nil, "backtest", "-history", h, "-traffic", l, "-min-windows", "100", "-report-json", report)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"=== anomalyd backtest report ===", "baselines 2 sites", "quality   precision", "credential-stuffing", "top detections", "*   ", "browser", "api too-few"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}
	js, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"events", "history_events", "scores", "detections", "humans", "false_positives", "precision", "recall", "scenarios", "sites", "top_detections"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON report lacks %q", k)
		}
	}
	if recall, _ := m["recall"].(float64); recall < 0.5 {
		t.Errorf("recall %v on the classic bots: the backtest found too little", m["recall"])
	}

	// Without labels: the detections, one per line.
	unlabelled := writeTraffic(t, "unlabelled.jsonl", live, false)
	r = runReplay(t, nil, nil, "backtest", "-history", h, "-traffic", unlabelled, "-min-windows", "100")
	if r.code != 0 || !strings.Contains(r.stdout, "no precision or recall") || !strings.Contains(r.stdout, "detections (detected_at site visitor") {
		t.Errorf("unlabelled: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := strings.Count(r.stdout, " > "); n < 10 {
		t.Errorf("unlabelled: %d detection lines, want every detection:\n%s", n, r.stdout)
	}

	// The service flags are the services': a threshold above every score
	// finds nothing.
	r = runReplay(t, nil, nil, "backtest", "-history", h, "-traffic", l, "-min-windows", "100", "-threshold", "1000")
	if r.code != 0 || !strings.Contains(r.stdout, "0 detections of 0 visitors") {
		t.Errorf("-threshold 1000: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestBacktestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"backtest", "-h"}, 0, "ANOMALYD_CONTAMINATION"},
		{[]string{"backtest"}, 2, "-history and -traffic are both required"},
		{[]string{"backtest", "-history", "-", "-traffic", "-"}, 2, "cannot both be stdin"},
		{[]string{"backtest", "-history", "h", "-traffic", "t", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"backtest", "-history", "h", "-traffic", "t", "-contamination", "2"}, 2, "contamination"},
		{[]string{"backtest", "-history", "/nonexistent/h", "-traffic", "/nonexistent/t"}, 1, "/nonexistent/h"},
	}
	for _, tc := range tests {
		r := runReplay(t, nil, nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr+r.stdout, tc.want) {
			t.Errorf("%q: exit %d, want %d and %q\n%s%s", tc.args, r.code, tc.code, tc.want, r.stdout, r.stderr)
		}
	}
}
