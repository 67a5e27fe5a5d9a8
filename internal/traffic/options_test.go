package traffic

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDefaultOutputPinned pins the whole output, bots and labels included,
// of configs with zero Options: the options are opt-in, and published
// figures depend on the traffic without them. The hashes were computed on
// the generator before the options existed.
func TestDefaultOutputPinned(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		cfg             func() Config
		plain, labelled string
	}{
		{"small with bots", func() Config { c := botConfig(); c.Events, c.Duration = 10_000, 5*time.Minute; return c },
			"41b58cdc18c1512885292add944cb52436e06cea17360789fd9f68ca46fb132b",
			"89bac306231227e1ca27c3658740f6794f75fc4fa22bf65061da732200716b8d"},
		{"30 sites over an hour", func() Config {
			c := DefaultConfig()
			c.Sites, c.Visitors, c.Events, c.Duration, c.Seed = 30, 2000, 3000, time.Hour, 7
			c.Bots = Bots{LowAndSlow: 3, UARotation: 1}
			return c
		},
			"62af9b5071962be5ebcd80d63ebfa88e22e8b9501cfdd708fb048e1dc0715eee",
			"b59d6d5ed6936bc3203ff2caad9d75e5988f4529f5aa2d29138ccbf8c9e1a4f0"},
		{"zero duration", func() Config { c := botConfig(); c.Events, c.Duration = 3000, 0; return c },
			"5aebd8f3f306ffe843f3087907390bd992d2e1e114f264e56180c2f9afc3d727",
			"6f7e6a179c850e7d158214bfe3a300398f2c3ed282d70df73b61b78d746145bc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs, err := Generate(tt.cfg())
			if err != nil {
				t.Fatal(err)
			}
			for _, labels := range []bool{false, true} {
				var buf bytes.Buffer
				if err := WriteJSONL(&buf, reqs, labels); err != nil {
					t.Fatal(err)
				}
				want := tt.plain
				if labels {
					want = tt.labelled
				}
				if sum := sha256.Sum256(buf.Bytes()); hex.EncodeToString(sum[:]) != want {
					t.Errorf("labels=%v: SHA-256 %x, want %s", labels, sum, want)
				}
			}
		})
	}
}

// tinyConfig is a small population over the twelve named sites (so that
// every site kind is there) with opts: the options' tests run it many times
// under the race detector.
func tinyConfig(events int, opts Options) Config {
	c := smallConfig()
	c.Sites, c.Visitors, c.Events, c.Duration = 12, 3000, events, 20*time.Minute
	c.Options = opts
	return c
}

// generate is Generate that fails the test on an error.
func generate(t testing.TB, cfg Config) []Request {
	t.Helper()
	reqs, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return reqs
}

// byAgent groups requests by site and address: one bot, agent or address
// of people each.
func byAgent(reqs []Request, keep func(*Request) bool) map[string][]*Request {
	out := map[string][]*Request{}
	for i := range reqs {
		if r := &reqs[i]; keep(r) {
			k := r.Site + "|" + r.ClientIP
			out[k] = append(out[k], r)
		}
	}
	return out
}

var (
	ja3Pattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
	ja4Pattern = regexp.MustCompile(`^t1[23]d\d{4}(h1|h2)_[0-9a-f]{12}_[0-9a-f]{12}$`)
)

