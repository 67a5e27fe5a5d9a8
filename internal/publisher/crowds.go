package publisher

import (
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"math"
	"slices"

	"gonum.org/v1/gonum/mathext"

	"github.com/anomalyd/anomalyd/pkg/records"
)

// crowds finds coordinated attacks that no member's score gives away: a
// campaign of hundreds of addresses, each reading a few pages or trying a
// few logins, is made of visitors that each look like a person with a
// short visit, so they have no hits for groups to gather. What gives them
// away is that they are alike: one program runs every address, so their
// visits begin the same way, and far more of them begin it at once than
// the site's own traffic would.
//
// A visit's first score (a visitor with no score within the TTL before)
// has a shape: its class and its feature values, each rounded to a
// quarter. A site learns, per class, how often each shape begins a visit
// (the usual mix), from the first scores that have left the TTL, but
// those of visitors it published, with the weight of old ones halving
// every HalfLife. It is compared with visits as the detector scores them:
// a first score is taken when the window first has -min-requests
// requests, so it is how visits begin, which the history's whole windows
// are not.
//
// The first scores of new visitors (the site's history does not know
// them) within the TTL make a crowd per shape. A crowd is a coordinated
// attack once it has at least GroupMin members, at least CrowdRatio times
// as many as the usual mix would send among that many new visitors, so
// many that the usual mix would send as many less often than CrowdChance
// (a Poisson tail), and it is unusual in what its members fetch (see
// unusual). That last test is what keeps people out: those who come at
// once for a link shared widely begin their visits alike too (the page,
// then its files), in a shape that may be rare on the site, but on one
// page and as people visit it. Each member is published, whatever its
// score, with the crowd named as its group; members that come later are
// published at their first score while the crowd lasts.
//
// A site's class is judged only once CrowdLearn first scores have taught
// its mix: a publisher that starts knows nothing and finds no crowd for a
// while (Learn teaches it from scores of earlier traffic).
type crowds struct {
	enabled  bool
	ttl      int64
	min      int
	ratio    float64
	chance   float64
	score    float64
	learn    float64
	halfLife float64 // event-time ns
	limit    int     // of first scores within the TTL, in all
	n        int
	sites    map[string]map[string]*crowdClass // site, class
}

// crowdClass is what one site's class has learned and is judging.
type crowdClass struct {
	usual   map[uint64]float64 // shape: weight of first scores
	total   float64
	decayed int64 // the event time usual's weights are as of
	// recent are the first scores within the TTL, oldest first
	// (recent[head:]); fresh counts those of new visitors.
	recent []firstScore
	head   int
	fresh  int
	crowds map[uint64]*group // shape: its new visitors within the TTL
}

type firstScore struct {
	visitor   uint64
	shape     uint64
	at        int64
	returning bool
}

// shapeQuantum is the rounding of feature values in a shape: a visit's
// first score has a handful of requests, so its values are few (shares
// of 4 or 5 requests, log-odds of 0 to 5 of them), and a quarter keeps
// them apart while windows of an attack's addresses, alike but not
// identical in volume, still fall together.
const shapeQuantum = 0.25

func newCrowds(cfg SelectConfig) *crowds {
	return &crowds{
		enabled: cfg.Crowds(), ttl: int64(cfg.TTL), min: cfg.GroupMin, ratio: cfg.CrowdRatio, chance: cfg.CrowdChance, score: cfg.CrowdScore,
		learn: float64(cfg.CrowdLearn), halfLife: float64(cfg.CrowdHalfLife), limit: cfg.MaxTracked,
		sites: make(map[string]map[string]*crowdClass),
	}
}

// shape is the shape of sc's window.
func shape(sc *records.Score) uint64 {
	h := fnv.New64a()
	h.Write([]byte(sc.Class))
	var b [8]byte
	for _, f := range sc.Features {
		q := math.Round(f.Value / shapeQuantum)
		binary.BigEndian.PutUint64(b[:], uint64(int64(max(min(q, 1<<40), -1<<40))))
		h.Write(b[:])
	}
	return h.Sum64()
}

func (c *crowds) class(site, class string) *crowdClass {
	classes := c.sites[site]
	if classes == nil {
		classes = make(map[string]*crowdClass)
		c.sites[site] = classes
	}
	cc := classes[class]
	if cc == nil {
		cc = &crowdClass{usual: make(map[uint64]float64), crowds: make(map[uint64]*group)}
		classes[class] = cc
	}
	return cc
}

// learnFirst teaches sc's site and class that a visit began with sc's
// shape at t.
func (c *crowds) learnFirst(sc *records.Score, t int64) {
	cc := c.class(sc.Site, sc.Class)
	c.decay(cc, t)
	c.teach(cc, shape(sc), t)
}

// maxShapes bounds the shapes a site's class remembers: beyond it, a new
// shape only counts in the total, so it stays as rare as it was (a flood
// of visitors each unlike the others cannot grow the memory).
const maxShapes = 1 << 16

