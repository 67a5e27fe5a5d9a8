package traffic

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/pkg/features"
)

// TestHumanSequencePinned pins the human traffic of smallConfig, with or
// without bots: benchmarks and baselines compare runs on it, so any change
// to it must be deliberate. It last changed when humans started browsing in
// sessions (page views, their assets, diurnal session starts).
func TestHumanSequencePinned(t *testing.T) {
	tests := []struct {
		name string
		bots map[Scenario]int
	}{
		{"no bots", nil},
		{"zero bots", map[Scenario]int{Scraper: 0, LowAndSlow: 0}},
		{"humans among bots", map[Scenario]int{Scraper: 3, CredentialStuffing: 2, UARotation: 2, LowAndSlow: 5}},
	}
	const wantSum = "0441804b5fa440d597c36a16fa78216c2fbb6bf8d9cd613f8a3681af9eda87a9"
	wantLines := map[int]string{
		0: `{"EdgeStartTimestamp":1767225600002150053,"ZoneName":"tickets.example.com","ClientIP":"185.101.12.95",` +
			`"ClientRequestMethod":"GET","ClientRequestPath":"/api/search","ClientRequestURI":"/api/search?q=printer",` +
			`"ClientRequestUserAgent":"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",` +
			`"ClientRequestReferer":"https://tickets.example.com/search?q=printer","EdgeResponseStatus":200}`,
		1: `{"EdgeStartTimestamp":1767225600026375689,"ZoneName":"news.example.org","ClientIP":"99.118.96.235",` +
			`"ClientRequestMethod":"GET","ClientRequestPath":"/search","ClientRequestURI":"/search?q=backpack",` +
			`"ClientRequestUserAgent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",` +
			`"ClientRequestReferer":"https://news.example.org/","EdgeResponseStatus":200}`,
		49999: `{"EdgeStartTimestamp":1767226799996954591,"ZoneName":"shop.example.com","ClientIP":"204.189.55.75",` +
			`"ClientRequestMethod":"GET","ClientRequestPath":"/static/app.js","ClientRequestURI":"/static/app.js",` +
			`"ClientRequestUserAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",` +
			`"ClientRequestReferer":"https://shop.example.com/products/71889","EdgeResponseStatus":304}`,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := smallConfig()
			cfg.Bots = tt.bots
			reqs, err := Generate(cfg)
			if err != nil {
				t.Fatal(err)
			}
			reqs = slices.DeleteFunc(reqs, func(r Request) bool { return r.Label != HumanLabel })
			if len(reqs) != cfg.Events {
				t.Fatalf("%d human requests, want %d", len(reqs), cfg.Events)
			}
			var buf bytes.Buffer
			if err := WriteJSONL(&buf, reqs, false); err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(buf.Bytes()); hex.EncodeToString(sum[:]) != wantSum {
				t.Errorf("human sequence SHA-256 = %x, want %s", sum, wantSum)
			}
			lines := strings.Split(buf.String(), "\n")
			for i, want := range wantLines {
				if lines[i] != want {
					t.Errorf("request %d =\n%s\nwant\n%s", i, lines[i], want)
				}
			}
		})
	}
}

func botConfig() Config {
	c := smallConfig()
	c.Bots = map[Scenario]int{Scraper: 2, CredentialStuffing: 3, UARotation: 4, LowAndSlow: 5}
	return c
}

func TestBotsDeterminism(t *testing.T) {
	tests := []struct {
		name     string
		other    func(Config) Config
		wantSame bool
	}{
		{"same config", func(c Config) Config { return c }, true},
		{"same counts, new map", func(c Config) Config { c.Bots = maps.Clone(c.Bots); return c }, true},
		{"other seed", func(c Config) Config { c.Seed++; return c }, false},
		{"one more bot", func(c Config) Config { c.Bots = maps.Clone(c.Bots); c.Bots[LowAndSlow]++; return c }, false},
	}
	want, err := Generate(botConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Generate(tt.other(botConfig()))
			if err != nil {
				t.Fatal(err)
			}
			if same := slices.Equal(got, want); same != tt.wantSame {
				t.Errorf("sequences equal = %v, want %v", same, tt.wantSame)
			}
		})
	}
}

// botStats is what one bot visitor sent over the whole span.
type botStats struct {
	requests, post, status4xx, withReferer int
	paths, uas                             map[string]bool
	first, last                            time.Time
}

