package traffic

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSpread checks bots in the history: each active for a bounded
// lifetime, their starts over the whole span, and Share as a share of the
// visitors.
func TestSpread(t *testing.T) {
	t.Parallel()
	t.Run("lifetimes", func(t *testing.T) {
		cfg := tinyConfig(1000, Options{Spread: Spread{
			Bots:        Bots{UARotation: 20, LowAndSlow: 20, PriceMonitor: 10, SpamPoster: 10},
			MinLifetime: 2 * time.Minute, MaxLifetime: 15 * time.Minute,
		}})
		cfg.Duration = 2 * time.Hour
		bots := byAgent(generate(t, cfg), func(r *Request) bool { return r.Label != HumanLabel })
		var deciles [10]int
		for id, rs := range bots {
			first, last := rs[0].Time, rs[len(rs)-1].Time
			if life := last.Sub(first); life > 15*time.Minute {
				t.Errorf("%s (%s): active for %v, want at most 15 minutes", id, rs[0].Label, life)
			}
			deciles[first.Sub(cfg.Start)*10/cfg.Duration]++
		}
		if len(bots) < 55 {
			t.Errorf("%d bots active, want about 60", len(bots))
		}
		for i, n := range deciles {
			if n == 0 {
				t.Errorf("no bot starts in decile %d of the span: %v", i, deciles)
			}
		}
	})
	t.Run("share", func(t *testing.T) {
		cfg := tinyConfig(4000, Options{Spread: Spread{Share: 0.05, Scenarios: []Scenario{LowAndSlow, PriceMonitor}}})
		reqs := generate(t, cfg)
		bots := byAgent(reqs, func(r *Request) bool { return r.Label != HumanLabel })
		people := byAgent(reqs, func(r *Request) bool { return r.Label == HumanLabel })
		share := float64(len(bots)) / float64(len(bots)+len(people))
		t.Logf("%d bots among %d visitors: %.3f", len(bots), len(bots)+len(people), share)
		if share < 0.02 || share > 0.1 {
			t.Errorf("bots are %.3f of the visitors, want about 0.05", share)
		}
	})
}

// TestCampaigns checks coordinated attacks: many residential addresses per
// group, each with a few requests.
func TestCampaigns(t *testing.T) {
	t.Parallel()
	residential := map[uint32]bool{}
	for _, n := range networks {
		if n.kind == asResidential || n.kind == asMobile {
			residential[n.asn] = true
		}
	}
	tests := []struct {
		name      string
		opts      Campaigns
		bots      Bots
		addresses [2]int // per group
	}{
		{"options", Campaigns{Scraping: 1, Stuffing: 1, Addresses: 150}, nil, [2]int{150, 150}},
		{"bots flag", Campaigns{}, Bots{DistributedStuffing: 1}, [2]int{200, 500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tinyConfig(500, Options{Campaigns: tt.opts, LogFields: true})
			cfg.Bots = tt.bots
			groups := map[string][]*Request{}
			reqs := generate(t, cfg)
			for i := range reqs {
				if r := &reqs[i]; r.Group != "" {
					groups[r.Group] = append(groups[r.Group], r)
				}
			}
			if len(groups) != tt.opts.Scraping+tt.opts.Stuffing+tt.bots[DistributedStuffing] {
				t.Fatalf("groups %v", slices.Collect(maps.Keys(groups)))
			}
			for g, rs := range groups {
				ips, uas, uris := map[string]int{}, map[string]bool{}, map[string]bool{}
				posts := 0
				for _, r := range rs {
					ips[r.ClientIP]++
					uas[r.UserAgent] = true
					uris[r.Path+"?"+r.Query] = true
					if r.Method == "POST" {
						posts++
					}
					if !residential[r.ASN] || r.Profile != ProfileResidentialProxy || !Scenario(r.Label).Coordinated() {
						t.Fatalf("%s: %s from AS%d, profile %q", g, r.Label, r.ASN, r.Profile)
					}
				}
				if n := len(ips); n < tt.addresses[0] || n > tt.addresses[1] {
					t.Errorf("%s: %d addresses, want %d to %d", g, n, tt.addresses[0], tt.addresses[1])
				}
				for ip, n := range ips {
					if n > 8 {
						t.Errorf("%s: %s sent %d requests, want at most 8", g, ip, n)
					}
				}
				if len(uas) < 20 {
					t.Errorf("%s: %d user agents, want many", g, len(uas))
				}
				switch rs[0].Label {
				case string(DistributedScraper):
					if share := float64(len(uris)) / float64(len(rs)); posts > 0 || share < 0.8 {
						t.Errorf("%s: %d POSTs, %.2f distinct URLs per request, want a catalogue walk", g, posts, share)
					}
				case string(DistributedStuffing):
					if share := float64(posts) / float64(len(rs)); share < 0.6 {
						t.Errorf("%s: %.2f POSTs, want mostly login attempts", g, share)
					}
				}
				t.Logf("%s (%s): %d addresses, %d requests, %d user agents", g, rs[0].Label, len(ips), len(rs), len(uas))
			}
		})
	}
}