// TestRealistic checks the realistic preset as a whole: order, labels,
// every profile, the log fields and their JSON.
func TestRealistic(t *testing.T) {
	t.Parallel()
	cfg := tinyConfig(8000, Realistic())
	reqs := generate(t, cfg)
	end := cfg.Start.Add(cfg.Duration)
	profiles := map[string]int{}
	scenarios := map[string]int{}
	humans := 0
	for _, r := range reqs {
		if r.Label == HumanLabel {
			profiles[r.Profile]++
			if r.Profile != ProfileAppPoller && r.Profile != ProfileFeedReader && r.Profile != ProfileUptimeMonitor &&
				r.Profile != ProfileAPIClient && r.Profile != ProfileCrawler && r.Profile != ProfileLinkPreview &&
				r.Profile != ProfileSurge { // surges come on top of Events, as automation does
				humans++
			}
		} else {
			scenarios[r.Label]++
		}
	}
	t.Logf("%d requests, %d of people; profiles %v; scenarios %v", len(reqs), humans, profiles, scenarios)
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"in time order within the span", func(t *testing.T) {
			for i, r := range reqs {
				if i > 0 && r.Time.Before(reqs[i-1].Time) || r.Time.Before(cfg.Start) || !r.Time.Before(end) {
					t.Fatalf("request %d at %v: out of order or of the span", i, r.Time)
				}
			}
			if humans != cfg.Events {
				t.Errorf("%d requests of people, want Events = %d", humans, cfg.Events)
			}
		}},
		{"labels, profiles and groups", func(t *testing.T) {
			for i, r := range reqs {
				switch s := Scenario(r.Label); {
				case r.Label == HumanLabel && !slices.Contains(Profiles(), r.Profile):
					t.Fatalf("request %d: human with profile %q", i, r.Profile)
				case r.Label != HumanLabel && !s.valid():
					t.Fatalf("request %d: label %q", i, r.Label)
				case (r.Group != "") != s.Coordinated():
					t.Fatalf("request %d: %s with group %q", i, r.Label, r.Group)
				case s.Coordinated() && r.Profile != ProfileResidentialProxy:
					t.Fatalf("request %d: %s with profile %q", i, r.Label, r.Profile)
				}
			}
			for _, p := range Profiles() {
				if profiles[p] == 0 {
					t.Errorf("no request of profile %q", p)
				}
			}
			for _, s := range []Scenario{DistributedScraper, DistributedStuffing} {
				if scenarios[string(s)] == 0 {
					t.Errorf("no request of %s", s)
				}
			}
		}},
		{"log fields", func(t *testing.T) {
			for i, r := range reqs {
				if r.ASN == 0 || len(r.Country) != 2 || strings.ToLower(r.Country) != r.Country {
					t.Fatalf("request %d: ASN %d, country %q", i, r.ASN, r.Country)
				}
				if r.JA3 == "" && r.Status == 301 { // plain HTTP: no TLS
					continue
				}
				if !ja3Pattern.MatchString(r.JA3) || !ja4Pattern.MatchString(r.JA4) {
					t.Fatalf("request %d: JA3 %q, JA4 %q", i, r.JA3, r.JA4)
				}
			}
		}},
		{"JSON", func(t *testing.T) {
			i := slices.IndexFunc(reqs, func(r Request) bool { return r.Group != "" })
			r := reqs[i]
			plain, err := r.LogpushJSON()
			if err != nil {
				t.Fatal(err)
			}
			labelled, err := r.LabelledJSON()
			if err != nil {
				t.Fatal(err)
			}
			var p, l map[string]any
			if err := json.Unmarshal(plain, &p); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(labelled, &l); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"label", "profile", "group"} {
				if _, ok := p[k]; ok {
					t.Errorf("LogpushJSON has %q: %s", k, plain)
				}
			}
			if l["label"] != r.Label || l["profile"] != r.Profile || l["group"] != r.Group {
				t.Errorf("LabelledJSON = %s, want its label, profile and group", labelled)
			}
			if p["ClientASN"] != float64(r.ASN) || p["ClientCountry"] != r.Country || p["JA3Hash"] != r.JA3 || p["JA4"] != r.JA4 {
				t.Errorf("LogpushJSON = %s, want the log fields", plain)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// TestOptionsDeterminism checks that a Config with options makes one
// sequence, and another seed another.
func TestOptionsDeterminism(t *testing.T) {
	t.Parallel()
	base := tinyConfig(2000, Realistic())
	want := generate(t, base)
	tests := []struct {
		name     string
		modify   func(*Config)
		wantSame bool
	}{
		{"same config", func(*Config) {}, true},
		{"scenarios spelled out", func(c *Config) { c.Options.Spread.Scenarios = individualScenarios() }, true},
		{"other seed", func(c *Config) { c.Seed++ }, false},
		{"no log fields", func(c *Config) { c.Options.LogFields = false }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tinyConfig(2000, Realistic())
			tt.modify(&cfg)
			if same := slices.Equal(generate(t, cfg), want); same != tt.wantSame {
				t.Errorf("sequences equal = %v, want %v", same, tt.wantSame)
			}
		})
	}
}

// TestHumansUnchangedByBotOptions checks that no bot option changes what
// the legitimate visitors send: people and automation alike.
func TestHumansUnchangedByBotOptions(t *testing.T) {
	t.Parallel()
	noBots := Realistic()
	noBots.Spread, noBots.Campaigns = Spread{}, Campaigns{}
	legit := func(cfg Config) []Request {
		return slices.DeleteFunc(generate(t, cfg), func(r Request) bool { return r.Label != HumanLabel })
	}
	want := legit(tinyConfig(3000, noBots))
	every := Bots{}
	for _, s := range AllScenarios() {
		every[s] = 1
	}
	tests := []struct {
		name   string
		modify func(*Config)
	}{
		{"bots in the history", func(c *Config) { c.Options.Spread = Spread{Share: 0.05} }},
		{"campaigns", func(c *Config) { c.Options.Campaigns = Campaigns{Scraping: 1, Stuffing: 1, Addresses: 100} }},
		{"every scenario", func(c *Config) { c.Bots = every }},
		{"all of them", func(c *Config) { c.Options = Realistic(); c.Bots = every }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tinyConfig(3000, noBots)
			tt.modify(&cfg)
			got := legit(cfg)
			if !slices.Equal(got, want) {
				t.Errorf("%d legitimate requests differ from the %d without bots", len(got), len(want))
			}
		})
	}
}