func TestBotScenarios(t *testing.T) {
	cfg := botConfig()
	reqs, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	end := cfg.Start.Add(cfg.Duration)
	stats := map[string]map[string]*botStats{} // label -> site|ip -> stats
	botSites := map[string]bool{}
	for i, r := range reqs {
		if i > 0 && r.Time.Before(reqs[i-1].Time) {
			t.Fatalf("request %d at %v is before request %d at %v", i, r.Time, i-1, reqs[i-1].Time)
		}
		if r.Time.Before(cfg.Start) || !r.Time.Before(end) {
			t.Fatalf("request %d at %v is outside the span", i, r.Time)
		}
		if r.Site == "" || r.ClientIP == "" || r.UserAgent == "" || !strings.HasPrefix(r.Path, "/") || r.Label == "" {
			t.Fatalf("request %d is incomplete: %+v", i, r)
		}
		if r.Label == HumanLabel {
			continue
		}
		botSites[r.Site] = true
		if stats[r.Label] == nil {
			stats[r.Label] = map[string]*botStats{}
		}
		s := stats[r.Label][r.Site+"|"+r.ClientIP]
		if s == nil {
			s = &botStats{paths: map[string]bool{}, uas: map[string]bool{}, first: r.Time}
			stats[r.Label][r.Site+"|"+r.ClientIP] = s
		}
		s.requests++
		s.paths[r.Path] = true
		s.uas[r.UserAgent] = true
		s.last = r.Time
		if r.Method == "POST" {
			s.post++
		}
		if r.Status >= 400 && r.Status < 500 {
			s.status4xx++
		}
		if r.Referer != "" {
			s.withReferer++
		}
	}
	if len(stats) != len(Scenarios()) {
		t.Errorf("labels %v, want one per scenario", slices.Sorted(maps.Keys(stats)))
	}
	if want := min(cfg.Sites, 14); len(botSites) != want {
		t.Errorf("bots on %d sites, want %d (round robin)", len(botSites), want)
	}

	ratio := func(n, d int) float64 { return float64(n) / float64(d) }
	perMinute := func(s *botStats) float64 {
		return float64(s.requests-1) / s.last.Sub(s.first).Minutes()
	}
	tests := []struct {
		scenario Scenario
		check    func(s *botStats) (name string, got, min, max float64)
	}{
		{Scraper, func(s *botStats) (string, float64, float64, float64) {
			return "requests per minute", perMinute(s), 150, 350
		}},
		{Scraper, func(s *botStats) (string, float64, float64, float64) {
			return "distinct paths / requests", ratio(len(s.paths), s.requests), 0.99, 1
		}},
		{Scraper, func(s *botStats) (string, float64, float64, float64) {
			return "user agents", float64(len(s.uas)), 1, 1
		}},
		{Scraper, func(s *botStats) (string, float64, float64, float64) {
			return "4xx share", ratio(s.status4xx, s.requests), 0.03, 0.15
		}},
		{CredentialStuffing, func(s *botStats) (string, float64, float64, float64) {
			return "POST share", ratio(s.post, s.requests), 1, 1
		}},
		{CredentialStuffing, func(s *botStats) (string, float64, float64, float64) {
			return "4xx share", ratio(s.status4xx, s.requests), 0.9, 1
		}},
		{CredentialStuffing, func(s *botStats) (string, float64, float64, float64) {
			return "distinct paths", float64(len(s.paths)), 1, 2
		}},
		{CredentialStuffing, func(s *botStats) (string, float64, float64, float64) {
			return "requests per minute", perMinute(s), 100, 200
		}},
		{UARotation, func(s *botStats) (string, float64, float64, float64) {
			return "distinct user agents / requests", ratio(len(s.uas), s.requests), 0.7, 1
		}},
		{UARotation, func(s *botStats) (string, float64, float64, float64) {
			return "requests per minute", perMinute(s), 20, 40
		}},
		{LowAndSlow, func(s *botStats) (string, float64, float64, float64) {
			return "requests per minute", perMinute(s), 1, 2
		}},
		{LowAndSlow, func(s *botStats) (string, float64, float64, float64) {
			return "requests", float64(s.requests), 10, 40 // 10-20 minutes at 1-2 a minute
		}},
		{LowAndSlow, func(s *botStats) (string, float64, float64, float64) {
			return "distinct paths / requests", ratio(len(s.paths), s.requests), 1, 1
		}},
		{LowAndSlow, func(s *botStats) (string, float64, float64, float64) {
			return "user agents + referers", float64(len(s.uas) + s.withReferer), 1, 1
		}},
	}
	for _, tt := range tests {
		bots := stats[string(tt.scenario)]
		if len(bots) != cfg.Bots[tt.scenario] {
			t.Errorf("%s: %d bot visitors, want %d", tt.scenario, len(bots), cfg.Bots[tt.scenario])
		}
		for id, s := range bots {
			if s.requests < 10 { // too few for the ratios (and rates) to mean anything
				t.Fatalf("%s %s: %d requests", tt.scenario, id, s.requests)
			}
			name, got, lo, hi := tt.check(s)
			if got < lo || got > hi {
				t.Errorf("%s %s: %s = %.3f, want %.2f to %.2f", tt.scenario, id, name, got, lo, hi)
			}
		}
	}
}