// teach counts a visit that began with shape s at t in cc's usual mix,
// with its weight as of the time the weights are decayed to.
func (c *crowds) teach(cc *crowdClass, s uint64, t int64) {
	w := math.Exp2(float64(t-cc.decayed) / c.halfLife)
	if _, ok := cc.usual[s]; ok || len(cc.usual) < maxShapes {
		cc.usual[s] += w
	}
	cc.total += w
}

// decay brings cc's weights to t, at most once per tenth of a half-life
// of event time, forgetting shapes whose weight has all but gone.
func (c *crowds) decay(cc *crowdClass, t int64) {
	if cc.decayed == 0 {
		cc.decayed = t
		return
	}
	dt := float64(t - cc.decayed)
	if dt < c.halfLife/10 {
		return
	}
	f := math.Exp2(-dt / c.halfLife)
	cc.total = 0
	for s, w := range cc.usual {
		if w *= f; w < 0.01 {
			delete(cc.usual, s)
			continue
		}
		cc.usual[s] = w
		cc.total += w
	}
	cc.decayed = t
}

// first notes sc, the first score of visitor's visit at t, whose
// detection would be d, and returns its crowd when it is a coordinated
// attack, and whether it became one just now. published reports whether
// a visitor was published, so that its visit does not teach the usual
// mix.
func (c *crowds) first(sc *records.Score, visitor uint64, t int64, d records.Detection, published func(site string, visitor uint64) bool) (*group, bool) {
	cc := c.class(sc.Site, sc.Class)
	c.age(cc, sc.Site, t, published)
	if c.n >= c.limit {
		return nil, false
	}
	s := shape(sc)
	cc.recent = append(cc.recent, firstScore{visitor: visitor, shape: s, at: t, returning: sc.Returning})
	c.n++
	if sc.Returning {
		return nil, false
	}
	cc.fresh++
	cr := cc.crowds[s]
	if cr == nil {
		cr = &group{id: crowdID(sc.Site, s, t), members: make(map[uint64]*member)}
		cc.crowds[s] = cr
	}
	cr.members[visitor] = &member{at: t, detection: d, page: sc.Page, ratio: sc.Score / sc.Threshold}
	if cr.active {
		return cr, false
	}
	m := float64(len(cr.members))
	if cc.total < c.learn || len(cr.members) < c.min {
		return cr, false
	}
	p := (cc.usual[s] + 0.5) / (cc.total + 1)
	lambda := p * float64(cc.fresh)
	if m >= c.ratio*lambda && mathext.GammaIncReg(m, lambda) <= c.chance && c.unusual(cr) {
		cr.active = true
		return cr, true
	}
	return cr, false
}

// unusual reports whether a crowd is an attack by what its members were
// fetching: spread over pages (fewer than two members to a page, as when
// a catalogue is shared out among addresses), or, on few pages, scoring
// at the median at least CrowdScore of their thresholds. People who come
// at once come for one page, visit it as people do and then go their own
// ways; an attack on one page (a login) does something unusual there.
func (c *crowds) unusual(cr *group) bool {
	pages := make(map[string]struct{}, len(cr.members))
	ratios := make([]float64, 0, len(cr.members))
	for _, m := range cr.members {
		pages[m.page] = struct{}{}
		ratios = append(ratios, m.ratio)
	}
	if 2*len(pages) >= len(ratios) {
		return true
	}
	slices.Sort(ratios)
	return ratios[len(ratios)/2] >= c.score
}

// age moves cc's first scores that have left the TTL at t into the usual
// mix, but those of visitors published, and out of their crowds.
func (c *crowds) age(cc *crowdClass, site string, t int64, published func(string, uint64) bool) {
	c.decay(cc, t)
	cut := t - c.ttl
	for cc.head < len(cc.recent) && cc.recent[cc.head].at <= cut {
		f := cc.recent[cc.head]
		cc.recent[cc.head] = firstScore{}
		cc.head++
		c.n--
		if !published(site, f.visitor) {
			c.teach(cc, f.shape, f.at)
		}
		if f.returning {
			continue
		}
		cc.fresh--
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

// sweep ages every site's class to cut+TTL, so that crowds end and
// first scores teach the mix on sites that have gone quiet.
func (c *crowds) sweep(now int64, published func(string, uint64) bool) {
	for site, classes := range c.sites {
		for _, cc := range classes {
			c.age(cc, site, now, published)
		}
	}
}

// crowdID names a crowd: its site, shape and the event time of its first
// member, hashed, so that the same traffic gives the same id.
func crowdID(site string, s uint64, t int64) string {
	h := fnv.New64a()
	h.Write([]byte(site))
	h.Write([]byte{0})
	h.Write(binary.BigEndian.AppendUint64(nil, s))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(t)))
	return "c-" + hex.EncodeToString(h.Sum(nil))
}