// scenarioStats is what the bots of one scenario sent.
type scenarioStats struct {
	bots                                               map[string]int // site|ip -> requests
	requests, posts, assets, api, referers, s4xx, s404 int
	postS4xx                                           int
	postPaths                                          map[string]int
	paths, uris, uas, profiles                         map[string]bool
}

// TestNewScenarios checks that the bots of each newer scenario do what its
// documentation says, and that no two of them are alike.
func TestNewScenarios(t *testing.T) {
	t.Parallel()
	cfg := tinyConfig(500, Options{})
	cfg.Bots = Bots{}
	for _, s := range individualScenarios()[4:] {
		cfg.Bots[s] = 4
	}
	stats := map[Scenario]*scenarioStats{}
	for _, r := range generate(t, cfg) {
		if r.Label == HumanLabel {
			continue
		}
		s := stats[Scenario(r.Label)]
		if s == nil {
			s = &scenarioStats{bots: map[string]int{}, postPaths: map[string]int{}, paths: map[string]bool{}, uris: map[string]bool{}, uas: map[string]bool{}, profiles: map[string]bool{}}
			stats[Scenario(r.Label)] = s
		}
		s.bots[r.Site+"|"+r.ClientIP]++
		s.requests++
		s.paths[r.Path] = true
		s.uris[r.Path+"?"+r.Query] = true
		s.uas[r.UserAgent] = true
		s.profiles[r.Profile] = true
		if r.Method == "POST" {
			s.posts++
			s.postPaths[r.Path]++
			if r.Status >= 400 {
				s.postS4xx++
			}
		}
		switch {
		case strings.HasPrefix(r.Path, "/api/") || r.Path == "/graphql":
			s.api++
		case isAsset(r.Path):
			s.assets++
		}
		if r.Referer != "" {
			s.referers++
		}
		if r.Status >= 400 && r.Status < 500 {
			s.s4xx++
		}
		if r.Status == 404 {
			s.s404++
		}
	}
	ratio := func(n, d int) float64 { return float64(n) / float64(d) }
	tests := []struct {
		scenario Scenario
		profiles []string
		check    func(s *scenarioStats) (name string, got, lo, hi float64)
	}{
		{HeadlessBrowser, []string{"headless-chrome", "stealth-chrome"}, func(s *scenarioStats) (string, float64, float64, float64) {
			return "static files per request", ratio(s.assets, s.requests), 0.25, 0.8
		}},
		{HeadlessBrowser, nil, func(s *scenarioStats) (string, float64, float64, float64) {
			return "requests with a referer", ratio(s.referers, s.requests), 0.8, 1
		}},
		{PriceMonitor, []string{"tool", "browser-ua", "json-api"}, func(s *scenarioStats) (string, float64, float64, float64) {
			return "distinct paths per bot", ratio(len(s.paths), len(s.bots)), 3, 25
		}},
		{PriceMonitor, nil, func(s *scenarioStats) (string, float64, float64, float64) {
			return "POSTs and static files", float64(s.posts + s.assets), 0, 0
		}},
		{Scalper, []string{"add-to-cart", "checkout-hold"}, func(s *scenarioStats) (string, float64, float64, float64) {
			return "POST share", ratio(s.posts, s.requests), 0.3, 0.8
		}},
		{Scalper, nil, func(s *scenarioStats) (string, float64, float64, float64) {
			return "orders placed (POST /checkout)", float64(s.postPaths["/checkout"]), 0, 0
		}},
		{Scalper, nil, func(s *scenarioStats) (string, float64, float64, float64) {
			return "checkouts started (GET /checkout)", float64(countTrue(s.paths["/checkout"])), 1, 1
		}},
		{SpamPoster, []string{"review-spam", "contact-form"}, func(s *scenarioStats) (string, float64, float64, float64) {
			return "POST share", ratio(s.posts, s.requests), 0.4, 1
		}},
		{SpamPoster, nil, func(s *scenarioStats) (string, float64, float64, float64) {
			return "POSTs refused (4xx)", ratio(s.postS4xx, s.posts), 0.4, 0.9
		}},
		{VulnScanner, []string{"wordpress-probe", "generic-probe", "nuclei", "sqli-probe"}, func(s *scenarioStats) (string, float64, float64, float64) {
			return "4xx share", ratio(s.s4xx, s.requests), 0.6, 1
		}},
		{VulnScanner, nil, func(s *scenarioStats) (string, float64, float64, float64) {
			return "distinct URLs per request", ratio(len(s.uris), s.requests), 0.5, 1
		}},
		{Carding, []string{"card-testing", "gift-card"}, func(s *scenarioStats) (string, float64, float64, float64) {
			return "POST share", ratio(s.posts, s.requests), 0.7, 1
		}},
		{Carding, nil, func(s *scenarioStats) (string, float64, float64, float64) {
			return "POSTs refused or declined", ratio(s.postS4xx, s.posts), 0.7, 1
		}},
		{FakeSignup, []string{"web-form", "api"}, func(s *scenarioStats) (string, float64, float64, float64) {
			return "POSTs per bot", ratio(s.posts, len(s.bots)), 3, 200
		}},
		{APIScraper, []string{"paged-list", "id-walk", "graphql"}, func(s *scenarioStats) (string, float64, float64, float64) {
			return "API share", ratio(s.api, s.requests), 1, 1
		}},
	}
	for _, tt := range tests {
		s := stats[tt.scenario]
		if s == nil || len(s.bots) != cfg.Bots[tt.scenario] {
			t.Fatalf("%s: %v, want %d bots", tt.scenario, s, cfg.Bots[tt.scenario])
		}
		name, got, lo, hi := tt.check(s)
		if got < lo || got > hi {
			t.Errorf("%s: %s = %.3f, want %.2f to %.2f", tt.scenario, name, got, lo, hi)
		} else {
			t.Logf("%s: %s = %.3f", tt.scenario, name, got)
		}
		for p := range s.profiles {
			if tt.profiles != nil && !slices.Contains(tt.profiles, p) {
				t.Errorf("%s: profile %q, want one of %v", tt.scenario, p, tt.profiles)
			}
		}
		// Per-bot variation: not every bot sends as many requests.
		counts := slices.Collect(maps.Values(s.bots))
		if slices.Min(counts) == slices.Max(counts) {
			t.Errorf("%s: every bot sent %d requests", tt.scenario, counts[0])
		}
	}
}

func countTrue(b bool) int {
	if b {
		return 1
	}
	return 0
}
