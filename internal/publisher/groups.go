package publisher

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/anomalyd/anomalyd/pkg/records"
)

// groups finds coordinated attacks among the hits: many visitors of a
// site that are outliers in the same way at the same time. An attack
// spread over hundreds of addresses gives each address a window or two,
// too little for -min-hits, but together they are a crowd that ordinary
// visitors never form: people are outliers one at a time, each in their
// own way.
//
// Visitors are "outliers in the same way" when their hits share a
// signature: the traffic class and the two features that contribute most
// to the score, as the baseline explains it. A group of a site is a
// signature's visitors with a hit within the TTL (event time). It is a
// coordinated attack, and each member is published as a detection that
// names it, once it has at least MinMembers members, they are at least
// Share of the site's visitors scored within the TTL, at most Returning of
// them are returning visitors (the site's history knows them,
// records.Score.Returning), and the median of their top feature's
// contribution is at least Rarity bits. A site's people have hits at the rate its
// contamination sets (half a percent by default), spread over many
// signatures, so a signature holding a few percent of the site's visitors
// is no accident. A crowd of people (a popular page shared on social
// media) has no hits to gather: its members score as people do. A crowd of
// people that does stand out the same way at once (a rush on a sale, where
// many fail to buy now and then) brings more of the values the site's
// history has, rare as they are, and many of the site's own visitors; an
// attack brings values the history hardly has (most requests failing,
// say), from addresses the site has not seen. A returning visitor is never
// published on a group's evidence, only on its own, nor is a member whose
// own top contribution is below Rarity: people who share the signature's
// two features now and then, without its rare values, are not the
// attack's kind.
//
// An attack that goes on keeps its group; members that join publish at
// their first hit that brings a rare value. A group ends once its last
// member's hit is a TTL old. The state is in memory: per site, the
// visitors scored within the TTL, and per group, its members, at most
// MaxTracked of each in all; beyond that, new ones are not counted until
// old ones go.
type groups struct {
	ttl        int64
	minMembers int
	share      float64
	returning  float64
	rarity     float64
	limit      int // of visitors scored, and of members, in all
	nScored    int
	nMembers   int
	// scored is each site's visitors scored within the TTL.
	scored map[string]*siteScored
	byKey  map[groupKey]*group
}

type groupKey struct{ site, class, signature string }

// group is the members of one signature within the TTL, or of one crowd
// (see crowds).
type group struct {
	id      string
	members map[uint64]*member
	active  bool // the members are a coordinated attack
	// For a signature's group: its members' latest hits in the order they
	// came, and how many members are returning visitors and how many rare.
	// A big attack's group has hundreds of members, and so may a signature
	// that many of a big site's people share; each of their hits would
	// otherwise scan them all.
	hits      timeline
	returning int
	rare      int
}

// hit makes m, visitor's hit at m.at, its latest in gr, and returns the
// member. A member keeps its published mark, and the time of its latest
// hit when this one came late.
func (gr *group) hit(visitor uint64, m member) *member {
	old := gr.members[visitor]
	later := old == nil || m.at > old.at
	if old == nil {
		old = &member{}
		gr.members[visitor] = old
	} else {
		m.published, m.at = old.published, max(m.at, old.at)
		gr.count(old, -1)
	}
	*old = m
	gr.count(old, 1)
	if later {
		gr.hits.push(scoredAt{visitor, m.at}, len(gr.members), gr.latest)
	}
	return old
}

// latest reports whether e is its member's latest hit.
func (gr *group) latest(e scoredAt) bool {
	m := gr.members[e.visitor]
	return m != nil && m.at == e.at
}

// count adds d to the counts of the kinds of member m is.
func (gr *group) count(m *member, d int) {
	if m.returning {
		gr.returning += d
	}
	if m.rare {
		gr.rare += d
	}
}

// remove forgets member visitor.
func (gr *group) remove(visitor uint64) {
	if m := gr.members[visitor]; m != nil {
		gr.count(m, -1)
		delete(gr.members, visitor)
	}
}

// expire forgets the members whose latest hit is at or before cut, and
// returns how many it forgot.
func (gr *group) expire(cut int64) int {
	return gr.hits.expire(cut, func(e scoredAt) bool {
		if !gr.latest(e) {
			return false
		}
		gr.remove(e.visitor)
		return true
	})
}

// member is a visitor with a hit in a group: the detection that hit would
// publish.
type member struct {
	at        int64
	detection records.Detection
	published bool
	returning bool // the site's history knows it: never published for the group
	rare      bool // its top feature's contribution is at least GroupRarity
	// page and high are, for a crowd's member, records.Score.Page and
	// whether it is a visit's beginning above its threshold; acting,
	// whether most of its window's requests were not GETs or failed.
	page   string
	high   bool
	acting bool
}

func newGroups(cfg SelectConfig) *groups {
	return &groups{
		ttl: int64(cfg.TTL), minMembers: cfg.GroupMin, share: cfg.GroupShare, returning: cfg.GroupReturning, rarity: cfg.GroupRarity, limit: cfg.MaxTracked,
		scored: make(map[string]*siteScored), byKey: make(map[groupKey]*group),
	}
}

// enabled reports whether groups are looked for at all.
func (g *groups) enabled() bool { return g.minMembers > 0 }

// seen notes that visitor of site was scored at t, and reports whether
// it is its visit's first score: the visitor had none within the TTL. A
// visitor beyond the limit is not noted, and its score is not a first.
func (g *groups) seen(site string, visitor uint64, t int64) bool {
	if !g.enabled() {
		return false
	}
	s := g.scored[site]
	if s == nil {
		s = &siteScored{latest: make(map[uint64]int64)}
		g.scored[site] = s
	}
	g.nScored -= s.expire(t - g.ttl)
	if at, ok := s.latest[visitor]; ok {
		if t > at {
			s.latest[visitor] = t
			s.order.push(scoredAt{visitor, t}, len(s.latest), s.isLatest)
		}
		return false
	}
	if g.nScored >= g.limit {
		return false
	}
	s.latest[visitor] = t
	s.order.push(scoredAt{visitor, t}, len(s.latest), s.isLatest)
	g.nScored++
	return true
}

