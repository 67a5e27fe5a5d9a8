package bench

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/backtest"
	"github.com/anomalyd/anomalyd/internal/evaluate"
	"github.com/anomalyd/anomalyd/internal/replay"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// The evaluation harness runs replay backtest's code (internal/backtest:
// the baseline service's build, the detector's Processor and the
// publisher's Selector, without servers) on generated traffic and counts
// detections per visitor against the traffic's labels. The end-to-end
// tests check the same with the real services; this is the fast loop for
// tuning, and a regression test of detection quality.

// evalConfig is one evaluation.
type evalConfig struct {
	history, live traffic.Config
	backtest      backtest.Config
}

func defaultEvalConfig() evalConfig {
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	hist := traffic.Config{
		Sites: 3, Visitors: 6000, Events: 300_000, Start: start, Duration: 3 * time.Hour,
		Seed: 7, Skew: 1.1, SkewOffset: 10,
	}
	live := hist
	live.Seed, live.Events, live.Start, live.Duration = 8, 40_000, start.Add(hist.Duration), 20*time.Minute
	live.Bots = map[traffic.Scenario]int{traffic.Scraper: 6, traffic.CredentialStuffing: 6, traffic.UARotation: 6, traffic.LowAndSlow: 6}
	bt := backtest.DefaultConfig()
	bt.Features.Secret = "evaluation secret 0123456789"
	bt.Build.MinWindows = 100
	return evalConfig{history: hist, live: live, backtest: bt}
}

// runEval backtests cfg and evaluates its detections.
func runEval(tb testing.TB, cfg evalConfig) evaluate.Quality {
	tb.Helper()
	ctx := context.Background()
	hist, live := jsonl(tb, cfg.history), jsonl(tb, cfg.live)
	res, err := backtest.Run(ctx, cfg.backtest, bytes.NewReader(hist), bytes.NewReader(live))
	if err != nil {
		tb.Fatal(err)
	}
	id, err := features.NewIdentity(cfg.backtest.Features.Identity, []byte(cfg.backtest.Features.Secret))
	if err != nil {
		tb.Fatal(err)
	}
	scan, err := evaluate.ScanLines(ctx, bytes.NewReader(live), cfg.backtest.Features.Fields, id, cfg.backtest.Features.Classifier())
	if err != nil {
		tb.Fatal(err)
	}
	return evaluate.Evaluate(res.Detections, scan.Labels)
}

// summary is one line of an evaluation's figures.
func summary(q evaluate.Quality) string {
	s := fmt.Sprintf("precision %.3f recall %.3f humans %d/%d;", *q.Precision, *q.Recall, *q.FalsePositives, *q.Humans)
	for _, l := range slices.Sorted(maps.Keys(q.Scenarios)) {
		s += fmt.Sprintf(" %s %d/%d", l, q.Scenarios[l].Detected, q.Scenarios[l].Visitors)
	}
	return s
}

// TestDetectionQuality checks the goal for detection quality on the
// classic generated traffic, precision 0.9 and recall 0.8 over every bot
// scenario together, counted per visitor, with the services' default
// settings, on traffic of several seeds pooled, so that one lucky draw
// cannot pass it. Each seed must also find at least one bot of every
// scenario. See the README's detection figures.
func TestDetectionQuality(t *testing.T) {
	var bots, found, humans, fps int
	for _, seed := range []uint64{7, 17, 27, 37} {
		cfg := defaultEvalConfig()
		cfg.history.Seed, cfg.live.Seed = seed, seed+1
		q := runEval(t, cfg)
		t.Logf("seed %d: %s", seed, summary(q))
		for _, s := range traffic.Scenarios() {
			if q.Scenarios[string(s)].Detected == 0 {
				t.Errorf("seed %d: no %s bot detected, of %d", seed, s, q.Scenarios[string(s)].Visitors)
			}
			bots += q.Scenarios[string(s)].Visitors
			found += q.Scenarios[string(s)].Detected
		}
		humans += *q.Humans
		fps += *q.FalsePositives
	}
	precision, recall := float64(found)/float64(max(found+fps, 1)), float64(found)/float64(bots)
	t.Logf("pooled: precision %.3f recall %.3f (%d of %d bots, %d of %d humans)", precision, recall, found, bots, fps, humans)
	if precision < 0.9 {
		t.Errorf("pooled precision %.3f, want at least 0.9", precision)
	}
	if recall < 0.8 {
		t.Errorf("pooled recall %.3f, want at least 0.8", recall)
	}
}

