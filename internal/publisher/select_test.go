package publisher

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/pkg/records"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const threshold = 10.0

// testScore is a valid score of visitor on site at t0+at.
func testScore(site string, visitor uint64, at time.Duration, score float64) *records.Score {
	return &records.Score{
		V: records.Version, Site: site, Visitor: records.VisitorID(visitor),
		Score: score, Threshold: threshold,
		Features: []records.Contribution{
			{Feature: "requests", Value: 2, Contribution: score * 0.1},
			{Feature: "paths", Value: 3, Contribution: score * 0.4},
			{Feature: "user_agents", Value: 1, Contribution: score * 0.2},
			{Feature: "status_4xx", Value: 0.5, Contribution: score * 0.3},
		},
		WindowStart: t0.Add(at - 10*time.Minute), WindowEnd: t0.Add(at),
		BaselineVersion: "b1", ScoredAt: t0.Add(at), // as the detector writes it: the ETag without its quotes
	}
}

func mustPolicy(t *testing.T, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(text), "test.policy")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSelect(t *testing.T) {
	const a, b = "a.example", "b.example"
	type step struct {
		site    string
		visitor uint64
		at      time.Duration // event time after t0
		score   float64
		want    Outcome
	}
	tests := []struct {
		name   string
		cfg    func(*SelectConfig)
		policy string
		steps  []step
	}{
		{
			name: "at or below the threshold is no candidate",
			steps: []step{
				{a, 1, 0, threshold, Below},
				{a, 1, time.Second, 3, Below},
				{a, 1, 2 * time.Second, math.Nextafter(threshold, 20), Published},
			},
		},
		{
			name: "de-duplicated within the TTL, again after it expires",
			steps: []step{
				{a, 1, 0, 12, Published},
				{a, 1, 30 * time.Second, 12, SuppressedDuplicate},
				{a, 1, 9*time.Minute + 59*time.Second, 11, SuppressedDuplicate},
				{a, 1, 10 * time.Minute, 11, Published}, // expires_at is exclusive
				{a, 1, 11 * time.Minute, 11, SuppressedDuplicate},
			},
		},
		{
			name: "a rise of -rise-margin over the last published score republishes",
			steps: []step{
				{a, 1, 0, 12, Published},
				{a, 1, time.Minute, 12.99, SuppressedDuplicate},
				{a, 1, 2 * time.Minute, 12.5, SuppressedDuplicate},
				{a, 1, 3 * time.Minute, 13, Published},
				{a, 1, 4 * time.Minute, 13.5, SuppressedDuplicate}, // measured from 13 now
				{a, 1, 5 * time.Minute, 14.2, Published},
				// The latest detection, at 5m, sets the expiry.
				{a, 1, 14 * time.Minute, 11, SuppressedDuplicate},
				{a, 1, 15 * time.Minute, 11, Published},
			},
		},
		{
			name: "-rise-margin inf never republishes early",
			cfg:  func(c *SelectConfig) { c.RiseMargin = math.Inf(1) },
			steps: []step{
				{a, 1, 0, 12, Published},
				{a, 1, time.Minute, 1e300, SuppressedDuplicate},
				{a, 1, 10 * time.Minute, 12, Published},
			},
		},
		{
			name: "-rise-margin 0 republishes any score not below the last",
			cfg:  func(c *SelectConfig) { c.RiseMargin = 0 },
			steps: []step{
				{a, 1, 0, 12, Published},
				{a, 1, time.Minute, 11.9, SuppressedDuplicate},
				{a, 1, 2 * time.Minute, 12, Published},
			},
		},
		{
			name: "-min-margin gates scores just above the threshold",
			cfg:  func(c *SelectConfig) { c.MinMargin = 0.5 },
			steps: []step{
				{a, 1, 0, 10.49, SuppressedGate},
				{a, 1, time.Second, 10.5, Published},
			},
		},
		{
			name: "-min-hits counts hits within the TTL before the first detection",
			cfg:  func(c *SelectConfig) { c.MinHits = 3 },
			steps: []step{
				{a, 1, 0, 12, SuppressedGate},
				{a, 1, time.Minute, 9, Below}, // not a hit
				{a, 1, 2 * time.Minute, 12, SuppressedGate},
				{a, 2, 3 * time.Minute, 12, SuppressedGate}, // another visitor's hits are its own
				{a, 1, 3 * time.Minute, 12, Published},
				{a, 1, 4 * time.Minute, 12, SuppressedDuplicate},
			},
		},
		{
			name: "-min-hits forgets hits older than the TTL",
			cfg:  func(c *SelectConfig) { c.MinHits = 2 },
			steps: []step{
				{a, 1, 0, 12, SuppressedGate},
				{a, 1, 10 * time.Minute, 12, SuppressedGate}, // the first is a TTL old
				{a, 1, 19 * time.Minute, 12, Published},
			},
		},
		{
			name: "-min-hits with -min-margin: only scores past the margin are hits",
			cfg:  func(c *SelectConfig) { c.MinHits, c.MinMargin = 2, 1 },
			steps: []step{
				{a, 1, 0, 10.5, SuppressedGate},
				{a, 1, time.Minute, 11, SuppressedGate},
				{a, 1, 2 * time.Minute, 10.9, SuppressedGate},
				{a, 1, 3 * time.Minute, 11, Published},
			},
		},
		{
			name: "a visitor who keeps hitting is published again when the detection expires",
			cfg:  func(c *SelectConfig) { c.MinHits = 2 },
			steps: []step{
				{a, 1, 0, 12, SuppressedGate},
				{a, 1, time.Minute, 12, Published},
				{a, 1, 6 * time.Minute, 12, SuppressedDuplicate},
				{a, 1, 11 * time.Minute, 12, Published}, // hits at 6m and 11m
			},
		},
		{
			name:   "allow-list is per site",
			policy: "sites:\n  a.example:\n    allow: [{visitor: 0000000000000001}]\n",
			steps: []step{
				{a, 1, 0, 50, SuppressedAllowList},
				{a, 1, time.Second, 9, Below},
				{a, 2, 0, 50, Published},
				{b, 1, 0, 50, Published},
			},
		},
		{
			name:   "a site switched off publishes nothing",
			policy: "sites: {A.Example: {off: true}}",
			steps: []step{
				{a, 1, 0, 50, SuppressedSiteOff},
				{a, 2, 0, 50, SuppressedSiteOff},
				{b, 1, 0, 50, Published},
			},
		},
		{
			name: "visitors and sites are independent",
			steps: []step{
				{a, 1, 0, 12, Published},
				{a, 2, 0, 12, Published},
				{b, 1, 0, 12, Published},
				{a, 1, time.Second, 12, SuppressedDuplicate},
				{b, 1, time.Second, 12, SuppressedDuplicate},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := oneHitConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			var pol *policy.Policy
			if tt.policy != "" {
				pol = mustPolicy(t, tt.policy)
			}
			sel := NewSelector(cfg)
			for i, st := range tt.steps {
				sc := testScore(st.site, st.visitor, st.at, st.score)
				d, got := sel.Select(sc, st.visitor, pol)
				if got != st.want {
					t.Fatalf("step %d (%s|%d at %v, score %v): %v, want %v", i, st.site, st.visitor, st.at, st.score, got, st.want)
				}
				if (got == Published) != (d.V != 0) {
					t.Errorf("step %d: %v with detection %+v", i, got, d)
				}
			}
		})
	}
}

