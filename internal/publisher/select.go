package publisher

import (
	"slices"
	"time"

	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// Outcome is what the Selector decided about one score.
type Outcome uint8

// The outcomes. Every suppressed one is a score above its threshold that
// did not become a detection.
const (
	Below                  Outcome = iota // not above its threshold: no candidate
	Published                             // a detection for the edge
	SuppressedDuplicate                   // published within the TTL, score not risen enough
	SuppressedAllowList                   // the visitor is on the site's allow-list
	SuppressedSiteOff                     // the site's detections are switched off
	SuppressedGate                        // an evidence gate: -min-margin or -min-hits
	SuppressedUsualStart                  // the window's shape begins many of the site's visits: -usual-start
	SuppressedSimulate                    // the site is simulated: scored, never published
	Early                                 // a visit's beginning that made no attack: never a candidate
	SuppressedKnownProgram                // a returning visitor of the api class: -publish-known-programs
)

var outcomeNames = [...]string{
	Below:                  "below",
	Published:              "published",
	SuppressedDuplicate:    "duplicate",
	SuppressedAllowList:    "allow_list",
	SuppressedSiteOff:      "site_off",
	SuppressedGate:         "gate",
	SuppressedUsualStart:   "usual_start",
	SuppressedSimulate:     "simulate",
	Early:                  "early",
	SuppressedKnownProgram: "known_program",
}

// String is the outcome's name, the "reason" label of the suppressed
// metric.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Selector picks the detections among the scores, in event time. First,
// the first score of a visit, and the record of its beginning (Early),
// join their crowds (see crowds), and are published, whatever their
// scores and unless the policy says no, when the crowd is a coordinated
// attack; a beginning is nothing more (early), but one at least
// EarlyHitMargin above its threshold, and not in a usual start's shape
// (below), is a hit for the hits gate. Otherwise a score is a candidate
// when it is above its record's threshold (the site's). Then, in order:
//
//  1. the policy: a site switched off or a visitor on the site's
//     allow-list is suppressed (site_off, allow_list);
//  2. the usual start: a score whose window has a shape that at least
//     UsualStart of the site's visits began in (its ShapeShare) is
//     suppressed (usual_start): the baseline learned whole windows, and
//     the first requests of a visit (a page and some of its files) can
//     fall in bins that whole windows leave empty, for all the site's
//     visitors at once;
//  3. the margin gate: a score less than MinMargin above the threshold is
//     suppressed (gate); the others are hits;
//  4. a returning visitor of the api class, a program the site's
//     history knows, is suppressed (known_program) unless
//     PublishKnownPrograms: programs differ from one another more than
//     people do, and a class with too little history of its own is
//     judged against the site's people, where every program stands out;
//     one the site has served all along, and whose windows the history's
//     fit did not leave out as a bot's, is more likely the site's own
//     monitor, crawler, feed reader or integration than an attack;
//  5. a visitor with a detection that has not expired (ScoredAt before its
//     ExpiresAt) is published again only if the score is at least
//     RiseMargin above the last published score, else suppressed
//     (duplicate);
//  6. otherwise the hits gate: the visitor is published when it has at
//     least MinHits hits within TTL before this score, this one included,
//     else suppressed (gate).
//
// A detection lasts TTL from its score's ScoredAt.
//
// The state is in memory, per visitor: its last MinHits hits (when
// MinHits > 1) and its live detection. It is forgotten once the detection
// has expired and its hits are older than TTL, by more than a further TTL
// behind the newest event time seen (slack for partitions whose event time
// lags), and arbitrary visitors are forgotten when more than MaxTracked are
// tracked. A forgotten visitor, like every visitor after a partition
// rebalance, may be published once more within its TTL; the edge takes the
// later record, which changes nothing for it. After a restart, Restore
// gives back what was published before.
//
// A Selector is not safe for concurrent use.
type Selector struct {
	cfg       SelectConfig
	ttl       int64 // cfg.TTL in ns
	groups    *groups
	crowds    *crowds
	pending   []records.Detection // of group members, for GroupDetections
	revoked   []records.Detection // revocations, for Revocations
	sites     map[string]map[uint64]*visitorState
	tracked   int
	newest    int64 // newest ScoredAt seen, Unix ns: the event-time clock
	lastSweep int64
	evicted   uint64
	// now is the wall clock allow-list entries expire by: an operator's
	// expiry is a date, not a time of the traffic.
	now func() time.Time
}

type visitorState struct {
	// live is the visitor's last detection while it has not expired or
	// been revoked (expires says which); nil before the first.
	live *records.Detection
	// below counts the scores below the threshold since live was
	// published: RevokeAfter of them revoke a detection made on the
	// visitor's own evidence.
	below     int
	hits      []int64 // event times of the latest hits, as many as the site's MinHits
	expires   int64   // ExpiresAt of the live or last detection, Unix ns; 0 before the first
	published float64 // score of the last detection
}

// NewSelector returns a Selector for a validated config.
func NewSelector(cfg SelectConfig) *Selector {
	return &Selector{
		cfg: cfg, ttl: int64(cfg.TTL), groups: newGroups(cfg), crowds: newCrowds(cfg),
		sites: make(map[string]map[uint64]*visitorState), now: time.Now,
	}
}

// Tracked is the number of visitors whose state is kept.
func (s *Selector) Tracked() int { return s.tracked }

// Evicted is the number of visitors forgotten early because more than
// MaxTracked were tracked.
func (s *Selector) Evicted() uint64 { return s.evicted }

// Select decides about sc, a validated score whose visitor id is visitor,
// under policy p (nil allows everything). For Published it returns the
// detection. A score that makes its group or crowd a coordinated attack
// also publishes their earlier members: GroupDetections returns them.
func (s *Selector) Select(sc *records.Score, visitor uint64, p *policy.Policy) (records.Detection, Outcome) {
	t := sc.ScoredAt.UnixNano()
	s.advance(t)
	if sc.Early {
		if s.crowds.enabled {
			if d, ok := s.crowdMember(sc, visitor, t, p); ok {
				return d, Published
			}
		}
		if sc.Score-sc.Threshold >= s.cfg.EarlyHitMargin && !s.usualStart(sc) {
			s.hit(s.state(sc.Site, visitor), t, s.minHits(sc.Site, p))
		}
		return records.Detection{}, Early
	}
	if s.groups.seen(sc.Site, visitor, t) && s.crowds.enabled {
		if d, ok := s.crowdMember(sc, visitor, t, p); ok {
			return d, Published
		}
	}
	if !(sc.Score > sc.Threshold) {
		s.notAnomalous(sc.Site, visitor, t)
		return records.Detection{}, Below
	}
	if p.Off(sc.Site) {
		return records.Detection{}, SuppressedSiteOff
	}
	if p.Simulate(sc.Site) {
		return records.Detection{}, SuppressedSimulate
	}
	if p.AllowsVisitor(sc.Site, visitor, s.now()) {
		return records.Detection{}, SuppressedAllowList
	}
	if s.usualStart(sc) {
		return records.Detection{}, SuppressedUsualStart
	}
	if sc.Score-sc.Threshold < s.cfg.MinMargin {
		return records.Detection{}, SuppressedGate
	}
	minHits := s.minHits(sc.Site, p)
	st := s.state(sc.Site, visitor)
	st.below = 0 // anomalous again: the streak below the threshold ends
	s.hit(st, t, minHits)
	d := s.detection(sc, visitor)
	gr, started := s.groups.hit(sc, visitor, t, d)
	if started {
		s.publishGroup(gr, visitor, t, p, true)
	}
	// A member is published on its group's evidence when it is new to the
	// site and its own hit brings a value the history hardly has, as the
	// group's members do.
	inGroup := false
	if gr != nil && gr.active && !sc.Returning {
		m := gr.members[visitor]
		inGroup = m != nil && m.rare
	}
	if sc.Returning && !s.cfg.PublishKnownPrograms && sc.Class == features.ClassAPI.String() {
		return records.Detection{}, SuppressedKnownProgram
	}
	if t < st.expires {
		if !(sc.Score >= st.published+s.cfg.RiseMargin) {
			return records.Detection{}, SuppressedDuplicate
		}
	} else if s.hitsSince(st, t-s.ttl, minHits) < minHits && !inGroup {
		return records.Detection{}, SuppressedGate
	}
	if inGroup {
		d.Group, d.GroupSize = gr.id, len(gr.members)
		if m := gr.members[visitor]; m != nil {
			m.published = true
		}
	}
	st.expires = max(st.expires, t+s.ttl)
	st.published = sc.Score
	st.live, st.below = &d, 0
	return d, Published
}

// notAnomalous notes a score of visitor below its threshold at t, and
// revokes the visitor's live detection when it was made on the visitor's
// own evidence and this is the RevokeAfter-th such score in a row. A crowd
// or group member's scores are not its evidence: it stays published.
func (s *Selector) notAnomalous(site string, visitor uint64, t int64) {
	if s.cfg.RevokeAfter == 0 {
		return
	}
	st := s.sites[site][visitor]
	if st == nil || st.live == nil || t >= st.expires || st.live.Group != "" {
		return
	}
	if st.below++; st.below >= s.cfg.RevokeAfter {
		s.revoke(st, records.RevokedNotAnomalous, t)
	}
}

// revoke lifts st's live detection at t, for reason.
func (s *Selector) revoke(st *visitorState, reason string, t int64) {
	r := *st.live
	r.DetectedAt = time.Unix(0, t).UTC()
	r.ExpiresAt, r.Revoked = r.DetectedAt, reason
	s.revoked = append(s.revoked, r)
	st.expires, st.live, st.below = t, nil, 0
	st.hits = st.hits[:0] // a new detection needs its evidence again
}

// Reconcile revokes the live detections that policy p now withholds: of a
// site off or simulated, or of a visitor it allows by id. The publisher
// calls it when the policy in force changes; the revocations are dated
// the newest event time seen.
func (s *Selector) Reconcile(p *policy.Policy) {
	for site, visitors := range s.sites {
		for v, st := range visitors {
			if st.live == nil || s.newest >= st.expires {
				continue
			}
			switch {
			case p.Off(site):
				s.revoke(st, records.RevokedSiteOff, s.newest)
			case p.Simulate(site):
				s.revoke(st, records.RevokedSimulate, s.newest)
			case p.AllowsVisitor(site, v, s.now()):
				s.revoke(st, records.RevokedAllowed, s.newest)
			}
		}
	}
}

// Allowed revokes visitor's live detection, if it has one: the detector
// found its requests allowed by the policy for who it is, at sc.ScoredAt
// (an Allowed record).
func (s *Selector) Allowed(sc *records.Score, visitor uint64) {
	t := sc.ScoredAt.UnixNano()
	s.advance(t)
	st := s.sites[sc.Site][visitor]
	if st == nil || st.live == nil || s.newest >= st.expires {
		return
	}
	s.revoke(st, records.RevokedAllowed, t)
}

// Detected reports whether visitor of site has a live detection: made,
// not expired by the event-time clock and not revoked.
func (s *Selector) Detected(site string, visitor uint64) bool {
	st := s.sites[site][visitor]
	return st != nil && st.live != nil && s.newest < st.expires
}

// Revocations returns the revocations made since the last call, and
// forgets them.
func (s *Selector) Revocations() []records.Detection {
	out := s.revoked
	s.revoked = nil
	return out
}

// usualStart reports whether sc's window has a shape that at least
// UsualStart of the site's visits began in.
func (s *Selector) usualStart(sc *records.Score) bool {
	return s.cfg.UsualStart > 0 && sc.ShapeShare >= s.cfg.UsualStart
}

// minHits is the hits a visitor of site needs under policy p.
func (s *Selector) minHits(site string, p *policy.Policy) int {
	if n := p.MinHits(site); n > 0 {
		return n
	}
	return s.cfg.MinHits
}

// crowdMember notes sc, the first score of visitor's visit, in its crowd
// (see crowds) and publishes it when the crowd is a coordinated attack,
// whatever its score, unless the policy says no or it is published
// already.
func (s *Selector) crowdMember(sc *records.Score, visitor uint64, t int64, p *policy.Policy) (records.Detection, bool) {
	d := s.detection(sc, visitor)
	cr, started := s.crowds.first(sc, visitor, t, d)
	if cr == nil || !cr.active {
		return records.Detection{}, false
	}
	if started {
		s.publishGroup(cr, visitor, t, p, false)
	}
	if s.withheld(p, sc.Site, visitor) {
		return records.Detection{}, false
	}
	st := s.state(sc.Site, visitor)
	if t < st.expires {
		return records.Detection{}, false
	}
	cr.members[visitor].published = true
	d.Group, d.GroupSize = cr.id, len(cr.members)
	st.expires, st.published = t+s.ttl, sc.Score
	st.live, st.below = &d, 0
	return d, true
}

// Restore notes d, a detection published before this Selector existed
// (read back from the detections topic after a restart): until d expires,
// its visitor is published again only on a score RiseMargin above d's,
// as if this Selector had published it. A malformed visitor id is an
// error, and d is ignored.
func (s *Selector) Restore(d *records.Detection) error {
	visitor, err := records.ParseVisitorID(d.Visitor)
	if err != nil {
		return err
	}
	s.advance(d.DetectedAt.UnixNano())
	st := s.state(d.Site, visitor)
	if d.Revoked != "" { // the detections before it are lifted
		st.expires, st.live = min(st.expires, d.ExpiresAt.UnixNano()), nil
		return nil
	}
	if exp := d.ExpiresAt.UnixNano(); exp > st.expires {
		st.expires, st.published = exp, d.Score
		live := *d
		st.live = &live
	}
	return nil
}

// publishGroup publishes the members of gr, a group or crowd that became
// a coordinated attack at t, that are not published already, but visitor,
// whose own score is being decided, those policy p keeps from it and,
// when rareOnly (a signature's group), those whose top contribution is
// below the group's rarity: people who share a signature's two features
// now and then, without its rare values, are not its members' kind.
// Each detection lasts a TTL from t.
func (s *Selector) publishGroup(gr *group, visitor uint64, t int64, p *policy.Policy, rareOnly bool) {
	for v, m := range gr.members {
		if v == visitor || m.published || m.returning || rareOnly && !m.rare {
			continue
		}
		if s.withheld(p, m.detection.Site, v) {
			continue
		}
		m.published = true
		st := s.state(m.detection.Site, v)
		if t < st.expires {
			continue // published on its own evidence
		}
		st.expires, st.published = t+s.ttl, m.detection.Score
		d := m.detection
		d.Group, d.GroupSize = gr.id, len(gr.members)
		d.ExpiresAt = time.Unix(0, t).UTC().Add(s.cfg.TTL)
		s.pending = append(s.pending, d)
		st.live, st.below = &d, 0
	}
}

// withheld reports whether policy p publishes nothing of visitor on site:
// the site is off or simulated, or the visitor allowed.
func (s *Selector) withheld(p *policy.Policy, site string, visitor uint64) bool {
	return p.Off(site) || p.Simulate(site) || p.AllowsVisitor(site, visitor, s.now())
}

// GroupDetections returns the detections of group members that Select
// calls have published since the last call, and forgets them.
func (s *Selector) GroupDetections() []records.Detection {
	out := s.pending
	s.pending = nil
	return out
}

// hit records a hit at t; only the latest minHits matter.
func (s *Selector) hit(st *visitorState, t int64, minHits int) {
	if minHits <= 1 {
		return // the hit being decided is all the evidence needed
	}
	for len(st.hits) >= minHits {
		copy(st.hits, st.hits[1:])
		st.hits = st.hits[:len(st.hits)-1]
	}
	st.hits = append(st.hits, t)
}

// hitsSince counts the hits after cut; the one being decided always counts.
func (s *Selector) hitsSince(st *visitorState, cut int64, minHits int) int {
	if minHits <= 1 {
		return 1
	}
	n := 0
	for _, h := range st.hits {
		if h > cut {
			n++
		}
	}
	return n
}

// state returns the visitor's state, creating it, and making room first
// when MaxTracked are tracked.
func (s *Selector) state(site string, visitor uint64) *visitorState {
	visitors := s.sites[site]
	if st := visitors[visitor]; st != nil {
		return st
	}
	if s.tracked >= s.cfg.MaxTracked {
		s.sweep()
		// Sweeping an almost full, live state at every new visitor would
		// cost a scan each; leaving a tenth free spreads the cost.
		if s.tracked >= s.cfg.MaxTracked {
			s.evict(s.tracked - s.cfg.MaxTracked*9/10)
		}
		visitors = s.sites[site] // the sweep may have removed the site
	}
	if visitors == nil {
		visitors = make(map[uint64]*visitorState)
		s.sites[site] = visitors
	}
	st := &visitorState{}
	visitors[visitor] = st
	s.tracked++
	return st
}

// advance moves the event-time clock to t if it is newer, and forgets
// stale state every half TTL of event time.
func (s *Selector) advance(t int64) {
	if t <= s.newest {
		return
	}
	s.newest = t
	if s.newest-s.lastSweep >= s.ttl/2 {
		s.sweep()
	}
}

// sweep forgets the visitors whose state no longer matters: a detection
// that expired and hits too old to count, both a further TTL behind the
// newest event time.
func (s *Selector) sweep() {
	s.lastSweep = s.newest
	s.groups.sweep(s.newest - s.ttl)
	s.crowds.sweep(s.newest)
	cut := s.newest - 2*s.ttl
	for site, visitors := range s.sites {
		for v, st := range visitors {
			last := st.expires - s.ttl // the detection's score time
			if n := len(st.hits); n > 0 {
				last = max(last, st.hits[n-1])
			}
			if last < cut {
				delete(visitors, v)
				s.tracked--
			}
		}
		if len(visitors) == 0 {
			delete(s.sites, site)
		}
	}
}

// evict forgets n arbitrary visitors (Go's map order is randomised).
func (s *Selector) evict(n int) {
	for site, visitors := range s.sites {
		for v := range visitors {
			if n <= 0 {
				return
			}
			delete(visitors, v)
			s.tracked--
			s.evicted++
			n--
		}
		if len(visitors) == 0 {
			delete(s.sites, site)
		}
	}
}

// detection builds the record for the edge.
func (s *Selector) detection(sc *records.Score, visitor uint64) records.Detection {
	at := sc.ScoredAt.UTC()
	return records.Detection{
		V: records.Version, Site: sc.Site, Visitor: records.VisitorID(visitor), Class: sc.Class,
		Score: sc.Score, Threshold: sc.Threshold, BaselineVersion: sc.BaselineVersion,
		Top:        Top(sc.Features, s.cfg.Top),
		DetectedAt: at, ExpiresAt: at.Add(s.cfg.TTL),
	}
}

// Top returns the n largest contributions, largest first; ties keep the
// features' order.
func Top(features []records.Contribution, n int) []records.Contribution {
	top := slices.Clone(features)
	slices.SortStableFunc(top, func(a, b records.Contribution) int {
		switch {
		case a.Contribution > b.Contribution:
			return -1
		case a.Contribution < b.Contribution:
			return 1
		}
		return 0
	})
	return top[:min(n, len(top))]
}
