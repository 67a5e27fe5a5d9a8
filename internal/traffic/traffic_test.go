package traffic

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func smallConfig() Config {
	c := DefaultConfig()
	c.Visitors = 10_000
	c.Events = 50_000
	return c
}

func TestDeterminism(t *testing.T) {
	tests := []struct {
		name     string
		other    func(Config) Config
		wantSame bool
	}{
		{"same seed", func(c Config) Config { return c }, true},
		{"other seed", func(c Config) Config { c.Seed++; return c }, false},
		{"other skew", func(c Config) Config { c.Skew = 1.5; return c }, false},
	}
	base := smallConfig()
	want, err := Generate(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != base.Events {
		t.Fatalf("generated %d requests, want %d", len(want), base.Events)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Generate(tt.other(base))
			if err != nil {
				t.Fatal(err)
			}
			if same := slices.Equal(got, want); same != tt.wantSame {
				t.Errorf("sequences equal = %v, want %v", same, tt.wantSame)
			}
		})
	}
}

func TestShape(t *testing.T) {
	cfg := DefaultConfig() // the population the benchmarks use
	cfg.Events = 300_000
	reqs, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	perVisitor := map[string]int{}
	sites := map[string]bool{}
	var get, head, nonGET, ok200, notModified, moved, notFound, status4xx, withQuery, withReferer int
	for i, r := range reqs {
		if i > 0 && r.Time.Before(reqs[i-1].Time) {
			t.Fatalf("request %d at %v is before request %d at %v", i, r.Time, i-1, reqs[i-1].Time)
		}
		if r.Time.Before(cfg.Start) || !r.Time.Before(cfg.Start.Add(cfg.Duration)) {
			t.Fatalf("request %d at %v is outside [%v, +%v)", i, r.Time, cfg.Start, cfg.Duration)
		}
		if r.Site == "" || r.ClientIP == "" || r.UserAgent == "" || !strings.HasPrefix(r.Path, "/") {
			t.Fatalf("request %d is incomplete: %+v", i, r)
		}
		perVisitor[r.Site+"|"+r.ClientIP]++
		sites[r.Site] = true
		switch r.Method {
		case "GET":
			get++
		case "HEAD":
			head++
		}
		if r.Method != "GET" {
			nonGET++
		}
		switch r.Status {
		case 200:
			ok200++
		case 301:
			moved++
		case 304:
			notModified++
		case 404:
			notFound++
		}
		if r.Status >= 400 && r.Status < 500 {
			status4xx++
		}
		if r.Query != "" {
			withQuery++
		}
		if r.Referer != "" {
			withReferer++
		}
	}

	// Zipf skew: the top 1% of the visitor population sends a large share.
	counts := make([]int, 0, len(perVisitor))
	for _, n := range perVisitor {
		counts = append(counts, n)
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	top := 0
	for _, n := range counts[:cfg.Visitors/100] {
		top += n
	}
	share := func(n int) float64 { return float64(n) / float64(len(reqs)) }
	checks := []struct {
		name     string
		got      float64
		min, max float64
	}{
		{"top 1% visitors' share", share(top), 0.5, 0.95},
		{"heaviest visitor's share", share(counts[0]), 0.005, 0.05},
		{"GET share", share(get), 0.9, 0.99},
		{"non-GET share", share(nonGET), 0.01, 0.1},
		{"HEAD share", share(head), 0.0001, 0.005},
		// Assets revalidated by browsers that have them cached: 304.
		{"200 share", share(ok200), 0.5, 0.85},
		{"304 share", share(notModified), 0.1, 0.45},
		{"301 share", share(moved), 0.001, 0.02},
		{"404 share", share(notFound), 0.01, 0.03},
		{"4xx share", share(status4xx), 0.01, 0.04},
		{"share with a query", share(withQuery), 0.02, 0.5},
		{"share with a referer", share(withReferer), 0.85, 0.95},
		{"sites seen / sites", float64(len(sites)) / float64(cfg.Sites), 1, 1},
		// A visitor who appears sends a session of requests, so 300k
		// requests come from far fewer visitors than they did one by one.
		{"visitors seen / population", float64(len(perVisitor)) / float64(cfg.Visitors), 0.03, 0.5},
	}
	for _, c := range checks {
		if c.got < c.min || c.got > c.max {
			t.Errorf("%s = %.4f, want %.4f to %.4f", c.name, c.got, c.min, c.max)
		} else {
			t.Logf("%s = %.4f", c.name, c.got)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
	}{
		{"no sites", func(c *Config) { c.Sites = 0 }},
		{"no visitors", func(c *Config) { c.Visitors = 0 }},
		{"negative events", func(c *Config) { c.Events = -1 }},
		{"negative duration", func(c *Config) { c.Duration = -time.Second }},
		{"skew 1", func(c *Config) { c.Skew = 1 }},
		{"skew offset 0", func(c *Config) { c.SkewOffset = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.modify(&c)
			if _, err := New(c); !errors.Is(err, ErrConfig) {
				t.Errorf("New: error %v, want ErrConfig", err)
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
}

func TestLogpushJSON(t *testing.T) {
	r := Request{
		Time: time.Unix(1_700_000_000, 123), Site: "shop.example", ClientIP: "192.0.2.9",
		Method: "GET", Path: "/search", Query: "q=a\"b", UserAgent: "UA", Referer: "", Status: 200,
	}
	b, err := r.LogpushJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"EdgeStartTimestamp":1700000000000000123,"ZoneName":"shop.example","ClientIP":"192.0.2.9",` +
		`"ClientRequestMethod":"GET","ClientRequestPath":"/search","ClientRequestURI":"/search?q=a\"b",` +
		`"ClientRequestUserAgent":"UA","ClientRequestReferer":"","EdgeResponseStatus":200}`
	if string(b) != want {
		t.Errorf("LogpushJSON =\n%s\nwant\n%s", b, want)
	}
}
