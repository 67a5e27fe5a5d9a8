package traffic

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// isAsset reports whether path is what a page loads rather than a page.
func isAsset(path string) bool {
	return strings.HasPrefix(path, "/static/") || strings.HasPrefix(path, "/api/") ||
		path == "/favicon.ico" || strings.HasPrefix(path, "/apple-touch-icon")
}

// url is the URL of r as a referer names it.
func url(r *Request) string {
	u := "https://" + r.Site + r.Path
	if r.Query != "" {
		u += "?" + r.Query
	}
	return u
}

// TestHumanSpan checks that the human requests of a config are exactly
// Events, in time order, and fill the span: from its first moments to its
// last, with no cliff at either end.
func TestHumanSpan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*Config)
		// deciles: the span is short enough for the diurnal rate to be
		// about flat, and has enough requests for each tenth of it to
		// hold a tenth of them.
		deciles bool
	}{
		{"20 minutes", func(*Config) {}, true},
		{"20 minutes among bots", func(c *Config) { c.Bots = botConfig().Bots }, true},
		{"few visitors", func(c *Config) { c.Sites, c.Visitors, c.Events, c.Duration = 1, 300, 5000, 30*time.Minute }, false},
		{"one second", func(c *Config) { c.Events, c.Duration = 20_000, time.Second }, false},
		{"a year, few events", func(c *Config) { c.Events, c.Duration = 100, 365*24*time.Hour }, false},
		{"one event", func(c *Config) { c.Events = 1 }, false},
		{"no events", func(c *Config) { c.Events = 0 }, false},
		{"zero duration", func(c *Config) { c.Events, c.Duration = 3000, 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := smallConfig()
			tt.modify(&cfg)
			reqs, err := Generate(cfg)
			if err != nil {
				t.Fatal(err)
			}
			end := cfg.Start.Add(cfg.Duration)
			var humans []time.Duration
			for i, r := range reqs {
				if i > 0 && r.Time.Before(reqs[i-1].Time) {
					t.Fatalf("request %d at %v is before request %d at %v", i, r.Time, i-1, reqs[i-1].Time)
				}
				if r.Time.Before(cfg.Start) || r.Time.After(end) || r.Time.Equal(end) && cfg.Duration > 0 {
					t.Fatalf("request %d at %v is outside [%v, +%v)", i, r.Time, cfg.Start, cfg.Duration)
				}
				if r.Label == HumanLabel {
					humans = append(humans, r.Time.Sub(cfg.Start))
				}
			}
			if len(humans) != cfg.Events {
				t.Fatalf("%d human requests, want %d", len(humans), cfg.Events)
			}
			if cfg.Events < 1000 || cfg.Duration == 0 {
				return
			}
			// The first and last human requests are within 1% of the ends.
			if first, last := humans[0], humans[len(humans)-1]; first > cfg.Duration/100 || last < cfg.Duration*99/100 {
				t.Errorf("human requests from +%v to +%v, want within 1%% of 0 and %v", first, last, cfg.Duration)
			}
			if !tt.deciles {
				return
			}
			deciles := make([]int, 10)
			for _, d := range humans {
				deciles[d*10/cfg.Duration]++
			}
			mean := float64(cfg.Events) / 10
			for i, n := range deciles {
				if r := float64(n) / mean; r < 0.85 || r > 1.15 {
					t.Errorf("decile %d of the span has %d human requests, %.2f times the mean; all: %v", i, n, r, deciles)
				}
			}
		})
	}
}

