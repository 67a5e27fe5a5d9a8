package publisher

import (
	"fmt"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// crowdScore is the first score of visitor's visit at t0+at: a window of
// shape k, which began share of the site's visits in its history, on
// page, scoring ratio of the threshold.
func crowdScore(visitor uint64, at time.Duration, k string, share float64, page string, ratio float64) *records.Score {
	sc := testScore("a.example", visitor, at, ratio*threshold)
	sc.Shape, sc.ShapeShare, sc.Page = k, share, page
	return sc
}

// people scores n new visitors of the site's usual shapes, one every 2 s
// from t0, each on a page of its own, and fails the test if any is
// published.
func people(t *testing.T, sel *Selector, n int, p *policy.Policy) {
	t.Helper()
	for v := range uint64(n) {
		k, share := "usual", 0.9
		if v%10 == 9 {
			k, share = "less usual", 0.1
		}
		sc := crowdScore(2_000_000+v, time.Duration(v)*2*time.Second, k, share, fmt.Sprint("/p", v), 0.3)
		if _, got := sel.Select(sc, 2_000_000+v, p); got != Below {
			t.Fatalf("person %d: %v", v, got)
		}
	}
}

func TestSelectCrowds(t *testing.T) {
	cfg := DefaultSelectConfig()
	attack := func(v uint64) *records.Score { // a shape the history hardly had, a page each, low scores
		return crowdScore(v, 3*time.Minute+time.Duration(v)*time.Second, "rare", 0.5/1001, fmt.Sprint("/item/", v), 0.3)
	}

	sel := NewSelector(cfg)
	people(t, sel, 150, nil)
	for v := range uint64(9) {
		if _, got := sel.Select(attack(v), v, nil); got != Below {
			t.Fatalf("member %d of 9: %v", v, got)
		}
	}
	d, got := sel.Select(attack(9), 9, nil)
	if got != Published || len(d.Group) < 2 || d.Group[:2] != "c-" || d.GroupSize != 10 {
		t.Fatalf("the tenth member: %v, group %q of %d", got, d.Group, d.GroupSize)
	}
	if earlier := sel.GroupDetections(); len(earlier) != 9 {
		t.Fatalf("%d earlier members published, want 9", len(earlier))
	} else {
		for _, e := range earlier {
			if e.Group != d.Group || e.Score >= e.Threshold {
				t.Errorf("member detection %+v", e)
			}
		}
	}
	if later, got := sel.Select(attack(10), 10, nil); got != Published || later.Group != d.Group {
		t.Errorf("a later member: %v %q", got, later.Group)
	}
	if _, got := sel.Select(attack(3), 3, nil); got != Below {
		t.Errorf("a published member scored again: %v", got)
	}

	// Crowds of the same shape that are not attacks, or not found.
	cases := []struct {
		name   string
		cfg    func(*SelectConfig)
		p      string // policy
		member func(v uint64) *records.Score
	}{
		{"people who come for one page", nil, "", func(v uint64) *records.Score {
			sc := attack(v)
			sc.Page = "/shared"
			return sc
		}},
		// A small site's people judged by the baseline pooled over every
		// site: their first scores run at 0.4 to 0.6 of its threshold.
		{"people who come for one page, scoring as people of another site", nil, "", func(v uint64) *records.Score {
			sc := attack(v)
			sc.Page, sc.Score = "/shared", 0.6*threshold
			return sc
		}},
		{"a shape the history had", nil, "", func(v uint64) *records.Score {
			sc := attack(v)
			sc.ShapeShare = 0.05 // 40 of 190 new visitors is 4 times that
			return sc
		}},
		{"a baseline that does not know how visits begin", nil, "", func(v uint64) *records.Score {
			sc := attack(v)
			sc.Shape, sc.ShapeShare = "", 0
			return sc
		}},
		{"the site switched off", nil, "sites: {a.example: {off: true}}\n", attack},
		{"crowds off", func(c *SelectConfig) { c.CrowdRatio = 0 }, "", attack},
		{"groups off", func(c *SelectConfig) { c.GroupMin = 0 }, "", attack},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultSelectConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			sel := NewSelector(cfg)
			p := mustPolicy(t, tc.p)
			people(t, sel, 150, p)
			for v := range uint64(40) {
				if _, got := sel.Select(tc.member(v), v, p); got != Below {
					t.Fatalf("member %d: %v", v, got)
				}
			}
			if d := sel.GroupDetections(); len(d) != 0 {
				t.Errorf("%d crowd detections", len(d))
			}
		})
	}

	// A crowd of a shape the site's people often begin in: ten times what
	// its share brings, but the share brings more than -crowd-expected,
	// people who would be published with it.
	for _, tc := range []struct {
		expected  float64
		published bool
	}{{DefaultCrowdExpected, false}, {10, true}} {
		cfg := DefaultSelectConfig()
		cfg.CrowdExpected = tc.expected
		sel := NewSelector(cfg)
		people(t, sel, 150, nil)
		for v := range uint64(60) { // 60 of 210 first scores, 5.25 by a share of 2.5%
			sc := attack(v)
			sc.ShapeShare = 0.025
			sel.Select(sc, v, nil)
		}
		if got := len(sel.GroupDetections()) > 0; got != tc.published {
			t.Errorf("-crowd-expected %v: a crowd published %v, want %v", tc.expected, got, tc.published)
		}
	}

	// A crowd on one page is an attack when it acts there, as a login
	// attack's failing posts do, whatever their scores; people who came
	// for the page are not, though a visit's first page and its files
	// score above the threshold (a surge of make demo's traffic on a small
	// site did, at 1.12 of it). An allow-listed member is not published.
	for _, tc := range []struct {
		name  string
		score float64 // of the threshold
		posts float64 // the window's log-odds of requests not GETs
		want  int
	}{{"failing logins", 0.3, 1.2, 11}, {"people above the threshold", 1.2, -3, 0}} {
		sel = NewSelector(cfg)
		p := mustPolicy(t, "sites:\n  a.example:\n    allow: [{visitor: "+records.VisitorID(2)+"}]\n")
		people(t, sel, 150, p)
		published := 0
		for v := range uint64(12) {
			sc := attack(v)
			sc.Page, sc.Score = "/login", tc.score*threshold
			sc.Features = append(sc.Features, records.Contribution{Feature: features.NameNonGET, Value: tc.posts})
			if _, got := sel.Select(sc, v, p); got == Published {
				published++
			}
		}
		for _, d := range sel.GroupDetections() {
			if d.Visitor == records.VisitorID(2) {
				t.Errorf("%s: an allow-listed member was published", tc.name)
			}
			published++
		}
		if published != tc.want {
			t.Errorf("%s: %d members of a crowd on one page published, want %d", tc.name, published, tc.want)
		}
	}
}

