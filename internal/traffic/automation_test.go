package traffic

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// gapStats returns the mean of the gaps between times, in seconds, and
// their coefficient of variation.
func gapStats(times []time.Time) (mean, cv float64) {
	var gaps []float64
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]).Seconds())
	}
	if len(gaps) == 0 {
		return 0, 0
	}
	for _, g := range gaps {
		mean += g
	}
	mean /= float64(len(gaps))
	var v float64
	for _, g := range gaps {
		v += (g - mean) * (g - mean)
	}
	return mean, math.Sqrt(v/float64(len(gaps))) / mean
}

// TestAutomation checks each kind of legitimate automation against what
// its profile says, agent by agent.
func TestAutomation(t *testing.T) {
	t.Parallel()
	cfg := tinyConfig(1000, Options{Automation: Automation{
		AppPollers: 0.01, FeedReaders: 2, UptimeMonitors: 2, APIClients: 1, Crawlers: 1, LinkPreviews: 20,
	}})
	cfg.Duration = 40 * time.Minute
	reqs := generate(t, cfg)
	tests := []struct {
		profile string
		check   func(t *testing.T, agent string, rs []*Request)
	}{
		{ProfileAppPoller, func(t *testing.T, agent string, rs []*Request) {
			var polls []time.Time
			for _, r := range rs {
				if r.Referer != "" || isAsset(r.Path) && !strings.HasPrefix(r.Path, "/api/") || strings.HasPrefix(r.UserAgent, "Mozilla") {
					t.Fatalf("%s: %s %s with referer %q, user agent %q", agent, r.Method, r.Path, r.Referer, r.UserAgent)
				}
				if r.Method == "GET" {
					polls = append(polls, r.Time)
				}
			}
			if mean, cv := gapStats(polls); len(polls) > 3 && (mean < 14 || mean > 62 || cv > 0.03) {
				t.Errorf("%s: polls every %.1f s (cv %.3f), want a steady 15 s to 1 min", agent, mean, cv)
			}
		}},
		{ProfileUptimeMonitor, func(t *testing.T, agent string, rs []*Request) {
			var times []time.Time
			for _, r := range rs {
				if !slices.Contains([]string{"/", "/health", "/healthz", "/status", "/api/health"}, r.Path) || r.Referer != "" || r.Status != 200 {
					t.Fatalf("%s: %s %s %d, referer %q", agent, r.Method, r.Path, r.Status, r.Referer)
				}
				times = append(times, r.Time)
			}
			if mean, cv := gapStats(times); len(times) > 2 && (mean < 29 || mean > 302 || cv > 0.01) {
				t.Errorf("%s: checks every %.1f s (cv %.3f), want a steady 30 s to 5 min", agent, mean, cv)
			}
		}},
		{ProfileFeedReader, func(t *testing.T, agent string, rs []*Request) {
			for i, r := range rs {
				feed := strings.Contains(r.Path, "rss") || strings.Contains(r.Path, "feed") || strings.HasSuffix(r.Path, ".xml")
				if !feed || r.Status != 200 && r.Status != 304 || i > 0 && r.Time.Sub(rs[i-1].Time) < 14*time.Minute {
					t.Fatalf("%s: %s %d at %v", agent, r.Path, r.Status, r.Time)
				}
			}
		}},
		{ProfileAPIClient, func(t *testing.T, agent string, rs []*Request) {
			for _, r := range rs {
				if !strings.HasPrefix(r.Path, "/api/v1/") || r.Referer != "" {
					t.Fatalf("%s: %s %s, referer %q", agent, r.Method, r.Path, r.Referer)
				}
			}
		}},
		{ProfileCrawler, func(t *testing.T, agent string, rs []*Request) {
			if rs[0].Path != "/robots.txt" || !strings.Contains(strings.ToLower(rs[0].UserAgent), "bot") {
				t.Errorf("%s: first %s with %q, want robots.txt from a bot", agent, rs[0].Path, rs[0].UserAgent)
			}
			for _, r := range rs {
				if r.Referer != "" || r.Method != "GET" {
					t.Fatalf("%s: %s %s, referer %q", agent, r.Method, r.Path, r.Referer)
				}
			}
		}},
		{ProfileLinkPreview, func(t *testing.T, agent string, rs []*Request) {
			for _, r := range rs {
				if r.Referer != "" || r.Method != "GET" || !slices.ContainsFunc(previewers, func(p previewer) bool { return p.ua == r.UserAgent }) {
					t.Fatalf("%s: %s %s, referer %q, user agent %q", agent, r.Method, r.Path, r.Referer, r.UserAgent)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			agents := byAgent(reqs, func(r *Request) bool { return r.Profile == tt.profile })
			if len(agents) < 5 {
				t.Fatalf("%d agents", len(agents))
			}
			n := 0
			for agent, rs := range agents {
				if r := rs[0]; r.Label != HumanLabel {
					t.Fatalf("%s: label %q", agent, r.Label)
				}
				n += len(rs)
				tt.check(t, agent, rs)
			}
			t.Logf("%d agents, %d requests", len(agents), n)
		})
	}
}