// TestSessionPlan checks the sessions the model plans, one at a time, for
// visitors new to the site: their length, pacing, navigation and assets.
func TestSessionPlan(t *testing.T) {
	t.Parallel()
	cfg := smallConfig()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const sessions = 3000
	far := cfg.Start.Add(1000 * time.Hour)
	var pages, requests, coldLoads, linked, unlinked int
	var thinks []float64
	var buf []Request
	for i := range sessions {
		v := visitor{site: i % cfg.Sites, ip: "192.0.2.1", ua: userAgents[0]}
		buf = g.plan(buf[:0], &v, cfg.Start, far)
		requests += len(buf)
		var prev *Request // the last page (not a 301, followed at once with the same referer)
		firstAssets := map[string]int{}
		views := 0 // in this session
		for j := range buf {
			r := &buf[j]
			if j > 0 && r.Time.Before(buf[j-1].Time) {
				t.Fatalf("session %d: request %d at %v is before the one before, at %v", i, j, r.Time, buf[j-1].Time)
			}
			if isAsset(r.Path) {
				if prev == nil || r.Time.Sub(prev.Time) > 3*time.Second {
					t.Fatalf("session %d: %s without a page in the 3 s before", i, r.Path)
				}
				if !strings.HasPrefix(r.Path, "/apple-touch-icon") && r.Referer != url(prev) {
					t.Fatalf("session %d: %s has referer %q, want its page %q", i, r.Path, r.Referer, url(prev))
				}
				if views == 1 {
					firstAssets[r.Path] = r.Status
				}
				continue
			}
			if r.Status == 301 {
				continue
			}
			if r.Status != 302 {
				pages++
				views++
			}
			if prev != nil {
				if gap := r.Time.Sub(buf[j-1].Time); gap > time.Second {
					thinks = append(thinks, gap.Seconds())
				}
				switch r.Referer {
				case url(prev):
					linked++
				case "":
					unlinked++
				default:
					t.Fatalf("session %d: page %s has referer %q, want %q or none", i, url(r), r.Referer, url(prev))
				}
			}
			prev = r
		}
		// A first visit loads everything; HEAD, rarely, loads nothing.
		if firstAssets["/static/style.css"] == 200 && firstAssets["/static/app.js"] == 200 {
			coldLoads++
		}
	}
	slices.Sort(thinks)
	checks := []struct {
		name     string
		got      float64
		min, max float64
	}{
		{"page views per session", float64(pages) / sessions, 5, 8},
		{"requests per session", float64(requests) / sessions, 10, 25},
		{"median think time, s", thinks[len(thinks)/2], 8, 25},
		{"longest think time, s", thinks[len(thinks)-1], 60, thinkMax + 1},
		{"links followed / pages after the first", float64(linked) / float64(linked+unlinked), 0.9, 0.99},
		{"first pages loading their assets", float64(coldLoads) / sessions, 0.98, 1},
	}
	for _, c := range checks {
		if c.got < c.min || c.got > c.max {
			t.Errorf("%s = %.3f, want %.2f to %.2f", c.name, c.got, c.min, c.max)
		} else {
			t.Logf("%s = %.3f", c.name, c.got)
		}
	}
}

// TestHumansBrowseInSessions checks sessions as the detector sees them, in
// the merged stream: a visitor's requests cluster in time, and assets
// follow their page with it as referer.
func TestHumansBrowseInSessions(t *testing.T) {
	t.Parallel()
	cfg := smallConfig()
	reqs, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	type page struct {
		url string
		at  time.Time
	}
	recent := map[string][]page{} // visitor -> page views of the last seconds
	last := map[string]time.Time{}
	lastPage := map[string]time.Time{}
	var gaps, pageGaps []float64
	var assets, orphans, revalidated int
	for i := range reqs {
		r := &reqs[i]
		v := r.Site + "|" + r.ClientIP + "|" + r.UserAgent
		if at, ok := last[v]; ok {
			gaps = append(gaps, r.Time.Sub(at).Seconds())
		}
		last[v] = r.Time
		if !isAsset(r.Path) {
			if at, ok := lastPage[v]; ok {
				pageGaps = append(pageGaps, r.Time.Sub(at).Seconds())
			}
			lastPage[v] = r.Time
			ps := slices.DeleteFunc(recent[v], func(p page) bool { return r.Time.Sub(p.at) > 5*time.Second })
			recent[v] = append(ps, page{url(r), r.Time})
			continue
		}
		if r.Referer == "" || r.Time.Sub(cfg.Start) < 5*time.Second { // its page may be before the span
			continue
		}
		assets++
		if r.Status == 304 {
			revalidated++
		}
		if !slices.ContainsFunc(recent[v], func(p page) bool { return p.url == r.Referer && r.Time.Sub(p.at) <= 5*time.Second }) {
			orphans++
			if orphans < 5 {
				t.Errorf("%s %s at %v: no page view %s of the visitor in the 5 s before", r.Method, r.Path, r.Time, r.Referer)
			}
		}
	}
	if orphans > 0 {
		t.Errorf("%d of %d assets do not follow their page", orphans, assets)
	}
	slices.Sort(gaps)
	slices.Sort(pageGaps)
	checks := []struct {
		name     string
		got      float64
		min, max float64
	}{
		{"median gap between a visitor's requests, s", gaps[len(gaps)/2], 0.01, 5},
		{"median gap between a visitor's page views, s", pageGaps[len(pageGaps)/2], 1, 30},
		{"requests per visitor", float64(len(reqs)) / float64(len(last)), 10, 100},
		{"assets revalidated (304)", float64(revalidated) / float64(assets), 0.2, 0.8},
	}
	for _, c := range checks {
		if c.got < c.min || c.got > c.max {
			t.Errorf("%s = %.3f, want %.2f to %.2f", c.name, c.got, c.min, c.max)
		} else {
			t.Logf("%s = %.3f", c.name, c.got)
		}
	}
}