// TestValidateOptions checks that each unusable option is refused with an
// error naming it.
func TestValidateOptions(t *testing.T) {
	tests := []struct {
		field  string
		modify func(*Options)
	}{
		{"Options.People.Office", func(o *Options) { o.People.Office = 1.5 }},
		{"Options.People.Bouncer", func(o *Options) { o.People.Bouncer = -0.1 }},
		{"Options.People.MobileApp", func(o *Options) { o.People.MobileApp = math.NaN() }},
		{"Options.People", func(o *Options) { o.People = People{Office: 0.6, Carrier: 0.6} }},
		{"Options.Automation.AppPollers", func(o *Options) { o.Automation.AppPollers = 2 }},
		{"Options.Automation.Crawlers", func(o *Options) { o.Automation.Crawlers = -1 }},
		{"Options.Spread.Share", func(o *Options) { o.Spread.Share = 1 }},
		{"Options.Spread.Bots", func(o *Options) { o.Spread.Bots = Bots{"robot": 1} }},
		{"Options.Spread.Bots", func(o *Options) { o.Spread.Bots = Bots{DistributedScraper: 1} }},
		{"Options.Spread.Bots[scalper]", func(o *Options) { o.Spread.Bots = Bots{Scalper: -1} }},
		{"Options.Spread.Scenarios", func(o *Options) { o.Spread.Scenarios = []Scenario{DistributedStuffing} }},
		{"Options.Spread.Scenarios", func(o *Options) { o.Spread.Scenarios = []Scenario{} }},
		{"Options.Spread.MinLifetime", func(o *Options) { o.Spread.MinLifetime = -time.Second }},
		{"Options.Spread.MaxLifetime", func(o *Options) { o.Spread.MinLifetime, o.Spread.MaxLifetime = time.Hour, time.Minute }},
		{"Options.Campaigns.Scraping", func(o *Options) { o.Campaigns.Scraping = -1 }},
		{"Options.Campaigns.Addresses", func(o *Options) { o.Campaigns.Addresses = -5 }},
		{"Options.Campaigns.MaxRequests", func(o *Options) { o.Campaigns.MinRequests, o.Campaigns.MaxRequests = 9, 3 }},
		{"Options.Campaigns.MaxLength", func(o *Options) { o.Campaigns.MaxLength = -time.Minute }},
		{"Options.Surges.Count", func(o *Options) { o.Surges.Count = -1 }},
		{"Options.Surges.People", func(o *Options) { o.Surges.People = 1_000_000 }},
		{"Options.Surges.MaxLength", func(o *Options) { o.Surges.MinLength, o.Surges.MaxLength = time.Hour, time.Minute }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			c := DefaultConfig()
			c.Options = Realistic()
			tt.modify(&c.Options)
			_, err := New(c)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("New: error %v, want ErrConfig naming %s", err, tt.field)
			}
		})
	}
	c := DefaultConfig()
	c.Options = Realistic()
	c.Bots = Bots{}
	for _, s := range AllScenarios() {
		c.Bots[s] = 1
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Realistic with every scenario: %v", err)
	}
}