// TestSelectEarlyHits checks that a visit's beginning scoring at least
// -early-hit-margin above its threshold counts as one of -min-hits, and
// that no other beginning does.
func TestSelectEarlyHits(t *testing.T) {
	tests := []struct {
		name   string
		margin float64 // -early-hit-margin
		early  float64 // the beginning's score above its threshold
		share  float64 // its shape_share
		want   Outcome // the second full hit's
	}{
		{"far above: a hit", DefaultEarlyHitMargin, DefaultEarlyHitMargin, 0, Published},
		{"below the margin", DefaultEarlyHitMargin, DefaultEarlyHitMargin - 0.1, 0, SuppressedGate},
		{"a usual start's shape", DefaultEarlyHitMargin, 2 * DefaultEarlyHitMargin, DefaultUsualStart, SuppressedGate},
		{"inf counts none", math.Inf(1), 1e300, 0, SuppressedGate},
		{"0 counts any above", 0, 0.5, 0, Published},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultSelectConfig() // -min-hits 3
			cfg.EarlyHitMargin = tt.margin
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			sel := NewSelector(cfg)
			early := testScore("a.example", 1, 0, threshold+tt.early)
			early.Early, early.ShapeShare = true, tt.share
			if _, got := sel.Select(early, 1, nil); got != Early {
				t.Fatalf("the beginning: %v, want early", got)
			}
			for i, want := range []Outcome{SuppressedGate, tt.want} {
				sc := testScore("a.example", 1, time.Duration(i+1)*30*time.Second, 15)
				if _, got := sel.Select(sc, 1, nil); got != want {
					t.Fatalf("full hit %d: %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

// TestSelectKnownPrograms checks that a returning visitor of the api
// class is not published on its own hits unless -publish-known-programs,
// and that every other visitor is judged as before.
func TestSelectKnownPrograms(t *testing.T) {
	tests := []struct {
		name      string
		class     string
		returning bool
		publish   bool // -publish-known-programs
		want      Outcome
	}{
		{"returning program", "api", true, false, SuppressedKnownProgram},
		{"returning program, -publish-known-programs", "api", true, true, Published},
		{"new program", "api", false, false, Published},
		{"returning browser", "browser", true, false, Published},
		{"returning, record without a class", "", true, false, Published},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultSelectConfig() // -min-hits 3
			cfg.PublishKnownPrograms = tt.publish
			sel := NewSelector(cfg)
			for i := range 5 {
				sc := testScore("a.example", 1, time.Duration(i)*30*time.Second, 50)
				sc.Class, sc.Returning = tt.class, tt.returning
				want := tt.want
				if i < cfg.MinHits-1 {
					want = SuppressedGate // its first hits, in every case
					if tt.want == SuppressedKnownProgram {
						want = SuppressedKnownProgram
					}
				}
				if want == Published && i >= cfg.MinHits {
					want = SuppressedDuplicate
				}
				if _, got := sel.Select(sc, 1, nil); got != want {
					t.Fatalf("score %d: %v, want %v", i, got, want)
				}
			}
		})
	}
}

// TestSelectAfterPolicyChange checks that suppression by policy leaves no
// state behind: once the policy is lifted, the next hit publishes.
func TestSelectAfterPolicyChange(t *testing.T) {
	sel := NewSelector(oneHitConfig())
	off := mustPolicy(t, "sites:\n  a.example: {off: true}\n  b.example:\n    allow: [{visitor: 0000000000000007}]\n")
	for _, site := range []string{"a.example", "b.example"} {
		if _, got := sel.Select(testScore(site, 7, 0, 20), 7, off); got == Published {
			t.Fatalf("%s: published under the policy", site)
		}
		if _, got := sel.Select(testScore(site, 7, time.Second, 20), 7, nil); got != Published {
			t.Errorf("%s: %v once the policy is lifted, want published", site, got)
		}
	}
	if n := sel.Tracked(); n != 2 {
		t.Errorf("tracking %d visitors, want 2", n)
	}
}

func TestDetectionRecord(t *testing.T) {
	cfg := oneHitConfig()
	cfg.TTL = 7 * time.Minute
	sel := NewSelector(cfg)
	sc := testScore("a.example", 0xABCDEF0123456789, 90*time.Second, 20)
	sc.Visitor = strings.ToUpper(sc.Visitor) // parsed the same; the detection carries the canonical form
	sc.ScoredAt = sc.ScoredAt.In(time.FixedZone("X", 3600))
	d, got := sel.Select(sc, 0xABCDEF0123456789, nil)
	if got != Published {
		t.Fatalf("%v, want published", got)
	}
	want := records.Detection{
		V: records.Version, Site: "a.example", Visitor: "abcdef0123456789", Score: 20, Threshold: threshold,
		BaselineVersion: "b1",
		Top: []records.Contribution{
			{Feature: "paths", Value: 3, Contribution: 8},
			{Feature: "status_4xx", Value: 0.5, Contribution: 6},
			{Feature: "user_agents", Value: 1, Contribution: 4},
		},
		DetectedAt: t0.Add(90 * time.Second), ExpiresAt: t0.Add(90*time.Second + 7*time.Minute),
	}
	if d.DetectedAt.Location() != time.UTC {
		t.Errorf("detected_at in %v, want UTC", d.DetectedAt.Location())
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("detection\n got %+v\nwant %+v", d, want)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("the detection does not validate: %v", err)
	}
}

func TestTop(t *testing.T) {
	cs := []records.Contribution{
		{Feature: "a", Contribution: 1}, {Feature: "b", Contribution: 3}, {Feature: "c", Contribution: 3},
		{Feature: "d", Contribution: -1}, {Feature: "e", Contribution: 2},
	}
	names := func(cs []records.Contribution) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Feature)
		}
		return out
	}
	tests := []struct {
		n    int
		want []string
	}{
		{1, []string{"b"}},
		{3, []string{"b", "c", "e"}}, // ties keep the features' order
		{10, []string{"b", "c", "e", "a", "d"}},
	}
	for _, tt := range tests {
		if got := names(Top(cs, tt.n)); !slices.Equal(got, tt.want) {
			t.Errorf("Top(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
	if cs[0].Feature != "a" || cs[1].Feature != "b" {
		t.Error("Top reordered its argument")
	}
}

func TestSelectorForgetsExpiredState(t *testing.T) {
	cfg := oneHitConfig()
	cfg.MinHits = 2
	sel := NewSelector(cfg)
	for v := range uint64(100) {
		sel.Select(testScore("a.example", v, 0, 12), v, nil)
		sel.Select(testScore("a.example", v, time.Second, 12), v, nil) // published
	}
	sel.Select(testScore("a.example", 1000, 9*time.Minute, 12), 1000, nil) // one hit, unpublished
	if n := sel.Tracked(); n != 101 {
		t.Fatalf("tracking %d, want 101", n)
	}
	// Event time moves on with scores below the threshold. Nothing is
	// forgotten within a TTL after expiry: a lagging partition may still
	// have a duplicate to suppress.
	sel.Select(testScore("b.example", 1, 2*cfg.TTL-time.Second, 1), 1, nil)
	if n := sel.Tracked(); n != 101 {
		t.Errorf("tracking %d a TTL after expiry, want all 101", n)
	}
	// State goes at the next sweep, every half TTL of event time.
	sel.Select(testScore("b.example", 1, 2*cfg.TTL+cfg.TTL/2, 1), 1, nil)
	if n := sel.Tracked(); n != 1 {
		t.Errorf("tracking %d 2.5 TTLs after the detections, want the 1 with a recent hit", n)
	}
	sel.Select(testScore("b.example", 1, 4*cfg.TTL, 1), 1, nil)
	if n := sel.Tracked(); n != 0 {
		t.Errorf("tracking %d, want none", n)
	}
	if sel.Evicted() != 0 {
		t.Errorf("%d evicted, want none: expiry is not eviction", sel.Evicted())
	}
}

func TestSelectorMaxTracked(t *testing.T) {
	cfg := oneHitConfig()
	cfg.MaxTracked = 50
	sel := NewSelector(cfg)
	for v := range uint64(500) {
		if _, got := sel.Select(testScore("a.example", v, 0, 12), v, nil); got != Published {
			t.Fatalf("visitor %d: %v", v, got)
		}
		if n := sel.Tracked(); n > cfg.MaxTracked {
			t.Fatalf("tracking %d, above -max-tracked %d", n, cfg.MaxTracked)
		}
	}
	if sel.Evicted() < 500-50 {
		t.Errorf("%d evicted, want at least 450", sel.Evicted())
	}
	// The newest visitor is still known.
	if _, got := sel.Select(testScore("a.example", 499, time.Second, 12), 499, nil); got != SuppressedDuplicate {
		t.Errorf("newest visitor: %v, want duplicate", got)
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{
		Below: "below", Published: "published", SuppressedDuplicate: "duplicate",
		SuppressedAllowList: "allow_list", SuppressedSiteOff: "site_off", SuppressedGate: "gate",
		SuppressedUsualStart: "usual_start", SuppressedKnownProgram: "known_program", Outcome(99): "unknown",
	} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d) = %q, want %q", o, got, want)
		}
	}
}

func BenchmarkSelect(b *testing.B) {
	for _, minHits := range []int{1, 3} {
		b.Run(fmt.Sprintf("min-hits=%d", minHits), func(b *testing.B) {
			cfg := oneHitConfig()
			cfg.MinHits = minHits
			sel := NewSelector(cfg)
			scores := make([]*records.Score, 10_000)
			for i := range scores {
				scores[i] = testScore("a.example", uint64(i%2000), time.Duration(i)*10*time.Millisecond, 8+float64(i%5))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				sc := scores[i%len(scores)]
				sel.Select(sc, uint64(i%len(scores)%2000), nil)
			}
		})
	}
}

// oneHitConfig is the default selection with -min-hits 1, so that one score
// above the threshold publishes: the tests of the other rules start from it.
func oneHitConfig() SelectConfig {
	c := DefaultSelectConfig()
	c.MinHits = 1
	return c
}

// groupScore is a score of visitor at t0+at, above the threshold, whose
// two top features are top1 and top2.
func groupScore(site string, visitor uint64, at time.Duration, top1, top2 string) *records.Score {
	sc := testScore(site, visitor, at, 15)
	sc.Class = "browser"
	sc.Features = []records.Contribution{
		{Feature: top1, Value: 1, Contribution: 12}, {Feature: top2, Value: 1, Contribution: 5},
		{Feature: "requests", Value: 2, Contribution: 1},
	}
	return sc
}

// TestSelectGroupsRareMembers checks that a member is published on its
// group's evidence only when its own hit brings the rare value (a top
// contribution of at least -group-rarity): a person who shares the
// signature's two features now and then, without it, needs its own hits.
func TestSelectGroupsRareMembers(t *testing.T) {
	cfg := DefaultSelectConfig() // -min-hits 3
	cfg.GroupMin, cfg.GroupShare = 5, 0.1
	sel := NewSelector(cfg)
	const site = "a.example"
	for v := range uint64(40) {
		sel.Select(testScore(site, 1000+v, time.Duration(v)*time.Second, 1), 1000+v, nil)
	}
	member := func(v uint64, at time.Duration, rare bool) *records.Score {
		sc := groupScore(site, v, at, "share_4xx", "share_non_get")
		if !rare {
			sc.Features[0].Contribution = 7 // below -group-rarity, still the top one
		}
		return sc
	}
	for v := range uint64(4) {
		if _, got := sel.Select(member(v, time.Minute, v != 0), v, nil); got != SuppressedGate {
			t.Fatalf("member %d: %v, want gate", v, got)
		}
	}
	// The fifth, rare, makes an attack of 5 with 4 rare members: published,
	// with the three rare ones before it, not visitor 0.
	if _, got := sel.Select(member(4, 2*time.Minute, true), 4, nil); got != Published {
		t.Fatalf("the fifth member: %v, want published", got)
	}
	earlier := sel.GroupDetections()
	if len(earlier) != 3 || slices.ContainsFunc(earlier, func(d records.Detection) bool { return d.Visitor == records.VisitorID(0) }) {
		t.Fatalf("earlier members published: %+v, want visitors 1 to 3", earlier)
	}
	if _, got := sel.Select(member(5, 3*time.Minute, false), 5, nil); got != SuppressedGate {
		t.Errorf("a later member without the rare value: %v, want gate", got)
	}
	if _, got := sel.Select(member(6, 3*time.Minute, true), 6, nil); got != Published {
		t.Errorf("a later rare member: %v, want published", got)
	}
	// Its own hits still publish a member without the rare value.
	for i, want := range []Outcome{SuppressedGate, Published} {
		if _, got := sel.Select(member(0, time.Duration(4+i)*time.Minute, false), 0, nil); got != want {
			t.Errorf("visitor 0's hit %d: %v, want %v", i+2, got, want)
		}
	}
}

func TestSelectGroups(t *testing.T) {
	cfg := DefaultSelectConfig() // -min-hits 3: one hit each is not enough alone
	cfg.GroupMin, cfg.GroupShare = 5, 0.1
	sel := NewSelector(cfg)
	const site = "a.example"
	// 40 ordinary visitors scored, below the threshold: the site's crowd.
	for v := range uint64(40) {
		sc := testScore(site, 1000+v, time.Duration(v)*time.Second, 1)
		if _, got := sel.Select(sc, 1000+v, nil); got != Below {
			t.Fatal(got)
		}
	}
	// Four visitors outlying the same way: gated, not yet a group (and
	// one outlying otherwise, which never joins).
	for v := range uint64(4) {
		if _, got := sel.Select(groupScore(site, v, time.Minute, "share_4xx", "share_non_get"), v, nil); got != SuppressedGate {
			t.Fatalf("member %d: %v, want gate", v, got)
		}
	}
	if _, got := sel.Select(groupScore(site, 99, time.Minute, "share_assets", "share_non_get"), 99, nil); got != SuppressedGate {
		t.Fatal(got)
	}
	if d := sel.GroupDetections(); len(d) != 0 {
		t.Fatalf("%d group detections before the group is large enough", len(d))
	}
	// The fifth makes a group of 5 of the site's 48 visitors: published,
	// with the four before it.
	d, got := sel.Select(groupScore(site, 4, 2*time.Minute, "share_non_get", "share_4xx"), 4, nil)
	if got != Published || d.Group == "" || d.GroupSize != 5 {
		t.Fatalf("the fifth member: %v, group %q of %d", got, d.Group, d.GroupSize)
	}
	earlier := sel.GroupDetections()
	if len(earlier) != 4 {
		t.Fatalf("%d earlier members published, want 4", len(earlier))
	}
	for _, e := range earlier {
		if e.Group != d.Group || e.GroupSize != 5 || !e.ExpiresAt.Equal(t0.Add(2*time.Minute+cfg.TTL)) || e.Visitor == records.VisitorID(99) {
			t.Errorf("member detection %+v", e)
		}
	}
	// Later members publish at their first hit; published ones are
	// duplicates; the visitor outlying otherwise still is not in.
	if d, got := sel.Select(groupScore(site, 5, 3*time.Minute, "share_4xx", "share_non_get"), 5, nil); got != Published || d.Group != earlier[0].Group {
		t.Errorf("a later member: %v %q", got, d.Group)
	}
	if _, got := sel.Select(groupScore(site, 0, 3*time.Minute, "share_4xx", "share_non_get"), 0, nil); got != SuppressedDuplicate {
		t.Errorf("a published member again: %v", got)
	}
	if _, got := sel.Select(groupScore(site, 99, 3*time.Minute, "share_assets", "share_non_get"), 99, nil); got != SuppressedGate {
		t.Errorf("the visitor outlying otherwise: %v", got)
	}
	if d := sel.GroupDetections(); len(d) != 0 {
		t.Errorf("%d more group detections", len(d))
	}

	// Crowds that are no attack, each of 8 members outlying the same way.
	for _, tc := range []struct {
		name   string
		people int // the site's visitors scored below the threshold
		member func(sc *records.Score, v uint64)
	}{
		// On a site of many visitors: below -group-share.
		{"a small share", 200, func(*records.Score, uint64) {}},
		// Outlying on values the history has, rare as they are: below
		// -group-rarity.
		{"common outliers", 30, func(sc *records.Score, _ uint64) { sc.Features[0].Contribution = 7 }},
		// The site's own visitors: over -group-returning of them returning.
		{"returning visitors", 30, func(sc *records.Score, v uint64) { sc.Returning = v%4 != 0 }},
	} {
		sel := NewSelector(cfg)
		for v := range uint64(tc.people) {
			sel.Select(testScore(site, 1000+v, 0, 1), 1000+v, nil)
		}
		for v := range uint64(8) {
			sc := groupScore(site, v, time.Minute, "share_4xx", "share_non_get")
			tc.member(sc, v)
			if _, got := sel.Select(sc, v, nil); got != SuppressedGate {
				t.Errorf("%s: member %d: %v, want gate", tc.name, v, got)
			}
		}
	}
	// And in an attack, a returning member needs its own evidence.
	sel = NewSelector(cfg)
	for v := range uint64(6) {
		sc := groupScore(site, v, time.Minute, "share_4xx", "share_non_get")
		sc.Returning = v == 0
		sel.Select(sc, v, nil)
	}
	for _, d := range sel.GroupDetections() {
		if d.Visitor == records.VisitorID(0) {
			t.Error("a returning member was published on the group's evidence")
		}
	}

	// And none at all with -group-min 0.
	cfg.GroupMin = 0
	sel = NewSelector(cfg)
	for v := range uint64(20) {
		if _, got := sel.Select(groupScore(site, v, time.Minute, "share_4xx", "share_non_get"), v, nil); got != SuppressedGate {
			t.Errorf("member %d without groups: %v", v, got)
		}
	}
}

// TestRevocations: a live detection on the visitor's own evidence is
// revoked after -revoke-after scores in a row below the threshold, and one
// the policy now withholds when the policy changes; a revocation expires
// when made, and the visitor needs its evidence again.
func TestRevocations(t *testing.T) {
	sel := NewSelector(oneHitConfig()) // -revoke-after 2
	if _, got := sel.Select(testScore("a.example", 1, 0, 50), 1, nil); got != Published {
		t.Fatal(got)
	}
	for i, at := range []time.Duration{30 * time.Second, time.Minute, 90 * time.Second} {
		if i == 1 { // a score above the threshold ends the streak
			if _, got := sel.Select(testScore("a.example", 1, at, 50), 1, nil); got != SuppressedDuplicate {
				t.Fatalf("above again: %v", got)
			}
			continue
		}
		sel.Select(testScore("a.example", 1, at, 1), 1, nil)
	}
	if r := sel.Revocations(); len(r) != 0 {
		t.Fatalf("revoked after one score below in a row: %+v", r)
	}
	sel.Select(testScore("a.example", 1, 2*time.Minute, 1), 1, nil)
	r := sel.Revocations()
	if len(r) != 1 || r[0].Revoked != records.RevokedNotAnomalous || !r[0].ExpiresAt.Equal(t0.Add(2*time.Minute)) || r[0].Score != 50 {
		t.Fatalf("revocations %+v", r)
	}
	if err := r[0].Validate(); err != nil {
		t.Errorf("the revocation is not a valid record: %v", err)
	}
	if _, got := sel.Select(testScore("a.example", 1, 3*time.Minute, 50), 1, nil); got != Published {
		t.Errorf("anomalous again after the revocation: %v, want published", got)
	}

	// The policy changes: the site off, a visitor allowed by id.
	for _, v := range []uint64{2, 3} {
		sel.Select(testScore("b.example", v, 3*time.Minute, 50), v, nil)
	}
	pol := mustPolicy(t, "sites:\n  a.example: {off: true}\n  b.example:\n    allow: [{visitor: "+records.VisitorID(3)+"}]\n")
	sel.Reconcile(pol)
	got := map[string]string{}
	for _, r := range sel.Revocations() {
		got[r.Site+"|"+r.Visitor] = r.Revoked
	}
	want := map[string]string{"a.example|" + records.VisitorID(1): records.RevokedSiteOff, "b.example|" + records.VisitorID(3): records.RevokedAllowed}
	if !maps.Equal(got, want) {
		t.Errorf("reconciled: %v, want %v", got, want)
	}
	sel.Reconcile(pol)
	if r := sel.Revocations(); len(r) != 0 {
		t.Errorf("revoked twice: %+v", r)
	}

	// The detector found b.example's visitor 2 allowed for who it is:
	// revoked once, its record's time the revocation's.
	allowed := &records.Score{V: records.Version, Site: "b.example", Visitor: records.VisitorID(2), Allowed: true,
		WindowStart: t0, WindowEnd: t0.Add(4 * time.Minute), ScoredAt: t0.Add(4 * time.Minute)}
	if err := allowed.Validate(); err != nil {
		t.Fatalf("an allowed record: %v", err)
	}
	for range 2 {
		sel.Allowed(allowed, 2)
	}
	if r := sel.Revocations(); len(r) != 1 || r[0].Visitor != records.VisitorID(2) || r[0].Revoked != records.RevokedAllowed || !r[0].DetectedAt.Equal(allowed.ScoredAt) {
		t.Errorf("allowed: revocations %+v, want visitor 2's once", r)
	}

	// A crowd's member is not revoked for its low scores; a revocation
	// read back after a restart lifts the detection before it.
	sel = NewSelector(oneHitConfig())
	d := sel.detection(testScore("c.example", 4, 0, 5), 4)
	d.Group = "c-0011223344556677"
	if err := sel.Restore(&d); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		sel.Select(testScore("c.example", 4, time.Duration(i+1)*time.Second, 1), 4, nil)
	}
	if r := sel.Revocations(); len(r) != 0 {
		t.Errorf("a crowd member revoked: %+v", r)
	}
	rv := sel.detection(testScore("c.example", 4, 10*time.Second, 5), 4)
	rv.ExpiresAt, rv.Revoked = rv.DetectedAt, records.RevokedAllowed
	if err := sel.Restore(&rv); err != nil {
		t.Fatal(err)
	}
	if _, got := sel.Select(testScore("c.example", 4, 11*time.Second, 50), 4, nil); got != Published {
		t.Errorf("after a revocation read back: %v, want published", got)
	}
}
