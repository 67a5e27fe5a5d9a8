package traffic

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestPeopleShares checks that the kinds of people come out in the shares
// of People, offices and carrier addresses included.
func TestPeopleShares(t *testing.T) {
	t.Parallel()
	cfg := tinyConfig(100, Options{People: Realistic().People})
	cfg.Visitors = 30_000
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	count := map[profile]int{}
	for _, v := range g.visitors {
		count[v.profile]++
	}
	p := cfg.Options.People
	regular := 1 - p.Office - p.Carrier - p.Privacy - p.WarmCache - p.PowerUser - p.Bouncer - p.MobileApp
	for _, c := range []struct {
		kind  profile
		share float64
	}{
		{profRegular, regular}, {profOffice, p.Office}, {profCarrier, p.Carrier}, {profPrivacy, p.Privacy},
		{profWarm, p.WarmCache}, {profPower, p.PowerUser}, {profBouncer, p.Bouncer}, {profApp, p.MobileApp},
	} {
		got := float64(count[c.kind]) / float64(cfg.Visitors)
		if math.Abs(got-c.share) > 0.02 {
			t.Errorf("%s: %.3f of the visitors, want %.3f", profileNames[c.kind], got, c.share)
		}
	}
}

// TestPeopleSessions plans sessions of visitors of each kind and checks
// what the kind says they do.
func TestPeopleSessions(t *testing.T) {
	t.Parallel()
	cfg := tinyConfig(100, Options{People: People{Privacy: 0.15, WarmCache: 0.15, PowerUser: 0.15, Bouncer: 0.15, MobileApp: 0.15}})
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	type stats struct {
		sessions, pages, assets, referers, tracking, api, mozilla int
	}
	plan := func(kind profile) stats {
		var s stats
		far := cfg.Start.Add(1000 * time.Hour)
		var buf []Request
		for i := range g.visitors {
			if s.sessions == 300 {
				break
			}
			if g.visitors[i].profile != kind {
				continue
			}
			v := g.visitors[i] // a copy: planning marks it seen
			buf = g.plan(buf[:0], &v, cfg.Start, far)
			s.sessions++
			for _, r := range buf {
				switch {
				case strings.HasPrefix(r.Path, "/api/"):
					s.api++
				case isAsset(r.Path):
					s.assets++
				case r.Status != 301 && r.Status != 302 && r.Method != "POST":
					s.pages++
				}
				if r.Referer != "" {
					s.referers++
				}
				if strings.Contains(r.Query, "utm_") || strings.Contains(r.Query, "gclid") {
					s.tracking++
				}
				if r.UserAgent == v.ua && strings.HasPrefix(r.UserAgent, "Mozilla") {
					s.mozilla++
				}
			}
		}
		return s
	}
	regular := plan(profRegular)
	perPage := func(s stats) float64 { return float64(s.assets) / float64(s.pages) }
	tests := []struct {
		kind  profile
		check func(s stats) (name string, got, lo, hi float64)
	}{
		{profRegular, func(s stats) (string, float64, float64, float64) {
			return "pages per session", float64(s.pages) / float64(s.sessions), 4, 9
		}},
		{profPrivacy, func(s stats) (string, float64, float64, float64) {
			return "referers + tracking parameters", float64(s.referers + s.tracking), 0, 0
		}},
		{profWarm, func(s stats) (string, float64, float64, float64) {
			return "static files per page, over a regular visitor's", perPage(s) / perPage(regular), 0, 0.4
		}},
		{profPower, func(s stats) (string, float64, float64, float64) {
			return "pages per session", float64(s.pages) / float64(s.sessions), 15, 40
		}},
		{profBouncer, func(s stats) (string, float64, float64, float64) {
			return "pages per session", float64(s.pages) / float64(s.sessions), 1, 1
		}},
		{profApp, func(s stats) (string, float64, float64, float64) {
			return "browser requests from the app's user agent", float64(s.mozilla), 0, 0
		}},
		{profApp, func(s stats) (string, float64, float64, float64) {
			return "API calls per session", float64(s.api) / float64(s.sessions), 3, 20
		}},
	}
	for _, tt := range tests {
		s := plan(tt.kind)
		if s.sessions < 100 {
			t.Fatalf("%s: %d sessions", profileNames[tt.kind], s.sessions)
		}
		name, got, lo, hi := tt.check(s)
		if got < lo || got > hi {
			t.Errorf("%s: %s = %.3f, want %.2f to %.2f", profileNames[tt.kind], name, got, lo, hi)
		} else {
			t.Logf("%s: %s = %.3f", profileNames[tt.kind], name, got)
		}
	}
}

// TestSharedAddresses checks that offices and carrier addresses carry
// several people at once: distinct user agents on one address within a
// minute of each other.
func TestSharedAddresses(t *testing.T) {
	t.Parallel()
	cfg := tinyConfig(6000, Options{People: People{Office: 0.3, Carrier: 0.3}})
	reqs := generate(t, cfg)
	for _, kind := range []string{ProfileOffice, ProfileCarrier} {
		crowded, sites := 0, 0
		for _, rs := range byAgent(reqs, func(r *Request) bool { return r.Profile == kind }) {
			last := map[string]time.Time{} // user agent -> its last request
			most := 0
			for _, r := range rs {
				last[r.UserAgent] = r.Time
				now := 0
				for _, at := range last {
					if r.Time.Sub(at) <= time.Minute {
						now++
					}
				}
				most = max(most, now)
			}
			if most >= 2 {
				crowded++
			}
			sites++
		}
		t.Logf("%s: %d of %d addresses with several user agents within a minute", kind, crowded, sites)
		if crowded < 3 {
			t.Errorf("%s: %d addresses with several user agents at once, want at least 3", kind, crowded)
		}
	}
}
