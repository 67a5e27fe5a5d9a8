package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/pkg/features"
)

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// TestExample parses docs/policy.example.yaml and checks what it says.
func TestExample(t *testing.T) {
	p, err := Load("../../docs/policy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Version()) != 16 {
		t.Errorf("version %q", p.Version())
	}
	if c := p.Counts(); c != (Counts{Sites: 3, Off: 1, Simulated: 1, Allow: 5}) {
		t.Errorf("counts %+v; want 3 sites, 1 off, 1 simulated, 5 entries", c)
	}
	const shop = "shop.example.com"
	if p.Contamination(shop) != 0.01 || p.Threshold(shop) != 24 || p.MinRequests(shop) != 6 || p.MinHits(shop) != 2 {
		t.Errorf("shop's settings: %v %v %v %v", p.Contamination(shop), p.Threshold(shop), p.MinRequests(shop), p.MinHits(shop))
	}
	if p.MinHits("blog.example.net") != 3 || p.Threshold("blog.example.net") != 0 || p.Contamination("other.example") != 0 {
		t.Error("the defaults do not fill in what a site leaves out")
	}
	if !p.Simulate("blog.example.net") || p.Off("blog.example.net") || !p.Off("tickets.example.com") || p.Off(shop) {
		t.Error("off and simulate")
	}
	googlebot := []byte("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
	office := netip.MustParseAddr("192.0.2.77")
	tests := []struct {
		name string
		site string
		r    Request
		at   time.Time
		want bool
	}{
		{"Googlebot from Google", shop, Request{UserAgent: googlebot, ASN: 15169, Path: []byte("/p/1")}, now, true},
		{"Googlebot's agent from elsewhere", shop, Request{UserAgent: googlebot, ASN: 64500, Path: []byte("/p/1")}, now, false},
		{"Googlebot on another site", "blog.example.net", Request{UserAgent: googlebot, ASN: 15169}, now, false},
		{"health checks", shop, Request{Path: []byte("/healthz/live")}, now, true},
		{"a page", shop, Request{Path: []byte("/health")}, now, false},
		{"the partner's feed", shop, Request{Visitor: 0xdeadbeef}, now, true},
		{"the partner's feed after it expired", shop, Request{Visitor: 0xdeadbeef}, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"the office, on any site", "other.example", Request{IP: office}, now, true},
		{"the office after the move", "other.example", Request{IP: office}, time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC), false},
		{"the uptime monitor", "blog.example.net", Request{UserAgent: []byte("Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)")}, now, true},
		{"a person", shop, Request{IP: netip.MustParseAddr("203.0.113.9"), UserAgent: []byte("Mozilla/5.0 (X11; Linux x86_64)"), Path: []byte("/")}, now, false},
	}
	for _, tt := range tests {
		if got := p.AllowsRequest(tt.site, &tt.r, tt.at); got != tt.want {
			t.Errorf("%s: AllowsRequest = %v, want %v", tt.name, got, tt.want)
		}
	}
	sh := p.Shadows()
	if len(sh) != 2 || sh[0].Name != "bins-20" || sh[0].Bins != 20 || sh[1].Name != "no-same-second" || sh[1].Contamination != 0.01 || len(sh[1].Features) != 8 {
		t.Errorf("shadows %+v", sh)
	}
	if !p.AllowsVisitor(shop, 0xdeadbeef, now) || p.AllowsVisitor(shop, 0xdeadbeef, now.AddDate(1, 0, 0)) || p.AllowsVisitor("blog.example.net", 0xdeadbeef, now) {
		t.Error("AllowsVisitor")
	}
}

func TestEmptyAndNil(t *testing.T) {
	for _, text := range []string{"", "# nothing yet\n", "sites:\n", "defaults: {}\nsites: {}\n"} {
		p, err := Parse([]byte(text), "p.yaml")
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if p.Counts().Sites != 0 || p.Off("a.example") || p.AllowsRequest("a.example", &Request{}, now) {
			t.Errorf("%q: not empty", text)
		}
	}
	var p *Policy
	if p.Off("a") || p.Simulate("a") || p.Shadows() != nil || p.Threshold("a") != 0 || p.MinHits("a") != 0 || p.AllowsRequest("a", &Request{}, now) || p.AllowsVisitor("a", 1, now) || p.Version() != "" {
		t.Error("the nil policy does something")
	}
}