// jsonl is cfg's traffic as labelled JSON lines.
func jsonl(tb testing.TB, cfg traffic.Config) []byte {
	tb.Helper()
	return trafficJSONL(tb, cfg, true)
}

// trafficJSONL is cfg's traffic as JSON lines, with labels or without.
func trafficJSONL(tb testing.TB, cfg traffic.Config, labels bool) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if _, err := replay.Generate(tb.Context(), replay.GenerateConfig{Traffic: cfg, Labels: labels}, &buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// realisticEvalConfig is traffic with every option of internal/traffic on:
// kinds of people, site kinds, the automation sites want, bots spread over
// the history (share of its visitors), and in the live traffic five bots
// of each of the twelve individual scenarios and two campaigns of a few
// hundred residential addresses.
func realisticEvalConfig(seed uint64, historyBots float64) evalConfig {
	cfg := defaultEvalConfig()
	cfg.history.Seed, cfg.live.Seed = seed, seed+1
	cfg.history.Sites, cfg.history.Visitors = 4, 8000
	cfg.history.Options = traffic.Realistic()
	cfg.history.Options.Spread.Share = historyBots
	cfg.live.Sites, cfg.live.Visitors = cfg.history.Sites, cfg.history.Visitors
	cfg.live.Options = traffic.Realistic()
	cfg.live.Bots = map[traffic.Scenario]int{}
	for _, s := range traffic.AllScenarios() {
		if !s.Coordinated() {
			cfg.live.Bots[s] = 5
		}
	}
	cfg.backtest.Build.MinWindows = DefaultMinWindows
	return cfg
}

// TestRealisticQualityWide runs the realistic options on traffic of
// another shape than TestRealisticQuality's, which the defaults were not
// chosen on: 12 sites of every kind, 20,000 people and three bots of
// each individual scenario. It asserts the goals for precision and coordinated recall,
// and twice the goal's human false-positive rate: 0.54% of its people
// are detected, above the goal (see the README's detection figures);
// when a blog's campaigns in the history made its people's shapes look
// like crowds there, 2.5% were.
func TestRealisticQualityWide(t *testing.T) {
	cfg := realisticEvalConfig(101, 0.03)
	cfg.history.Sites, cfg.history.Visitors, cfg.history.Events = 12, 20_000, 600_000
	cfg.live.Sites, cfg.live.Visitors, cfg.live.Events = 12, 20_000, 80_000
	for s := range cfg.live.Bots {
		cfg.live.Bots[s] = 3
	}
	checkGoals(t, runEval(t, cfg), 0.01)
}

// TestRealisticQualityDemo runs the traffic of make demo
// DEMO_FLAGS='-options realistic' (seed 1, its sizes and spans, every
// scenario), whose live phase ends an hour before the demo starts, as on
// one evening: live from 21:37 UTC, when 228 people come at once for a
// page shared on a small bank's site. Their first scores, the page and its
// files, were above the threshold, and when a crowd on one page had only
// to score 0.8 of it to be an attack, 129 of them were published and 4%
// of the demo's people detected. It asserts the goals for precision,
// people and coordinated recall.
func TestRealisticQualityDemo(t *testing.T) {
	liveStart := time.Date(2026, 12, 7, 21, 37, 0, 0, time.UTC)
	def := traffic.DefaultConfig()
	cfg := defaultEvalConfig()
	cfg.history = traffic.Config{
		Sites: 6, Visitors: 20_000, Events: 600_000, Start: liveStart.Add(-2 * time.Hour), Duration: 2 * time.Hour,
		Seed: 1, Skew: def.Skew, SkewOffset: def.SkewOffset, Options: traffic.Realistic(),
	}
	cfg.live = cfg.history
	cfg.live.Events, cfg.live.Start, cfg.live.Duration = 150_000, liveStart, 30*time.Minute
	cfg.live.Bots = traffic.EveryScenario(10)
	cfg.backtest.Build.MinWindows = DefaultMinWindows
	checkGoals(t, runEval(t, cfg), 0.005)
}

// checkGoals logs q and checks it against the goals of precision 0.95 and
// coordinated recall 0.8, and at most maxPeople of the people detected.
func checkGoals(t *testing.T, q evaluate.Quality, maxPeople float64) {
	t.Helper()
	t.Logf("%s", summary(q))
	fpr := float64(*q.FalsePositives) / float64(*q.Humans)
	t.Logf("precision %.3f, human false positives %d of %d (%.2f%%), recall %.3f over individual bots, %.3f over %d members of coordinated attacks",
		*q.Precision, *q.FalsePositives, *q.Humans, 100*fpr, q.Individual.Recall, q.Coordinated.Recall, q.Coordinated.Visitors)
	if *q.Precision < 0.95 {
		t.Errorf("precision %.3f, want at least 0.95", *q.Precision)
	}
	if fpr > maxPeople {
		t.Errorf("human false-positive rate %.2f%%, want at most %.1f%%", 100*fpr, 100*maxPeople)
	}
	if r := q.Coordinated.Recall; r < 0.8 {
		t.Errorf("recall %.3f over members of coordinated attacks, want at least 0.8", r)
	}
}

// DefaultMinWindows is the baseline service's default, which the
// realistic evaluation keeps: its sites are about the size of small
// production ones.
var DefaultMinWindows = backtestDefaults().Build.MinWindows

func backtestDefaults() backtest.Config { return backtest.DefaultConfig() }

// TestRealisticQuality measures detection with the services' defaults on
// realistic traffic of four seeds, with 3% and 10% of the history's
// visitors bots, and asserts the goals it meets: precision 0.95, a human
// false-positive rate of at most 0.5% and recall 0.8 over members of
// coordinated attacks, pooled. Recall, per kind, is logged: the goal of
// 0.9 over individual bots is not met yet (see the README's detection
// figures), and today's level is asserted instead.
func TestRealisticQuality(t *testing.T) {
	var bots, found, humans, fps, members, membersFound int
	perKind := make(map[string][2]int)
	for i, seed := range []uint64{11, 21, 31, 41} {
		historyBots := []float64{0.03, 0.03, 0.10, 0.10}[i]
		q := runEval(t, realisticEvalConfig(seed, historyBots))
		t.Logf("seed %d (%.0f%% bots in history): %s", seed, 100*historyBots, summary(q))
		for name, s := range q.Scenarios {
			bots += s.Visitors
			found += s.Detected
			k := perKind[name]
			k[0], k[1] = k[0]+s.Visitors, k[1]+s.Detected
			perKind[name] = k
		}
		if c := q.Coordinated; c != nil {
			members += c.Visitors
			membersFound += c.Detected
		}
		humans += *q.Humans
		fps += *q.FalsePositives
	}
	precision := float64(found) / float64(max(found+fps, 1))
	fpr := float64(fps) / float64(humans)
	individual := float64(found-membersFound) / float64(max(bots-members, 1))
	coordinated := float64(membersFound) / float64(max(members, 1))
	t.Logf("pooled: precision %.3f, human false positives %d of %d (%.2f%%), recall %.3f over individual bots, %.3f over %d members of coordinated attacks",
		precision, fps, humans, 100*fpr, individual, coordinated, members)
	for _, name := range slices.Sorted(maps.Keys(perKind)) {
		k := perKind[name]
		t.Logf("  %-22s %3d of %3d detected", name, k[1], k[0])
	}
	if precision < 0.95 {
		t.Errorf("pooled precision %.3f, want at least 0.95", precision)
	}
	if fpr > 0.005 {
		t.Errorf("pooled human false-positive rate %.2f%%, want at most 0.5%%", 100*fpr)
	}
	// The coordinated goal (0.8) is met; the individual one (0.9) is not,
	// and today's level is asserted instead, so that a change that loses
	// detection shows. The seeds are fixed, so the figures are too (0.705
	// and 0.808 when these floors were set).
	if individual < 0.70 {
		t.Errorf("pooled recall %.3f over individual bots, below today's 0.70", individual)
	}
	if coordinated < 0.8 {
		t.Errorf("pooled recall %.3f over members of coordinated attacks, below the goal of 0.8", coordinated)
	}
}