// siteScored is a site's visitors scored within the TTL: the event time of
// each one's latest score, and the same in the order they came (a site
// has hundreds of thousands, too many to scan at every hit).
type siteScored struct {
	latest map[uint64]int64
	order  timeline
}

// isLatest reports whether e is its visitor's latest score.
func (s *siteScored) isLatest(e scoredAt) bool {
	at, ok := s.latest[e.visitor]
	return ok && at == e.at
}

// expire forgets the visitors whose latest score is at or before cut, and
// returns how many it forgot.
func (s *siteScored) expire(cut int64) int {
	return s.order.expire(cut, func(e scoredAt) bool {
		if !s.isLatest(e) {
			return false
		}
		delete(s.latest, e.visitor)
		return true
	})
}

// scoredAt is a visitor's score or hit at an event time.
type scoredAt struct {
	visitor uint64
	at      int64
}

// timeline is visitors' latest times in the order they came, oldest first
// (order[head:]), so that those older than a cut are found at the front
// instead of by a scan of every visitor. An entry whose visitor has a
// later one, or is gone, is stale. Times come about in event time; one
// that comes late is forgotten a little late.
type timeline struct {
	order []scoredAt
	head  int
}

// push appends e, its visitor's latest time, of n visitors whose latest
// entries latest tells. Stale entries wait for the front; when they
// outnumber the live ones, or the forgotten front is half the slice, the
// order is rebuilt, so that it stays about as long as the visitors.
func (l *timeline) push(e scoredAt, n int, latest func(scoredAt) bool) {
	if l.head > len(l.order)/2 || len(l.order)-l.head > 2*n+64 {
		kept := l.order[:0]
		for _, o := range l.order[l.head:] {
			if latest(o) {
				kept = append(kept, o)
			}
		}
		clear(l.order[len(kept):])
		l.order, l.head = kept, 0
	}
	l.order = append(l.order, e)
}

// expire takes the entries at or before cut off the front, and returns
// for how many of them forget, given each, forgot its visitor.
func (l *timeline) expire(cut int64, forget func(scoredAt) bool) int {
	n := 0
	for l.head < len(l.order) && l.order[l.head].at <= cut {
		e := l.order[l.head]
		l.order[l.head] = scoredAt{}
		l.head++
		if forget(e) {
			n++
		}
	}
	return n
}

// hit adds the hit of sc, whose detection would be d, to its group, and
// returns the group and whether the hit made it a coordinated attack just
// now; nil when groups are off.
func (g *groups) hit(sc *records.Score, visitor uint64, t int64, d records.Detection) (*group, bool) {
	if !g.enabled() {
		return nil, false
	}
	k := groupKey{sc.Site, sc.Class, signature(sc.Features)}
	gr := g.byKey[k]
	if gr == nil {
		gr = &group{id: groupID(k, t), members: make(map[uint64]*member)}
		g.byKey[k] = gr
	}
	g.nMembers -= gr.expire(t - g.ttl)
	if gr.members[visitor] == nil {
		if g.nMembers >= g.limit {
			return gr, false
		}
		g.nMembers++
	}
	top := 0.0
	if len(d.Top) > 0 {
		top = d.Top[0].Contribution
	}
	gr.hit(visitor, member{at: t, detection: d, returning: sc.Returning, rare: top >= g.rarity})
	if gr.active {
		return gr, false
	}
	active := 0
	if s := g.scored[sc.Site]; s != nil {
		g.nScored -= s.expire(t - g.ttl)
		active = len(s.latest)
	}
	// The median of the members' top contributions is at least Rarity
	// when at most half of them, rounded down, are below it.
	n := len(gr.members)
	if n >= g.minMembers && float64(n) >= g.share*float64(active) && float64(gr.returning) <= g.returning*float64(n) &&
		n-gr.rare <= n/2 {
		gr.active = true
		return gr, true
	}
	return gr, false
}

// sweep forgets what is older than cut: scores, members, and groups left
// without members.
func (g *groups) sweep(cut int64) {
	for site, s := range g.scored {
		g.nScored -= s.expire(cut)
		// Scores that came late sit behind later ones.
		for v, at := range s.latest {
			if at <= cut {
				delete(s.latest, v)
				g.nScored--
			}
		}
		if len(s.latest) == 0 {
			delete(g.scored, site)
		}
	}
	for k, gr := range g.byKey {
		g.nMembers -= gr.expire(cut)
		// Hits that came late sit behind later ones.
		for v, m := range gr.members {
			if m.at <= cut {
				gr.remove(v)
				g.nMembers--
			}
		}
		if len(gr.members) == 0 {
			delete(g.byKey, k)
		}
	}
}

// signature is the two features that contribute most to a score, by
// name, in name order: how the visitor is an outlier.
func signature(fs []records.Contribution) string {
	top := Top(fs, 2)
	names := make([]string, 0, len(top))
	for _, c := range top {
		names = append(names, c.Feature)
	}
	slices.SortFunc(names, cmp.Compare[string])
	return strings.Join(names, "+")
}

// groupID names a group: its site, class and signature, and the event
// time of its first hit, hashed, so that the same traffic gives the same
// id.
func groupID(k groupKey, t int64) string {
	h := fnv.New64a()
	for _, s := range []string{k.site, k.class, k.signature} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(t)))
	return "g-" + hex.EncodeToString(h.Sum(nil))
}