// TestErrors: every fault is refused with the file, its line and the
// field.
func TestErrors(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"not YAML", "sites: [\n", []string{"p.yaml", "line"}},
		{"unknown field", "defaults:\n  min_hits: 2\n  treshold: 3\n", []string{"line 3", "treshold"}},
		{"unknown site field", "sites:\n  a.example:\n    of: true\n", []string{"line 3", "of"}},
		{"wrong type", "sites:\n  a.example:\n    threshold: high\n", []string{"line 3", "high"}},
		{"bad ip", "sites:\n  a.example:\n    allow:\n      - ip: 300.1.2.3\n", []string{"line 4", "field ip"}},
		{"bad cidr", "defaults:\n  allow:\n    - cidr: 10.0.0.0/33\n", []string{"line 3", "field cidr"}},
		{"bad pattern", "defaults:\n  allow:\n    - user_agent: '(unclosed'\n", []string{"line 3", "field user_agent"}},
		{"bad path", "defaults:\n  allow:\n    - path_prefix: health\n", []string{"line 3", "field path_prefix"}},
		{"bad visitor", "defaults:\n  allow:\n    - visitor: xyz\n", []string{"line 3", "field visitor"}},
		{"bad expiry", "defaults:\n  allow:\n    - ip: 192.0.2.1\n      expires: next week\n", []string{"line 4", "next week"}},
		{"matches everything", "defaults:\n  allow:\n    - comment: oops\n", []string{"line 3", "matches everything"}},
		{"unknown allow field", "defaults:\n  allow:\n    - ipaddr: 192.0.2.1\n", []string{"line 3", "ipaddr"}},
		{"negative threshold", "sites:\n  a.example:\n    threshold: -1\n", []string{"line 3", "sites.a.example.threshold"}},
		{"contamination", "defaults:\n  contamination: 0.7\n", []string{"line 2", "defaults.contamination"}},
		{"off and simulate", "sites:\n  a.example:\n    off: true\n    simulate: true\n", []string{"line 4", "sites.a.example.simulate", "with off"}},
		{"a site twice", "sites:\n  a.example: {off: true}\n  A.example: {simulate: true}\n", []string{"line 3", "named twice"}},
		{"api path", "sites:\n  a.example:\n    api_paths: [/rest, rest]\n", []string{"line 3", "sites.a.example.api_paths.1", `"rest"`}},
		{"api path of a site", "defaults:\n  api_paths:\n    - b.example=/rest\n", []string{"line 3", "defaults.api_paths.0"}},
		{"shadow without a name", "shadows:\n  - bins: 20\n", []string{"line 2", "shadows.0.name", "missing"}},
		{"shadow name", "shadows:\n  - name: wide\n  - name: Wide Bins\n", []string{"line 3", "shadows.1.name", "lower-case"}},
		{"shadow named live", "shadows:\n  - name: live\n", []string{"line 2", "live model"}},
		{"shadow twice", "shadows:\n  - name: a\n  - name: a\n    bins: 20\n", []string{"line 3", "shadows.1.name", "named twice"}},
		{"shadow bins", "shadows:\n  - name: a\n    bins: -2\n", []string{"line 3", "shadows.0.bins"}},
		{"shadow contamination", "shadows:\n  - name: a\n    contamination: 0.5\n", []string{"line 3", "shadows.0.contamination"}},
		{"shadow alpha", "shadows:\n  - name: a\n    alpha: 1\n", []string{"line 3", "shadows.0.alpha"}},
		{"shadow trim", "shadows:\n  - name: a\n    trim: 0.9\n", []string{"line 3", "shadows.0.trim"}},
		{"shadow feature", "shadows:\n  - name: a\n    features:\n      - log1p_requests\n      - requests\n", []string{"line 5", "shadows.0.features.1", `"requests" is no feature`}},
		{"shadow feature twice", "shadows:\n  - name: a\n    features: [logodds_4xx, logodds_4xx]\n", []string{"line 3", "named twice"}},
		{"shadow field", "shadows:\n  - name: a\n    bin: 3\n", []string{"line 3", "bin"}},
		{"too many shadows", "shadows: [{name: a}, {name: b}, {name: c}, {name: d}, {name: e}, {name: f}, {name: g}, {name: h}, {name: i}]\n", []string{"line 1", "9 candidates"}},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.text), "p.yaml")
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tt.name, err, w)
			}
		}
		if strings.Count(err.Error(), "\n") > 0 {
			t.Errorf("%s: %q is more than a line", tt.name, err)
		}
	}
}

