package baseline

import (
	"cmp"
	"context"
	"slices"
	"time"

	"gonum.org/v1/gonum/mathext"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// VisitStart is the window the detector first scores of one visit of the
// history. The detector scores a visitor once its window holds
// -min-requests requests; a score is a visit's first when the visitor had
// no score within a window's span before it (the publisher's TTL, a
// window's span by default). How a site's visits begin is what the
// publisher compares crowds of new visitors with (model.Starts).
//
// An early start is instead a window that holds exactly a few requests
// (model.Early.Requests, fewer than -min-requests) at a request: the
// detector records every such window, so that visits too short to be
// scored still join crowds.
type VisitStart struct {
	Site    string
	Visitor uint64
	Second  uint32 // of the request first scored
	Agg     features.Aggregate
	Early   bool
}

// starter turns requests in (site, visitor, time) order into the starts
// of their visits, replaying what the detector would score.
type starter struct {
	w     features.Window
	span  uint32 // seconds
	k     int
	early int // 0: no early starts
	fn    func(VisitStart) error
	// The visitor in progress: its requests within the window of its
	// latest, and the second of its latest score.
	site    string
	visitor uint64
	window  []chstore.Row // window[head:]
	head    int
	scored  uint32
	any     bool // it has a score
	acc     windowAcc
}

// newStarter returns a starter of the visits' first scores at minRequests
// and, if early is below it and positive, of their early starts.
func newStarter(w features.Window, minRequests, early int, fn func(VisitStart) error) *starter {
	s := &starter{
		w: w, span: uint32(w.Span() / time.Second), k: max(minRequests, 1), fn: fn,
		acc: windowAcc{seconds: make(map[uint32]struct{})},
	}
	if early > 0 && early < s.k {
		s.early = early
	}
	return s
}

// add folds in the next request.
func (s *starter) add(r *chstore.Row) error {
	if r.Site != s.site || r.Visitor != s.visitor {
		s.site, s.visitor, s.window, s.head, s.any = r.Site, r.Visitor, s.window[:0], 0, false
	}
	first := s.w.First(s.bucket(r.Second))
	for s.head < len(s.window) && s.bucket(s.window[s.head].Second) < first {
		s.head++
	}
	if s.head > len(s.window)/2 {
		s.window = s.window[:copy(s.window, s.window[s.head:])]
		s.head = 0
	}
	s.window = append(s.window, *r)
	n := len(s.window) - s.head
	if n == s.early {
		return s.emit(r.Second, true)
	}
	if n < s.k {
		return nil
	}
	// Scored: the visit's first score unless one came within the span.
	if s.any && r.Second-s.scored < s.span {
		s.scored = r.Second
		return nil
	}
	s.any, s.scored = true, r.Second
	return s.emit(r.Second, false)
}

// emit hands fn the window in progress, ending at second.
func (s *starter) emit(second uint32, early bool) error {
	clear(s.acc.seconds)
	s.acc.counts = [features.NumCounters]uint64{}
	for _, set := range s.acc.sets {
		clear(set)
	}
	for i := s.head; i < len(s.window); i++ {
		q := &s.window[i]
		s.acc.add(q.Second, q.Flags, &q.Hashes)
	}
	return s.fn(VisitStart{Site: s.site, Visitor: s.visitor, Second: second, Agg: s.acc.aggregate(), Early: early})
}

func (s *starter) bucket(second uint32) uint32 { return s.w.Bucket(time.Unix(int64(second), 0)) }

// VisitStarts streams the starts of the visits of q's site, period and
// sample (see VisitStart), and their early starts at early requests if
// early is positive and below q.MinRequests, reading the requests table
// in (site, visitor, time) order.
func (c ClickHouseWindows) VisitStarts(ctx context.Context, w features.Window, q chstore.WindowQuery, early int, fn func(VisitStart) error) error {
	s := newStarter(w, q.MinRequests, early, fn)
	return chstore.Rows(ctx, c.Conn, c.Table, q, s.add)
}

// VisitStarts streams the starts of the visits of q's site, period and
// sample, and their early starts, as ClickHouseWindows does.
func (h *MemoryHistory) VisitStarts(ctx context.Context, w features.Window, q chstore.WindowQuery, early int, fn func(VisitStart) error) error {
	type ref struct {
		site string
		i    int
	}
	var refs []ref
	from, to := q.From.Unix(), q.To.Unix()
	for site, sh := range h.sites {
		if q.Site != "" && site != q.Site {
			continue
		}
		for i := range sh.rows {
			r := &sh.rows[i]
			if int64(r.second) >= from && int64(r.second) < to && float64(r.visitor%1_000_000) < q.Sample*1e6 {
				refs = append(refs, ref{site, i})
			}
		}
	}
	// Stable: a visitor's requests of one second keep the order they came.
	slices.SortStableFunc(refs, func(a, b ref) int {
		ra, rb := &h.sites[a.site].rows[a.i], &h.sites[b.site].rows[b.i]
		return cmp.Or(cmp.Compare(a.site, b.site), cmp.Compare(ra.visitor, rb.visitor), cmp.Compare(ra.second, rb.second), cmp.Compare(a.i, b.i))
	})
	s := newStarter(w, q.MinRequests, early, fn)
	var row chstore.Row
	for k, rf := range refs {
		if k%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r := &h.sites[rf.site].rows[rf.i]
		row = chstore.Row{Site: rf.site, Visitor: r.visitor, Second: r.second, Flags: r.flags, Hashes: r.hashes}
		if err := s.add(&row); err != nil {
			return err
		}
	}
	return nil
}

// start is a visit start as the build counts it: its site, its slot of
// time (a window's span), class, shape, and visitor as Build keys it.
type start struct {
	site  string
	slot  uint32
	class features.Class
	shape uint64
	key   uint64
}

// The history's crowds: at least historyCrowdMin visits of one site
// beginning in one shape within one slot of a window's span, beyond chance
// (historyCrowdChance, a Poisson tail) and either at least
// historyCrowdRatio times what the shape's share of the class's visits
// would bring among the slot's visits, or historyCampaignRatio times what
// its typical share of the site's would (see typicalShares). A campaign
// of the history would otherwise teach the baseline its shape as a common
// one, and hide the next; people's visits begin in a shape at about its
// share all day long. The first ratio is lower than the publisher's
// default -crowd-ratio: what is left out here only makes the shapes it
// had rarer. The typical share answers a campaign so large that it makes
// its own shape's share of the whole history: hundreds of addresses
// trying logins in half an hour were half of a small class's visits. Its
// ratio is the publisher's default: the history's first slots hold the
// visits under way when it began, whose windows look like starts, and
// there shapes of windows from the middle of visits run at several times
// their typical share.
const (
	historyCrowdMin      = 10
	historyCrowdRatio    = 3
	historyCampaignRatio = 10
	historyCrowdChance   = 1e-9
)

// shapeKey is a shape of a class.
type shapeKey struct {
	class features.Class
	shape uint64
}

// siteShape is a shape of a site's class.
type siteShape struct {
	site  string
	class features.Class
	shape uint64
}

// slotKey is a slot of a site's class.
type slotKey struct {
	site  string
	slot  uint32
	class features.Class
}

// historyCrowds reports which starts belong to the history's own crowds.
// Each round takes the crowds out of the shares the next judges by, since
// a campaign inflates its own shape's share, until a round finds none.
// The class-wide share judges only once the typical shares find no more:
// a campaign's visits dilute every other shape's share of the class, so
// that people's shapes would look like crowds in every slot, and then,
// taken out of the shares, for good.
func historyCrowds(all []start) []bool {
	type groupKey struct {
		slotKey
		shape uint64
	}
	groups := make(map[groupKey][]int)
	visits := make(map[slotKey]int)
	for i, st := range all {
		sk := slotKey{st.site, st.slot, st.class}
		groups[groupKey{sk, st.shape}] = append(groups[groupKey{sk, st.shape}], i)
		visits[sk]++
	}
	crowd := make([]bool, len(all))
	classWide := false
	for range 8 {
		counts := make(map[shapeKey]int)
		var totals [features.NumClasses]int
		for i, st := range all {
			if !crowd[i] {
				counts[shapeKey{st.class, st.shape}]++
				totals[st.class]++
			}
		}
		typical := typicalShares(all, crowd)
		unlikely := func(m, share float64, v int, ratio float64) bool {
			lambda := share * float64(v)
			return m >= ratio*lambda && mathext.GammaIncReg(m, lambda) <= historyCrowdChance
		}
		found := false
		for g, members := range groups {
			if len(members) < historyCrowdMin || crowd[members[0]] {
				continue
			}
			k := shapeKey{g.class, g.shape}
			m, v := float64(len(members)), visits[g.slotKey]
			share := (float64(counts[k]) + 0.5) / (float64(totals[g.class]) + 1)
			if unlikely(m, typical[siteShape{g.site, g.class, g.shape}], v, historyCampaignRatio) || classWide && unlikely(m, share, v, historyCrowdRatio) {
				for _, i := range members {
					crowd[i] = true
				}
				found = true
			}
		}
		if !found {
			if classWide {
				break
			}
			classWide = true
		}
	}
	return crowd
}

// typicalShares returns, per site, class and shape, the share of the
// site's visits of the class that typically begin in the shape: the median
// over the site's slots of its share of each slot's visits, each slot
// weighing as many as its other visits (those of other shapes), so that a
// campaign's own visits do not make its slots weigh more; at least half a
// visit's share of the site's visits of the class. Starts marked in crowd
// are left out. A campaign of a few slots so has the share its shape has
// outside them, however many visits it made; a shape people begin in all
// day has about its share of the day.
func typicalShares(all []start, crowd []bool) map[siteShape]float64 {
	type siteClass struct {
		site  string
		class features.Class
	}
	visits := make(map[slotKey]int)
	counts := make(map[siteShape]map[uint32]int) // by slot
	totals := make(map[siteClass]float64)
	for i, st := range all {
		if crowd[i] {
			continue
		}
		visits[slotKey{st.site, st.slot, st.class}]++
		totals[siteClass{st.site, st.class}]++
		k := siteShape{st.site, st.class, st.shape}
		if counts[k] == nil {
			counts[k] = make(map[uint32]int)
		}
		counts[k][st.slot]++
	}
	// A slot weighs at most as a typical one of its site and class: the
	// median of their visits. A campaign's slot would otherwise weigh its
	// campaign's visits for every other shape, at a share it dilutes.
	perClass := make(map[siteClass][]float64)
	for sk, v := range visits {
		sc := siteClass{sk.site, sk.class}
		perClass[sc] = append(perClass[sc], float64(v))
	}
	caps := make(map[siteClass]float64, len(perClass))
	capped := make(map[siteClass]float64, len(perClass)) // every slot's weight
	for sc, vs := range perClass {
		slices.Sort(vs)
		c := vs[len(vs)/2]
		caps[sc] = c
		for _, v := range vs {
			capped[sc] += min(v, c)
		}
	}
	type point struct{ share, weight float64 }
	var points []point
	out := make(map[siteShape]float64, len(counts))
	for k, per := range counts {
		// The slots without the shape weigh as many as their visits (at
		// most the cap), at a share of 0; only those with it are listed.
		sc := siteClass{k.site, k.class}
		total, c := totals[sc], caps[sc]
		weight, zeros := capped[sc], capped[sc]
		points = points[:0]
		for slot, n := range per {
			v := float64(visits[slotKey{k.site, slot, k.class}])
			w := min(v-float64(n), c)
			weight += w - min(v, c)
			zeros -= min(v, c)
			points = append(points, point{float64(n) / v, w})
		}
		median := 0.0
		if zeros < weight/2 {
			slices.SortFunc(points, func(a, b point) int { return cmp.Compare(a.share, b.share) })
			acc := zeros
			for _, p := range points {
				if acc += p.weight; acc >= weight/2 {
					median = p.share
					break
				}
			}
		}
		out[k] = max(median, 0.5/(total+1))
	}
	return out
}