// TestOptionsFlag checks Options as a flag.Value.
func TestOptionsFlag(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "none",
		"none":             "none",
		"realistic":        "realistic",
		"people,fields":    "people,fields",
		" fields , sites ": "sites,fields",
		"people,sites,automation,spread,campaigns,surges,fields": "realistic",
		"people,sites,automation,spread,campaigns,fields":        "people,sites,automation,spread,campaigns,fields",
	} {
		var o Options
		if err := o.Set(in); err != nil || o.String() != want {
			t.Errorf("Set(%q) = %q, %v; want %q", in, o.String(), err, want)
		}
	}
	var o Options
	if o.Set("people"); o.People != Realistic().People || o.LogFields {
		t.Errorf("Set(people) = %+v, want Realistic's people only", o)
	}
	for in, want := range map[string]string{
		"robots":        `unknown option "robots"`,
		"people,people": "named twice",
	} {
		o := Realistic()
		if err := o.Set(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Set(%q) = %v, want an error with %q", in, err, want)
		} else if o.String() != "realistic" {
			t.Errorf("Set(%q) failed but changed the value to %v", in, o.String())
		}
	}
}

// TestScenarioLists checks that the original list stays as it was and the
// full one names every scenario once, for the flag too.
func TestScenarioLists(t *testing.T) {
	if got := Scenarios(); !slices.Equal(got, []Scenario{Scraper, CredentialStuffing, UARotation, LowAndSlow}) {
		t.Errorf("Scenarios() = %v, want the original four", got)
	}
	all := AllScenarios()
	if len(all) != 14 || !slices.Equal(all[:4], Scenarios()) || len(slices.Compact(slices.Sorted(slices.Values(all)))) != len(all) {
		t.Errorf("AllScenarios() = %v", all)
	}
	var b Bots
	for _, s := range all {
		if !strings.Contains(ScenarioNames(), string(s)) {
			t.Errorf("ScenarioNames() lacks %s", s)
		}
		if err := b.Set(string(s) + "=2"); err != nil || b[s] != 2 {
			t.Errorf("Set(%s=2): %v, %v", s, b, err)
		}
	}
	if err := b.Set("vuln-scanner=1, scraper=2,distributed-stuffing=1"); err != nil || b.String() != "scraper=2,vuln-scanner=1,distributed-stuffing=1" {
		t.Errorf("Set: %q, %v", b.String(), err)
	}
}

// BenchmarkGenerateRealistic streams DefaultConfig's million requests of
// people with every option on, and the demo's ten bots of each original
// scenario, as labelled JSON lines: what replay generate does.
func BenchmarkGenerateRealistic(b *testing.B) {
	for _, tt := range []struct {
		name string
		opts Options
	}{
		{"none", Options{}},
		{"realistic", Realistic()},
	} {
		b.Run(tt.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Bots, cfg.Options = EveryScenario(10), tt.opts
			b.ReportAllocs()
			for b.Loop() {
				g, err := New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				jw := NewJSONLWriter(io.Discard, true)
				n := 0
				for r, ok := g.Next(); ok; r, ok = g.Next() {
					if err := jw.Write(&r); err != nil {
						b.Fatal(err)
					}
					n++
				}
				if err := jw.Flush(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(n), "events")
			}
		})
	}
}