func TestVersionFollowsTheFile(t *testing.T) {
	a, _ := Parse([]byte("sites:\n  a.example: {off: true}\n"), "p")
	b, _ := Parse([]byte("sites:\n  a.example: {off: true}\n"), "p")
	c, _ := Parse([]byte("sites:\n  a.example: {simulate: true}\n"), "p")
	if a.Version() != b.Version() || a.Version() == c.Version() {
		t.Errorf("versions %s %s %s", a.Version(), b.Version(), c.Version())
	}
}

// TestEveryFault: a file with several faults has each of them reported,
// with its line.
func TestEveryFault(t *testing.T) {
	text := `defaults:
  min_hits: -1
  allow:
    - ip: 300.1.2.3
    - cidr: 10.0.0.0/8
      expires: soon
sites:
  a.example:
    threshold: lots
  b.example:
    off: true
    simulate: true
`
	_, err := Parse([]byte(text), "p.yaml")
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("%v, want an *Error", err)
	}
	// The decoder's faults come first, then those of the checks.
	want := []string{"line 4", "line 6", "line 9", "line 2", "line 12"}
	if len(perr.Faults) != len(want) {
		t.Fatalf("faults %q, want %d", perr.Faults, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(perr.Faults[i], w) {
			t.Errorf("fault %d: %q, want it at %s", i, perr.Faults[i], w)
		}
	}
	if !strings.Contains(err.Error(), "5 faults") || strings.Count(err.Error(), "\n") != 5 {
		t.Errorf("%q: want the count, then a fault a line", err)
	}
	// Every fault of the checks, in the file's order of sites.
	_, err = Parse([]byte("defaults:\n  min_hits: -1\nsites:\n  b.example:\n    off: true\n    simulate: true\n    contamination: 2\n"), "p.yaml")
	if !errors.As(err, &perr) || len(perr.Faults) != 3 || !strings.HasPrefix(perr.Faults[0], "line 2: defaults.min_hits") ||
		!strings.HasPrefix(perr.Faults[1], "line 7: sites.b.example.contamination") || !strings.HasPrefix(perr.Faults[2], "line 6: sites.b.example.simulate") {
		t.Errorf("%v", err)
	}
}

// TestClassRules: the policy's API paths join the services' -api-paths,
// the defaults' for every site and a site's for it; Classes builds a
// classifier once per policy.
func TestClassRules(t *testing.T) {
	p, err := Parse([]byte("defaults:\n  api_paths: [/v2]\nsites:\n  shop.example:\n    api_paths: ['*.csv', /rest]\n  blog.example: {off: true}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.ClassRules("/api"), features.ClassRules("/api,/v2,shop.example=*.csv,shop.example=/rest"); got != want {
		t.Errorf("rules %q, want %q", got, want)
	}
	var none *Policy
	if got := none.ClassRules("/api"); got != "/api" {
		t.Errorf("no policy: %q", got)
	}
	cl := NewClasses("/api")
	c := cl.Of(p)
	if cl.Of(p) != c || cl.Of(none) == c {
		t.Error("Classes builds a classifier again for the same policy, or not for another")
	}
	browser := []byte("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
	for _, tt := range []struct {
		site, path string
		want       bool
	}{
		{"shop.example", "/rest/items", true}, {"shop.example", "/export.csv", true}, {"blog.example", "/export.csv", false},
		{"blog.example", "/v2/x", true}, {"blog.example", "/api/x", true}, {"shop.example", "/restaurant", false},
	} {
		if got := c.API(&features.Event{Site: tt.site, Path: []byte(tt.path), UserAgent: browser}); got != tt.want {
			t.Errorf("%s%s: API %v, want %v", tt.site, tt.path, got, tt.want)
		}
	}
}