func TestBotsZeroDuration(t *testing.T) {
	cfg := botConfig()
	cfg.Duration = 0
	reqs, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != cfg.Events { // bots act within the span; there is none
		t.Errorf("%d requests, want the %d humans only", len(reqs), cfg.Events)
	}
}

func TestValidateBots(t *testing.T) {
	tests := []struct {
		name string
		bots map[Scenario]int
	}{
		{"negative count", map[Scenario]int{Scraper: -1}},
		{"unknown scenario", map[Scenario]int{"ddos": 1}},
		{"human is not a scenario", map[Scenario]int{HumanLabel: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Bots = tt.bots
			if _, err := New(c); !errors.Is(err, ErrConfig) {
				t.Errorf("New: error %v, want ErrConfig", err)
			}
		})
	}
}

func TestLabelledJSONL(t *testing.T) {
	reqs := []Request{
		{Time: time.Unix(1_700_000_000, 5), Site: "shop.example", ClientIP: "192.0.2.9", Method: "POST",
			Path: "/login", UserAgent: "UA", Referer: "https://shop.example/login", Status: 401, Label: string(CredentialStuffing)},
		{Time: time.Unix(1_700_000_001, 0), Site: "shop.example", ClientIP: "2001:db8::1", Method: "GET",
			Path: "/search", Query: "q=tent", UserAgent: "UA2", Status: 200, Label: HumanLabel},
	}
	// Two decoders: a decoded Event aliases its decoder until the next Decode.
	dec, err := features.NewDecoder(features.DefaultFieldMap())
	if err != nil {
		t.Fatal(err)
	}
	plainDec, err := features.NewDecoder(features.DefaultFieldMap())
	if err != nil {
		t.Fatal(err)
	}
	for _, labels := range []bool{false, true} {
		var buf bytes.Buffer
		if err := WriteJSONL(&buf, reqs, labels); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != len(reqs) {
			t.Fatalf("labels=%v: %d lines, want %d", labels, len(lines), len(reqs))
		}
		for i, line := range lines {
			plain, err := reqs[i].LogpushJSON()
			if err != nil {
				t.Fatal(err)
			}
			var got, want map[string]any
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			if err := json.Unmarshal(plain, &want); err != nil {
				t.Fatal(err)
			}
			if labels {
				want["label"] = reqs[i].Label
			}
			if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
				t.Errorf("labels=%v line %d =\n%s\nwant\n%s", labels, i, g, w)
			}

			// The pipeline reads a labelled line as the plain event.
			var ev, plainEv features.Event
			if err := dec.Decode([]byte(line), &ev); err != nil {
				t.Fatalf("labels=%v line %d: Decode: %v", labels, i, err)
			}
			if err := plainDec.Decode(plain, &plainEv); err != nil {
				t.Fatal(err)
			}
			if ev.Time != plainEv.Time || ev.Site != plainEv.Site || ev.ClientIP != plainEv.ClientIP ||
				string(ev.Method) != string(plainEv.Method) || string(ev.Path) != string(plainEv.Path) ||
				string(ev.URI) != string(plainEv.URI) || string(ev.UserAgent) != string(plainEv.UserAgent) ||
				string(ev.Referer) != string(plainEv.Referer) || ev.Status != plainEv.Status {
				t.Errorf("labels=%v line %d decodes to %+v, want %+v", labels, i, ev, plainEv)
			}
		}
	}
}

// mustJSON re-encodes v with sorted keys, to compare documents by content.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
