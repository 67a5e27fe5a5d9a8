package publisher

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/pkg/records"
)

// crowdScore is the first score of visitor's visit at t0+at: a window of
// shape k (its paths value), on page, scoring ratio of the threshold.
func crowdScore(visitor uint64, at time.Duration, k float64, page string, ratio float64) *records.Score {
	sc := testScore("a.example", visitor, at, ratio*threshold)
	sc.Features[1].Value = k
	sc.Page = page
	return sc
}

// usualSelector returns a Selector of cfg that has learned, from 1,000
// visits of the hour before t0, that the site's visits begin in shape 0
// (nine in ten) or shape 1.
func usualSelector(cfg SelectConfig) *Selector {
	sel := NewSelector(cfg)
	for v := range uint64(1000) {
		sc := crowdScore(1_000_000+v, -time.Hour+time.Duration(v)*3*time.Second, float64(v%10/9), "/", 0.2)
		sel.Learn(sc, 1_000_000+v)
	}
	return sel
}

// people scores n new visitors of the usual shapes, one every 2 s from
// t0, each on a page of its own, and fails the test if any is published.
func people(t *testing.T, sel *Selector, n int, p *Policy) {
	t.Helper()
	for v := range uint64(n) {
		sc := crowdScore(2_000_000+v, time.Duration(v)*2*time.Second, float64(v%10/9), fmt.Sprint("/p", v), 0.3)
		if _, got := sel.Select(sc, 2_000_000+v, p); got != Below {
			t.Fatalf("person %d: %v", v, got)
		}
	}
}

func TestSelectCrowds(t *testing.T) {
	cfg := DefaultSelectConfig()
	attack := func(v uint64) *records.Score { // a rare shape, a page each, low scores
		return crowdScore(v, 3*time.Minute+time.Duration(v)*time.Second, 3, fmt.Sprint("/item/", v), 0.3)
	}

	sel := usualSelector(cfg)
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
		learn  bool
		p      string // policy
		member func(v uint64) *records.Score
	}{
		{"people who come for one page", nil, true, "", func(v uint64) *records.Score {
			sc := attack(v)
			sc.Page = "/shared"
			return sc
		}},
		{"a publisher that has not learned the usual visits", nil, false, "", attack},
		{"returning visitors", nil, true, "", func(v uint64) *records.Score {
			sc := attack(v)
			sc.Returning = true
			return sc
		}},
		{"the site switched off", nil, true, "a.example off\n", attack},
		{"crowds off", func(c *SelectConfig) { c.CrowdRatio = 0 }, true, "", attack},
		{"groups off", func(c *SelectConfig) { c.GroupMin = 0 }, true, "", attack},
		{"too few for -crowd-learn", func(c *SelectConfig) { c.CrowdLearn = 2000 }, true, "", attack},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultSelectConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			sel := NewSelector(cfg)
			if tc.learn {
				sel = usualSelector(cfg)
			}
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

	// An attack on one page that does something unusual there (a login
	// failing) is one; an allow-listed member is not published.
	sel = usualSelector(cfg)
	p := mustPolicy(t, "a.example allow "+records.VisitorID(2)+"\n")
	people(t, sel, 150, p)
	published := 0
	for v := range uint64(12) {
		sc := attack(v)
		sc.Page, sc.Score = "/login", 0.7*threshold
		if _, got := sel.Select(sc, v, p); got == Published {
			published++
		}
	}
	for _, d := range sel.GroupDetections() {
		if d.Visitor == records.VisitorID(2) {
			t.Error("an allow-listed member was published")
		}
		published++
	}
	if published != 11 {
		t.Errorf("%d members of a login attack published, want 11 (12 but one allowed)", published)
	}
}

// TestCrowdsLearn: the usual mix learns the first scores that leave the
// TTL, but those of visitors published, each with the weight of its
// time, and forgets at the half-life.
func TestCrowdsLearn(t *testing.T) {
	cfg := DefaultSelectConfig()
	c := newCrowds(cfg)
	published := map[uint64]bool{7: true}
	isPublished := func(_ string, v uint64) bool { return published[v] }
	at := func(d time.Duration) int64 { return t0.Add(d).UnixNano() }
	for v := range uint64(10) {
		c.first(crowdScore(v, time.Duration(v)*time.Second, 0, "/", 0.1), v, at(time.Duration(v)*time.Second), records.Detection{}, isPublished)
	}
	cc := c.sites["a.example"][""]
	if cc.total != 0 || cc.fresh != 10 {
		t.Fatalf("within the TTL: learned %v, %d new", cc.total, cc.fresh)
	}
	c.sweep(at(cfg.TTL+time.Minute), isPublished)
	s := shape(crowdScore(0, 0, 0, "/", 0.1))
	if math.Abs(cc.total-9) > 0.01 || cc.usual[s] != cc.total || cc.fresh != 0 || len(cc.crowds) != 0 || c.n != 0 {
		t.Fatalf("after the TTL: learned %v (%v of the shape), %d new, %d crowds, %d tracked; want 9 of 10", cc.total, cc.usual[s], cc.fresh, len(cc.crowds), c.n)
	}
	later := cfg.TTL + time.Minute + cfg.CrowdHalfLife
	c.sweep(at(later), isPublished)
	if want := 9 * math.Exp2(-float64(later)/float64(cfg.CrowdHalfLife)); math.Abs(cc.total-want) > 0.01 {
		t.Errorf("a half-life after the TTL: %v, want %.3f", cc.total, want)
	}
}
