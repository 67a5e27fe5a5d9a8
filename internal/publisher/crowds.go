package publisher

import (
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"

	"gonum.org/v1/gonum/mathext"

	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// crowds finds coordinated attacks that no member's score gives away: a
// campaign of hundreds of addresses, each reading a few pages or trying a
// few logins, is made of visitors that each look like a person with a
// short visit, so they have no hits for groups to gather. What gives them
// away is that they are alike: one program runs every address, so their
// visits begin the same way, and far more of them begin it at once than
// the site's visits do.
//
// A visit's first score (a visitor with no score within the TTL before)
// carries its window's shape (records.Score.Shape: the feature values to
// a quarter) and the share of the site's visits in the baseline's history
// that began in that shape (ShapeShare, from model.Starts, which counts
// the windows the detector first scores of each visit, not whole
// windows, and leaves out the history's own crowds). The first scores
// within the TTL make a crowd per class and shape, of new and returning
// visitors alike: a campaign may come back from the addresses it used
// before. A crowd is a coordinated attack once it has at least GroupMin
// members, at least CrowdRatio times as many as the history's share
// would bring among the first scores of the class, so many that the
// share would bring as many less often than CrowdChance (a Poisson
// tail), while the share would bring at most CrowdExpected (those many of
// the site's people would be published with the attack), and it is
// unusual in what its members fetch (see unusual). That last test is
// what keeps people out:
// those who come at once for a link shared widely begin their visits
// alike too (the page, then its files), in a shape that may be rare on
// the site, but on one page and as people visit it. Each member is
// published, whatever its score, with the crowd named as its group;
// members that come later are published at their first score while the
// crowd stays an attack: at least GroupMin members within the TTL, and
// at least CrowdRatio times as many as the share each brings then would
// (the share of the baseline that scored it, among the first scores then
// within the TTL). Otherwise a crowd found early, under a baseline built
// on part of a history or before a busy hour, keeps publishing the people
// who begin their visits in its shape for as long as it has members.
type crowds struct {
	enabled bool
	ttl     int64
	min     int
	ratio   float64
	chance  float64
	expect  float64 // most members the share may bring
	limit   int     // of first scores within the TTL, in all
	n       int
	sites   map[string]map[crowdKind]*crowdClass
}

// crowdKind is what a site's crowds are counted within: a traffic class,
// and whether of visits' first scores or of their beginnings (Early
// records), whose shapes and shares are of windows of another size.
type crowdKind struct {
	class string
	early bool
}

// crowdClass is one site's class's first scores within the TTL.
type crowdClass struct {
	// recent are the first scores, oldest first (recent[head:]).
	recent []firstScore
	head   int
	crowds map[string]*group // shape: its visitors
}

type firstScore struct {
	visitor uint64
	shape   string
	at      int64
}

func newCrowds(cfg SelectConfig) *crowds {
	return &crowds{
		enabled: cfg.Crowds(), ttl: int64(cfg.TTL), min: cfg.GroupMin,
		ratio: cfg.CrowdRatio, chance: cfg.CrowdChance, expect: cfg.CrowdExpected, limit: cfg.MaxTracked,
		sites: make(map[string]map[crowdKind]*crowdClass),
	}
}

func (c *crowds) class(site string, kind crowdKind) *crowdClass {
	classes := c.sites[site]
	if classes == nil {
		classes = make(map[crowdKind]*crowdClass)
		c.sites[site] = classes
	}
	cc := classes[kind]
	if cc == nil {
		cc = &crowdClass{crowds: make(map[string]*group)}
		classes[kind] = cc
	}
	return cc
}

// first notes sc, the first score of visitor's visit at t, whose
// detection would be d, and returns its crowd when it is a coordinated
// attack, and whether it became one just now.
func (c *crowds) first(sc *records.Score, visitor uint64, t int64, d records.Detection) (*group, bool) {
	if sc.Shape == "" { // the baseline does not know how visits begin
		return nil, false
	}
	kind := crowdKind{sc.Class, sc.Early}
	cc := c.class(sc.Site, kind)
	c.age(cc, t)
	if c.n >= c.limit {
		return nil, false
	}
	cc.recent = append(cc.recent, firstScore{visitor: visitor, shape: sc.Shape, at: t})
	c.n++
	cr := cc.crowds[sc.Shape]
	if cr == nil {
		cr = &group{id: crowdID(sc.Site, kind, sc.Shape, t), members: make(map[uint64]*member)}
		cc.crowds[sc.Shape] = cr
	}
	cr.members[visitor] = &member{at: t, detection: d, page: sc.Page, high: high(sc), acting: acting(sc)}
	m := float64(len(cr.members))
	lambda := sc.ShapeShare * float64(len(cc.recent)-cc.head)
	if cr.active { // it stays an attack only while it is one now (see crowds)
		cr.active = len(cr.members) >= c.min && m >= c.ratio*lambda
		return cr, false
	}
	if len(cr.members) >= c.min && m >= c.ratio*lambda && lambda <= c.expect && mathext.GammaIncReg(m, lambda) <= c.chance && c.unusual(cr) {
		cr.active = true
		return cr, true
	}
	return cr, false
}

// unusual reports whether a crowd is an attack by what its members were
// fetching: spread over pages (fewer than two members to a page, as when
// a catalogue is shared out among addresses), or, on few pages, acting on
// them (most of each member's requests posts or failures, as in a login
// attack), or, for visits' beginnings, scoring above their threshold.
// People who come at once come for one page (a link shared widely), read
// it as people do and then go their own ways; their first scores, a page
// and its files, may well be above the threshold (see high).
func (c *crowds) unusual(cr *group) bool {
	pages := make(map[string]struct{}, len(cr.members))
	high, acting := 0, 0
	for _, m := range cr.members {
		pages[m.page] = struct{}{}
		if m.high {
			high++
		}
		if m.acting {
			acting++
		}
	}
	n := len(cr.members)
	return 2*len(pages) >= n || 2*high >= n || 2*acting >= n
}

// acting reports whether most of sc's window's requests were not GETs, or
// failed (a 4xx): its log-odds of either is above 0.
func acting(sc *records.Score) bool {
	for _, f := range sc.Features {
		if (f.Feature == features.NameNonGET || f.Feature == features.Name4xx) && f.Value > 0 {
			return true
		}
	}
	return false
}

// high reports whether sc, a visit's beginning, scores above its
// threshold. The beginnings of a class's visits, a few requests each, are
// so alike that their scores all lie in a narrow band, and a login attack
// begins far above it. A first score is never high for a crowd: the
// baseline learned whole windows, and a visit's first page and its files
// fall in bins they leave empty, so a crowd of people who came for one
// shared page scored above their threshold (in make demo's traffic of
// some hours, 106 people of a surge on a small site, at 1.12 of it).
func high(sc *records.Score) bool {
	return sc.Early && sc.Score > sc.Threshold
}

// age forgets cc's first scores that have left the TTL at t, and takes
// them out of their crowds.
func (c *crowds) age(cc *crowdClass, t int64) {
	cut := t - c.ttl
	for cc.head < len(cc.recent) && cc.recent[cc.head].at <= cut {
		f := cc.recent[cc.head]
		cc.recent[cc.head] = firstScore{}
		cc.head++
		c.n--
		if cr := cc.crowds[f.shape]; cr != nil {
			if m := cr.members[f.visitor]; m != nil && m.at == f.at {
				delete(cr.members, f.visitor)
			}
			if len(cr.members) == 0 {
				delete(cc.crowds, f.shape)
			}
		}
	}
	if cc.head > len(cc.recent)/2 {
		n := copy(cc.recent, cc.recent[cc.head:])
		clear(cc.recent[n:])
		cc.recent, cc.head = cc.recent[:n], 0
	}
}

// sweep ages every site's classes to now, so that crowds end on sites
// that have gone quiet, and forgets the classes with nothing left.
func (c *crowds) sweep(now int64) {
	for site, classes := range c.sites {
		for class, cc := range classes {
			c.age(cc, now)
			if cc.head == len(cc.recent) {
				delete(classes, class)
			}
		}
		if len(classes) == 0 {
			delete(c.sites, site)
		}
	}
}

// crowdID names a crowd: its site, kind, shape and the event time of its
// first member, hashed, so that the same traffic gives the same id.
func crowdID(site string, kind crowdKind, shape string, t int64) string {
	h := fnv.New64a()
	for _, s := range []string{site, kind.class, shape} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	if kind.early {
		h.Write([]byte("early"))
	}
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(t)))
	return "c-" + hex.EncodeToString(h.Sum(nil))
}