// TestDiurnal checks that sessions follow each site's day: over two days,
// its afternoon hours see several times the requests of its night hours.
func TestDiurnal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		sites int
	}{
		{"one site", 1},
		{"sites in their own time zones", len(siteNames)},
	}
	zone := map[string]int{}
	for i, name := range siteNames {
		zone[name] = siteZones[i]
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := smallConfig()
			cfg.Sites, cfg.Events, cfg.Duration = tt.sites, 100_000, 48*time.Hour
			reqs, err := Generate(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var perHour [24]float64 // by the site's local hour
			for _, r := range reqs {
				perHour[r.Time.Add(time.Duration(zone[r.Site])*time.Hour).Hour()]++
			}
			peak := slices.Index(perHour[:], slices.Max(perHour[:]))
			afternoon := perHour[13] + perHour[14] + perHour[15] + perHour[16]
			night := perHour[1] + perHour[2] + perHour[3] + perHour[4]
			t.Logf("requests per local hour: %v", perHour)
			if peak < 12 || peak > 18 {
				t.Errorf("busiest local hour %d, want the afternoon", peak)
			}
			// 1.6 / 0.4 at the extremes; about 3.6 over these hours.
			if r := afternoon / night; r < 2.5 || math.IsNaN(r) {
				t.Errorf("13:00-17:00 has %.1f times the requests of 01:00-05:00, want at least 2.5", r)
			}
		})
	}
}

// liveSessions streams cfg's requests without keeping them, and returns
// the most sessions the generator held at once (in progress or kept for
// reuse): its memory beyond the visitor population.
func liveSessions(t testing.TB, cfg Config) int {
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	most := 0
	for _, ok := g.Next(); ok; _, ok = g.Next() {
		most = max(most, len(g.humans.sessions)+len(g.humans.free))
	}
	return most
}

// TestBoundedMemory checks that the generator streams: at the same request
// rate, four times the requests over four times the span hold about as
// many sessions at once, a small fraction of the requests.
func TestBoundedMemory(t *testing.T) {
	t.Parallel()
	cfg := smallConfig()
	cfg.Events, cfg.Duration = 25_000, 3*time.Minute
	short := liveSessions(t, cfg)
	cfg.Events, cfg.Duration = 100_000, 12*time.Minute
	long := liveSessions(t, cfg)
	t.Logf("sessions held at once: %d for 25k requests, %d for 100k", short, long)
	if float64(long) > 1.5*float64(short) || long > cfg.Events/50 {
		t.Errorf("%d sessions held for 100k requests, %d for 25k: want about as many, under 2%% of the requests", long, short)
	}
}

// BenchmarkGenerate streams DefaultConfig's million human requests and
// reports the most sessions held at once.
func BenchmarkGenerate(b *testing.B) {
	cfg := DefaultConfig()
	b.ReportAllocs()
	for b.Loop() {
		b.ReportMetric(float64(liveSessions(b, cfg)), "sessions")
	}
}