// TestSelectCrowdStaysAnAttack: a crowd found as an attack publishes its
// later members only while it is still at least -crowd-ratio times what
// its shape's share brings among the first scores within the TTL, so that
// it does not take along the people who begin their visits that way: not
// once a rebuilt baseline knows the shape as common, nor once a busy hour
// has brought many first scores since it was found.
func TestSelectCrowdStaysAnAttack(t *testing.T) {
	member := func(v uint64, at time.Duration, share float64) *records.Score {
		return crowdScore(v, at, "rare", share, fmt.Sprint("/item/", v), 0.3)
	}
	cases := []struct {
		name  string
		share float64                            // of the shape, by the baseline that scored the crowd's first ten
		later func(sel *Selector) *records.Score // the next member, after the crowd is found
		want  Outcome
	}{
		{"the same baseline, a quiet site", 0.001, func(*Selector) *records.Score {
			return member(10, 20*time.Second, 0.001)
		}, Published},
		{"a rebuilt baseline that knows the shape", 0.001, func(*Selector) *records.Score {
			return member(10, 20*time.Second, 0.2) // 0.2 of 11 first scores: 2.2, more than a tenth of 11
		}, Below},
		{"a busy hour since", 0.05, func(sel *Selector) *records.Score {
			for v := range uint64(250) { // 260 first scores within the TTL: 13 of the share 0.05
				sc := crowdScore(2_000_000+v, 15*time.Second+time.Duration(v)*time.Second, "usual", 0.9, fmt.Sprint("/p", v), 0.3)
				sel.Select(sc, 2_000_000+v, nil)
			}
			return member(10, 5*time.Minute, 0.05)
		}, Below},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sel := NewSelector(DefaultSelectConfig())
			published := 0
			for v := range uint64(10) { // ten new visitors in one shape, alone on the site: an attack
				if _, got := sel.Select(member(v, time.Duration(v)*time.Second, tc.share), v, nil); got == Published {
					published++
				}
			}
			if published += len(sel.GroupDetections()); published != 10 {
				t.Fatalf("%d members of the crowd published when found, want 10", published)
			}
			if _, got := sel.Select(tc.later(sel), 10, nil); got != tc.want {
				t.Errorf("a later member: %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCrowdsAge: first scores that leave the TTL leave their crowds, and a
// sweep forgets the classes left with none.
func TestCrowdsAge(t *testing.T) {
	cfg := DefaultSelectConfig()
	c := newCrowds(cfg)
	at := func(d time.Duration) int64 { return t0.Add(d).UnixNano() }
	for v := range uint64(10) {
		sc := crowdScore(v, time.Duration(v)*time.Second, "rare", 0.001, fmt.Sprint("/", v), 0.1)
		sc.Returning = v == 9 // a campaign may come back: it counts
		if v == 8 {
			sc.Shape = "usual"
		}
		c.first(sc, v, at(time.Duration(v)*time.Second), records.Detection{})
	}
	cc := c.sites["a.example"][crowdKind{}]
	if c.n != 10 || len(cc.crowds["rare"].members) != 9 {
		t.Fatalf("within the TTL: %d tracked, crowd of %d; want 10, 9", c.n, len(cc.crowds["rare"].members))
	}
	c.sweep(at(cfg.TTL + 5*time.Second)) // the first six have left
	if c.n != 4 || len(cc.crowds["rare"].members) != 3 || len(cc.crowds["usual"].members) != 1 {
		t.Fatalf("after part of the TTL: %d tracked, crowd of %d; want 4, 3", c.n, len(cc.crowds["rare"].members))
	}
	c.sweep(at(2 * cfg.TTL))
	if c.n != 0 || len(c.sites) != 0 {
		t.Errorf("after the TTL: %d tracked, %d sites", c.n, len(c.sites))
	}
}

// TestSelectUsualStart: a score above the threshold whose window's shape
// begins many of the site's visits is no hit, at -usual-start and above;
// a rarer one is.
func TestSelectUsualStart(t *testing.T) {
	cfg := oneHitConfig()
	for _, tc := range []struct {
		share float64
		want  Outcome
	}{
		{0, Published}, // a baseline that does not know how visits begin
		{0.004, Published},
		{0.005, SuppressedUsualStart},
		{0.3, SuppressedUsualStart},
	} {
		sel := NewSelector(cfg)
		sc := crowdScore(1, 0, "s", tc.share, "/", 2)
		if _, got := sel.Select(sc, 1, nil); got != tc.want {
			t.Errorf("shape share %v: %v, want %v", tc.share, got, tc.want)
		}
	}
	cfg.UsualStart = 0
	if _, got := NewSelector(cfg).Select(crowdScore(1, 0, "s", 0.3, "/", 2), 1, nil); got != Published {
		t.Errorf("-usual-start 0: %v", got)
	}
}

// TestSelectEarlyCrowds: the records of visits' beginnings make crowds of
// their own, judged against the beginnings' shares and, on few pages,
// by scoring above the early model's threshold, which may be below 0;
// a beginning is never a hit, and it leaves the visit's first score its
// own.
func TestSelectEarlyCrowds(t *testing.T) {
	const earlyThreshold = -10.0
	begin := func(v uint64, at time.Duration, k string, share float64, page string, score float64) *records.Score {
		sc := crowdScore(v, at, k, share, page, 0)
		sc.Early, sc.Score, sc.Threshold = true, score, earlyThreshold
		return sc
	}
	// The site's people begin their visits in its usual shapes, below the
	// early threshold.
	beginnings := func(t *testing.T, sel *Selector) {
		t.Helper()
		for v := range uint64(150) {
			k, share := "usual", 0.9
			if v%10 == 9 {
				k, share = "less usual", 0.1
			}
			sc := begin(3_000_000+v, time.Duration(v)*2*time.Second, k, share, fmt.Sprint("/p", v), -20)
			if _, got := sel.Select(sc, 3_000_000+v, nil); got != Early {
				t.Fatalf("person %d's beginning: %v", v, got)
			}
		}
	}
	login := func(v uint64) *records.Score { // two failed logins, far above the early threshold
		return begin(v, 3*time.Minute+time.Duration(v)*time.Second, "rare", 0.5/1001, "/login", -7)
	}
	for _, tc := range []struct {
		name      string
		member    func(v uint64) *records.Score
		published int
	}{
		{"a login attack", login, 12},
		{"people who come for one page", func(v uint64) *records.Score {
			sc := login(v)
			sc.Page, sc.Score = "/shared", -15 // below the threshold, though above 0.5 of it
			return sc
		}, 0},
		{"a shape the history's beginnings had", func(v uint64) *records.Score {
			sc := login(v)
			sc.ShapeShare = 0.05
			return sc
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel := NewSelector(DefaultSelectConfig())
			beginnings(t, sel)
			published := 0
			for v := range uint64(12) {
				d, got := sel.Select(tc.member(v), v, nil)
				switch got {
				case Published:
					published++
					if len(d.Group) < 2 || d.Group[:2] != "c-" {
						t.Errorf("member %d published outside a crowd: %+v", v, d)
					}
				case Early:
				default:
					t.Fatalf("member %d: %v", v, got)
				}
			}
			published += len(sel.GroupDetections())
			if published != tc.published {
				t.Errorf("%d members published, want %d", published, tc.published)
			}
		})
	}

	// Far above its threshold, a beginning alone is no hit; the visit's
	// first score, later, is still its first: it joins its own crowd.
	sel := NewSelector(DefaultSelectConfig())
	sc := begin(1, 0, "rare", 0.001, "/", 50)
	if _, got := sel.Select(sc, 1, nil); got != Early {
		t.Fatalf("a beginning far above its threshold: %v", got)
	}
	for i := range 3 {
		sc := begin(1, time.Duration(i+1)*time.Second, "rare", 0.001, "/", 50)
		if _, got := sel.Select(sc, 1, nil); got != Early {
			t.Fatalf("beginning %d: %v", i, got)
		}
	}
	first := crowdScore(1, 10*time.Second, "rare", 0.001, "/", 0.3)
	if _, got := sel.Select(first, 1, nil); got != Below {
		t.Fatalf("the visit's first score: %v", got)
	}
	if cc := sel.crowds.sites["a.example"][crowdKind{}]; cc == nil || len(cc.recent)-cc.head != 1 {
		t.Error("the first score after the visit's beginnings did not join the crowds of first scores")
	}
}
