package traffic

import (
	"container/heap"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The human model (see the package doc). A session is planned in full when
// it starts (plan), from the Generator's random source, and queued by the
// time of its next request; Next merges the queue with the bots'. Session
// starts are a Poisson process, thinned by each site's diurnal curve and
// steered so that Config.Events requests fill the span (schedule). It
// starts before Start, so that the span opens on sessions in progress.
const (
	// diurnalAmplitude and diurnalShift shape the session start rate of a
	// site: proportional to 1 + A*sin(2*pi*(h-shift)/24) at the site's
	// local hour h, so it peaks at 15:00 and is lowest at 03:00, four
	// times lower.
	diurnalAmplitude = 0.6
	diurnalShift     = 9.0
	// continuePages in continueOutOf is the chance of one more page view
	// after each: a geometric number of further pages, mean 5, capped.
	continuePages, continueOutOf = 5, 6
	maxFurtherPages              = 40
	// A power user (Options.People) goes on with 24 chances in 25 (mean
	// 24 further pages) and pauses less.
	powerPages, powerOutOf = 24, 25
	powerFurtherPages      = 200
	powerThinkMedian       = 8.0 // seconds
	// Think time between page views: lognormal, median 15 s, capped.
	thinkMedian = 15.0 // seconds
	thinkSigma  = 1.0
	thinkMax    = 300.0 // seconds
	// sizeSamples is how many sessions New plans to learn how many
	// requests a session sends within a given time of its start.
	sizeSamples = 1024
	// warmupQuantile: sessions start this quantile of a session's request
	// offsets before Start (at most Duration before), so that the span
	// opens on sessions already in progress, not on an empty site.
	warmupQuantile = 0.99
	// sizeDecay is the weight lost per session start by the sums that
	// correct the size profile (humans.planned): they remember about the
	// last thousand sessions.
	sizeDecay = 1.0 / 1024
)

var (
	dayRate = 2 * math.Pi / 86400 // radians per second of the diurnal cycle
	// siteZones are the UTC offsets, in hours, of the days of siteNames.
	// There is no daylight saving time.
	siteZones = []int{-5, 1, -8, 0, -6, 1, 2, -5, 1, 9, -8, 5}
)

// humans is the human side of a Generator: the sessions in progress, by
// the time of their next request, and the process that starts them.
type humans struct {
	sessions sessionQueue
	free     []*session // finished sessions, for their request buffers
	ids      uint64     // sessions queued
	pending  int        // requests of sessions in progress not yet returned
	open     bool       // another session is due at nextAt
	nextAt   time.Time
	nextVis  int32
	flat     bool // zero Duration: every request at Start, sessions one at a time
	// amp and phase make the rate of all sites together,
	// 1 + amp*sin(dayRate*x + phase) at x seconds after Start: a sum of
	// the sites' sinusoids, weighted by their share of activity.
	amp, phase float64
	sizes      sessionSizes
	// planned and predicted are decaying sums of the requests that the
	// sessions started lately sent within the span, and of what sizes
	// predicted for them. Their ratio corrects sizes for the visitors
	// actually drawn: returning visitors load fewer assets than the
	// samples, and more and more sessions are theirs.
	planned, predicted float64
}

// session is one browsing session in progress: its requests, planned when
// it started, and the next one to return.
type session struct {
	reqs []Request
	i    int
}

// queued is a session in the queue, with the time of its next request in
// nanoseconds from Start (the queue compares it without chasing pointers)
// and its start order, the tie-break between sessions due at once.
type queued struct {
	at int64
	id uint64
	s  *session
}

// sessionQueue is a min-heap of sessions by next request time, then id.
type sessionQueue []queued

func (q sessionQueue) Len() int { return len(q) }
func (q sessionQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].id < q[j].id
}
func (q sessionQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *sessionQueue) Push(x any)   { *q = append(*q, x.(queued)) }
func (q *sessionQueue) Pop() any {
	old := *q
	s := old[len(old)-1]
	old[len(old)-1] = queued{}
	*q = old[:len(old)-1]
	return s
}

// sessionSizes is the empirical request profile of a session: how many
// requests a session sends within r seconds of its start, on average. The
// rate control needs it to know what a session started near the end of the
// span (or before its start) contributes to the span.
type sessionSizes struct {
	offsets []float64 // of every sampled request from its session's start, seconds, sorted
	prefix  []float64 // prefix[i] = sum of offsets[:i]
	samples float64   // sessions sampled
	mean    float64   // requests per session
	last    float64   // the largest offset: every request is in by then
}

// area is the integral of S from 0 to r, where S(x) is the mean number of
// requests of a session sent before x seconds after its start.
func (z *sessionSizes) area(r float64) float64 {
	k, _ := slices.BinarySearch(z.offsets, r)
	return (float64(k)*r - z.prefix[k]) / z.samples
}

// within is S(r), the mean number of requests of a session sent before r
// seconds after its start.
func (z *sessionSizes) within(r float64) float64 {
	k, _ := slices.BinarySearch(z.offsets, r)
	return float64(k) / z.samples
}

// quantile is the offset below which a share q of the requests fall.
func (z *sessionSizes) quantile(q float64) float64 {
	return z.offsets[min(len(z.offsets)-1, int(q*float64(len(z.offsets))))]
}

// initHumans prepares the session model of g: the sites' diurnal phases,
// the activity-weighted rate of all sites, the session size profile, and
// the first session start.
func (g *Generator) initHumans() {
	h := &g.humans
	start := g.cfg.Start
	share := make([]float64, len(g.sites))
	norm := 0.0
	for k, v := range g.rank {
		p := math.Pow(g.cfg.SkewOffset+float64(k), -g.cfg.Skew) // rand.Zipf's P(k), unnormalised
		share[g.visitors[v].site] += p
		norm += p
	}
	var sum complex128
	for i := range g.sites {
		s := &g.sites[i]
		local := (start.Unix()+int64(siteZones[i%len(siteZones)])*3600)%86400 + 86400
		sec := float64(local%86400) + float64(start.Nanosecond())/1e9
		s.phase = dayRate * (sec - diurnalShift*3600)
		sum += complex(share[i]/norm, 0) * cmplx.Exp(complex(0, s.phase))
	}
	h.amp, h.phase = diurnalAmplitude*cmplx.Abs(sum), cmplx.Phase(sum)

	// The size profile, from sessions planned without a time limit.
	far := start.Add(100 * 365 * 24 * time.Hour)
	var buf []Request
	mixed := g.opts.People.on() || g.opts.SiteKinds
	for i := range sizeSamples {
		v := visitor{site: i % len(g.sites), ua: userAgents[0], seen: i%2 == 1}
		if mixed { // sessions differ by site and person: sample the visitors
			v = g.visitors[g.rank[g.activity.Uint64()]]
			v.seen = v.seen || i%2 == 1
		}
		buf = g.plan(buf[:0], &v, start, far)
		for _, r := range buf {
			h.sizes.offsets = append(h.sizes.offsets, r.Time.Sub(start).Seconds())
		}
	}
	z := &h.sizes
	slices.Sort(z.offsets)
	z.prefix = make([]float64, len(z.offsets)+1)
	for i, o := range z.offsets {
		z.prefix[i+1] = z.prefix[i] + o
	}
	z.samples = sizeSamples
	z.mean = float64(len(z.offsets)) / sizeSamples
	z.last = z.offsets[len(z.offsets)-1]

	h.planned, h.predicted = z.mean/sizeDecay, z.mean/sizeDecay // a prior: the profile is right
	h.flat = g.cfg.Duration == 0
	from := start
	if !h.flat {
		warmup := time.Duration(z.quantile(warmupQuantile) * 1e9)
		from = start.Add(-min(warmup, g.cfg.Duration))
	}
	g.schedule(from)
}

// diurnal is the session start rate of the site at x seconds after Start,
// relative to its daily mean: 1 + A*sin(2*pi*(h-shift)/24) at its local
// hour h.
func (s *site) diurnal(x float64) float64 {
	return 1 + diurnalAmplitude*math.Sin(dayRate*x+s.phase)
}

// rate is the diurnal session start rate of all sites at x seconds after
// Start, relative to the daily mean.
func (h *humans) rate(x float64) float64 {
	return 1 + h.amp*math.Sin(dayRate*x+h.phase)
}

// integral is the integral of rate from x0 to x1.
func (h *humans) integral(x0, x1 float64) float64 {
	return x1 - x0 - h.amp/dayRate*(math.Cos(dayRate*x1+h.phase)-math.Cos(dayRate*x0+h.phase))
}

// toward is the expected number of requests sent before b (seconds after
// Start) by the sessions starting at rate 1 over [x, b): the integral of
// rate(u)*S(b-u). Within z.last of b, where S varies, rate is taken at the
// midpoint: it varies little over a session's length.
func (h *humans) toward(x, b float64) float64 {
	r := b - x
	z := &h.sizes
	if r <= 0 {
		return 0
	}
	if r <= z.last {
		return h.rate(b-r/2) * z.area(r)
	}
	return h.rate(b-z.last/2)*z.area(z.last) + z.mean*h.integral(x, b-z.last)
}

// expected is the expected number of requests within the span of the
// sessions starting at rate 1 over [x, end): those sent before the end,
// less, for sessions starting before Start, those sent before Start.
func (g *Generator) expected(x float64) float64 {
	h := &g.humans
	e := h.toward(x, g.cfg.Duration.Seconds())
	if x < 0 {
		e -= h.toward(x, 0)
	}
	return e
}

// schedule draws the next session start after from, or closes the
// session starts if the sessions in progress make up Config.Events.
//
// Starts are a Poisson process whose rate is steered at every draw: the
// requests still needed (Events, less those returned and those planned by
// the sessions in progress) divided by what a unit rate of session starts
// would send within the span from now on. A process that falls behind,
// because sessions came out short, speeds up, and one ahead slows down, so
// the span fills to its end. Candidates come at the peak rate of any site
// and each is kept with its site's diurnal rate over that peak (thinning).
func (g *Generator) schedule(from time.Time) {
	h := &g.humans
	need := float64(g.cfg.Events - g.n - h.pending)
	if need <= 0 {
		h.open = false
		return
	}
	h.open = true
	if h.flat {
		h.nextAt, h.nextVis = g.cfg.Start, g.rank[g.activity.Uint64()]
		return
	}
	t := from
	for {
		left := g.end.Sub(t).Seconds()
		gap := math.Inf(1)
		if e := g.expected(t.Sub(g.cfg.Start).Seconds()) * h.planned / h.predicted; e > 0 {
			gap = g.rng.ExpFloat64() / (need / e * (1 + diurnalAmplitude))
		}
		// Forced: the process would run past the end with requests still
		// needed. Sessions started in the span send at least one request,
		// so halving the time left gets there.
		forced := !(gap < left)
		if forced {
			t = t.Add(g.end.Sub(t) / 2)
		} else {
			d := time.Duration(gap * 1e9)
			if d == 0 && t.Before(g.cfg.Start) {
				d = 1 // a warm-up session may send nothing in the span: move on
			}
			t = t.Add(d)
		}
		v := g.rank[g.activity.Uint64()]
		x := t.Sub(g.cfg.Start).Seconds()
		if forced || g.rng.Float64()*(1+diurnalAmplitude) < g.sites[g.visitors[v].site].diurnal(x) {
			h.nextAt, h.nextVis = t, v
			return
		}
	}
}

// nextHuman starts the sessions due before the earliest human request in
// progress, and returns that request's time, or false when the human
// requests are done.
func (g *Generator) nextHuman() (time.Time, bool) {
	h := &g.humans
	for h.open && (len(h.sessions) == 0 || !h.flat && h.sessions[0].at >= int64(h.nextAt.Sub(g.cfg.Start))) {
		g.startSession()
	}
	if len(h.sessions) == 0 {
		return time.Time{}, false
	}
	return g.cfg.Start.Add(time.Duration(h.sessions[0].at)), true
}

// startSession plans the session due at nextAt, keeps the part of it
// within the span, and schedules the next start.
func (g *Generator) startSession() {
	h := &g.humans
	var s *session
	if n := len(h.free); n > 0 {
		s, h.free = h.free[n-1], h.free[:n-1]
	} else {
		s = &session{reqs: make([]Request, 0, 32)} // most sessions fit
	}
	at := h.nextAt
	s.reqs = g.plan(s.reqs[:0], &g.visitors[h.nextVis], at, g.end)
	s.i = 0
	if h.flat {
		for i := range s.reqs {
			s.reqs[i].Time = at
		}
	} else {
		for s.i < len(s.reqs) && s.reqs[s.i].Time.Before(g.cfg.Start) {
			s.i++
		}
		n := len(s.reqs)
		for n > s.i && !s.reqs[n-1].Time.Before(g.end) {
			n--
		}
		s.reqs = s.reqs[:n]
	}
	if !h.flat {
		x := at.Sub(g.cfg.Start).Seconds()
		predicted := h.sizes.within(g.cfg.Duration.Seconds() - x)
		if x < 0 {
			predicted -= h.sizes.within(-x)
		}
		h.planned = h.planned*(1-sizeDecay) + float64(len(s.reqs)-s.i)
		h.predicted = h.predicted*(1-sizeDecay) + predicted
	}
	if s.i < len(s.reqs) {
		h.pending += len(s.reqs) - s.i
		heap.Push(&h.sessions, queued{at: int64(s.reqs[s.i].Time.Sub(g.cfg.Start)), id: h.ids, s: s})
		h.ids++
	} else {
		h.free = append(h.free, s)
	}
	g.schedule(at)
}

// emit returns the earliest human request and moves its session on.
func (g *Generator) emit() Request {
	h := &g.humans
	q := &h.sessions[0]
	s := q.s
	r := s.reqs[s.i]
	s.i++
	g.n++
	h.pending--
	switch {
	case g.n == g.cfg.Events: // done: drop the rest
		h.open = false
		h.sessions = nil
		h.free = nil
	case s.i == len(s.reqs):
		heap.Pop(&h.sessions)
		h.free = append(h.free, s)
	default:
		q.at = int64(s.reqs[s.i].Time.Sub(g.cfg.Start))
		heap.Fix(&h.sessions, 0)
	}
	return r
}

// pageKind is what a page view shows.
type pageKind uint8

const (
	pageHome pageKind = iota
	pageCategory
	pageProduct
	pageSearch
	pageCart
	pageCheckout
	pageLogin
	pageAddToCart  // POST /cart from a product page: the updated cart
	pagePlaceOrder // POST /checkout: the order confirmation
	numPageKinds
)

// choice is a page kind and its weight among a page's links.
type choice struct {
	kind   pageKind
	weight int
}

// links is where a visitor goes next from each kind of page.
var links = [numPageKinds][]choice{
	pageHome:       {{pageCategory, 35}, {pageProduct, 25}, {pageSearch, 25}, {pageLogin, 5}, {pageCart, 5}, {pageHome, 5}},
	pageCategory:   {{pageProduct, 55}, {pageCategory, 15}, {pageSearch, 10}, {pageHome, 10}, {pageCart, 5}, {pageLogin, 5}},
	pageProduct:    {{pageProduct, 35}, {pageCategory, 15}, {pageSearch, 15}, {pageAddToCart, 15}, {pageHome, 10}, {pageCart, 5}, {pageLogin, 5}},
	pageSearch:     {{pageProduct, 55}, {pageSearch, 25}, {pageCategory, 10}, {pageHome, 10}},
	pageCart:       {{pageCheckout, 40}, {pageProduct, 25}, {pageHome, 15}, {pageSearch, 15}, {pageCategory, 5}},
	pageCheckout:   {{pagePlaceOrder, 45}, {pageCart, 25}, {pageHome, 15}, {pageLogin, 15}},
	pageLogin:      {{pageHome, 50}, {pageCart, 25}, {pageProduct, 25}},
	pageAddToCart:  {{pageCheckout, 35}, {pageProduct, 35}, {pageCart, 10}, {pageHome, 10}, {pageSearch, 10}},
	pagePlaceOrder: {{pageHome, 60}, {pageProduct, 40}},
}

func pick(rng *rand.Rand, cs []choice) pageKind {
	total := 0
	for _, c := range cs {
		total += c.weight
	}
	x := rng.IntN(total)
	for _, c := range cs {
		if x < c.weight {
			return c.kind
		}
		x -= c.weight
	}
	panic("unreachable")
}

// planner builds the requests of one session, in time order.
type planner struct {
	rng   *rand.Rand
	s     *site
	v     *visitor
	ua    string
	ios   bool      // the user agent is an iPhone's or iPad's Safari
	t     time.Time // of the last request
	reqs  []Request
	pages int                     // page views so far
	kind  pageKind                // of the current page
	url   string                  // of the current page: the referer of its assets and links
	path  string                  // of the current page
	word  string                  // of the current search
	page  int                     // of the current search's results
	links *[numPageKinds][]choice // the site's page flow
	// Options.People and Options.LogFields.
	app     bool   // a session of the site's native app
	profile string // Request.Profile
	fields  bool   // set net on every request
	net     netID
	plain   bool // the request in the making is over plain HTTP: no TLS fingerprint
}

// plan appends to buf the requests of a session of v starting at start:
// the landing page, then further pages until the visitor leaves or the
// session reaches end (the caller drops requests at or after it).
func (g *Generator) plan(buf []Request, v *visitor, start, end time.Time) []Request {
	p := g.newPlanner(g.rng, buf, v, start)
	p.land()
	p.browse(end)
	return p.reqs
}

// newPlanner returns a planner of a session of v from start, drawing from
// rng, appending to buf.
func (g *Generator) newPlanner(rng *rand.Rand, buf []Request, v *visitor, start time.Time) planner {
	p := planner{rng: rng, s: &g.sites[v.site], v: v, ua: v.ua, t: start, reqs: buf}
	if p.rng.IntN(20) == 0 { // a second device or browser behind the same IP
		p.ua = userAgents[p.rng.IntN(len(userAgents))]
	}
	p.ios = strings.Contains(p.ua, "(iPhone;") || strings.Contains(p.ua, "(iPad;")
	p.links = linksOf[p.s.kind]
	p.app = v.profile == profApp && p.ua == v.ua // on the second device, the web site
	p.profile = profileNames[v.profile]
	if g.opts.LogFields {
		p.fields = true
		ja3, ja4 := tlsFamilies[tlsOf(p.ua, tlsChrome)].variant(v.tls)
		p.net = netID{asn: v.asn, country: v.country, ja3: ja3, ja4: ja4}
	}
	return p
}

// browse follows links from the page landed on, as the visitor's kind
// does, until the visitor leaves or the session reaches end.
func (p *planner) browse(end time.Time) {
	further, more, outOf, median := maxFurtherPages, continuePages, continueOutOf, thinkMedian
	switch p.v.profile {
	case profPower:
		further, more, outOf, median = powerFurtherPages, powerPages, powerOutOf, powerThinkMedian
	case profBouncer:
		further = 0
	}
	for range further {
		if p.rng.IntN(outOf) >= more {
			break
		}
		p.t = p.t.Add(p.think(median, thinkSigma))
		if !p.t.Before(end) {
			break
		}
		p.navigate()
	}
	p.v.seen = true
}

// think is a lognormal pause of the given median (seconds), capped.
func (p *planner) think(median, sigma float64) time.Duration {
	s := min(median*math.Exp(sigma*p.rng.NormFloat64()), thinkMax)
	return time.Duration(s * 1e9)
}

// after moves the clock on by lo to hi milliseconds.
func (p *planner) after(lo, hi int) {
	p.t = p.t.Add(time.Duration(lo+p.rng.IntN(hi-lo+1)) * time.Millisecond)
}

// land is the session's first page view: from a search engine, directly
// (typed, a bookmark, an email or an app, with no referer), from another
// site or social network, or from a page of the site seen earlier.
func (p *planner) land() {
	rng := p.rng
	if p.app { // opened from the home screen or a notification
		kind := pick(rng, []choice{{pageHome, 55}, {pageProduct, 20}, {pageCategory, 15}, {pageCart, 10}})
		path, q := p.target(kind)
		p.view("GET", path, q, "", kind)
		return
	}
	var ref, query string
	var kind pageKind
	from := rng.IntN(100)
	switch {
	case from < 40:
		ref = searchEngine(rng)
		kind = pick(rng, []choice{{pageProduct, 60}, {pageCategory, 25}, {pageHome, 15}})
		if rng.IntN(12) == 0 { // an ad click
			query = "gclid=" + strconv.FormatUint(rng.Uint64()>>16, 36)
		}
	case from < 65:
		kind = pick(rng, []choice{{pageHome, 70}, {pageProduct, 15}, {pageCategory, 10}, {pageCart, 5}})
		if rng.IntN(6) == 0 { // a newsletter link: mail clients send no referer
			query = "utm_source=newsletter&utm_medium=email&utm_campaign=" + words[rng.IntN(len(words))]
		}
	case from < 80:
		ref = elsewhere(rng)
		kind = pick(rng, []choice{{pageProduct, 60}, {pageHome, 20}, {pageCategory, 20}})
		if rng.IntN(2) == 0 {
			query = "utm_source=" + socialSources[rng.IntN(len(socialSources))] + "&utm_medium=social"
		}
	default:
		path, q := p.target(pick(rng, []choice{{pageHome, 40}, {pageCategory, 30}, {pageProduct, 30}}))
		ref = p.pageURL(path, q)
		kind = pick(rng, []choice{{pageHome, 25}, {pageCategory, 25}, {pageProduct, 35}, {pageSearch, 15}})
	}
	path, q := p.target(kind)
	if q == "" {
		q = query
		if p.v.profile == profPrivacy { // tracking parameters stripped
			q = ""
		}
	}
	switch {
	case from >= 40 && from < 65 && rng.IntN(8) == 0:
		// Typed without https://: the edge redirects to the same URL.
		p.plain = true
		p.redirect(path, q, ref)
		p.plain = false
	case from < 40 && kind == pageProduct && rng.IntN(15) == 0:
		// A search result still pointing at the old product URLs (on
		// other sites, at the URL without its trailing slash).
		if p.s.kind == kindShop {
			p.redirect("/product/"+path[len("/products/"):], q, ref)
		} else {
			p.redirect(path+"/", q, ref)
		}
	}
	p.view("GET", path, q, ref, kind)
}

// navigate is a page view following a link (or, rarely, a typed URL or a
// bookmark) from the current page.
func (p *planner) navigate() {
	rng := p.rng
	ref := p.url
	if rng.IntN(20) == 0 {
		ref = ""
	}
	kind := pick(rng, p.links[p.kind])
	switch kind {
	case pageLogin:
		if p.app {
			p.appLogin()
			return
		}
		p.login(ref)
	case pageAddToCart, pagePlaceOrder:
		p.view("POST", p.formPost(kind), "", ref, kind)
	case pageSearch:
		if p.kind == pageSearch && p.page < 6 && rng.IntN(2) == 0 { // the next page of results
			p.page++
			p.view("GET", "/search", "q="+p.word+"&page="+strconv.Itoa(p.page), ref, kind)
			return
		}
		fallthrough
	default:
		path, q := p.target(kind)
		p.view("GET", path, q, ref, kind)
	}
}

// login shows the login form, then posts it after typing, once more if
// the password was mistyped. A success redirects home.
func (p *planner) login(ref string) {
	p.view("GET", "/login", "", ref, pageLogin)
	form := p.url
	for try := range 2 {
		p.t = p.t.Add(p.think(7, 0.5)) // typing
		if failed := p.rng.IntN(100) < []int{12, 5}[try]; failed {
			p.request("POST", "/login", "", form, 401)
			p.assets(pageLogin)
			continue
		}
		p.request("POST", "/login", "", form, 302)
		p.after(20, 150)
		p.view("GET", "/", "", form, pageHome) // a redirect keeps the referer
		return
	}
}

// target is the path and query of a page of kind, picked by popularity.
func (p *planner) target(kind pageKind) (path, query string) {
	rng := p.rng
	switch kind {
	case pageHome:
		return "/", ""
	case pageCategory:
		path = p.s.categories[p.s.category.Uint64()]
		switch rng.IntN(10) {
		case 0:
			query = "sort=price_asc"
			if p.s.kind != kindShop {
				query = "sort=latest"
			}
		case 1:
			query = "page=2"
		}
		return path, query
	case pageProduct:
		return p.s.products[p.s.product.Uint64()], ""
	case pageSearch:
		p.word, p.page = p.s.words[rng.IntN(len(p.s.words))], 1
		return "/search", "q=" + p.word
	case pageCart, pageAddToCart:
		return formPaths[p.s.kind][0], ""
	case pageCheckout, pagePlaceOrder:
		return formPaths[p.s.kind][1], ""
	default: // pageLogin
		return "/login", ""
	}
}

// view is a page view: the document, then the assets it loads. Some
// product links are dead (404); a few GETs are HEADs (link previews,
// prefetchers), which load nothing.
func (p *planner) view(method, path, query, ref string, kind pageKind) {
	rng := p.rng
	status := 200
	if kind == pageProduct && rng.IntN(100) < 7 { // removed from the catalogue
		status = 404
		path = p.s.deadItem(rng)
	}
	if p.app {
		p.appView(method, path, query, kind, status)
		return
	}
	if method == "GET" && rng.IntN(300) == 0 {
		method = "HEAD"
	}
	p.show(method, path, query, ref, kind, status)
}

// show is the request for a page and, but for a HEAD, its static files.
func (p *planner) show(method, path, query, ref string, kind pageKind, status int) {
	p.request(method, path, query, ref, status)
	p.pages++
	p.kind = kind
	p.path = path
	p.url = p.pageURL(path, query)
	if method != "HEAD" {
		p.assets(kind)
	}
}

// redirect is a 301 to path, followed at once.
func (p *planner) redirect(path, query, ref string) {
	p.request("GET", path, query, ref, 301)
	p.after(30, 200)
}

// assets are the requests the current page makes within a second or two:
// its stylesheet and script, the favicon, and an API call on cart and
// search pages, all with the page as referer. A browser that has them
// cached skips them or revalidates them (304).
func (p *planner) assets(kind pageKind) {
	rng := p.rng
	cold := p.pages == 1 && !p.v.seen // first page of a first visit
	warm := p.v.profile == profWarm
	for _, a := range p.s.assets {
		status := 200
		if !cold {
			skip, revalidate := 60, 90 // within a session: often from memory
			if p.pages == 1 {
				skip, revalidate = 30, 80 // a returning visitor
			}
			if warm {
				skip, revalidate = 92, 100 // long cache lifetimes, kept
			}
			switch x := rng.IntN(100); {
			case x < skip:
				continue
			case x < revalidate:
				status = 304
			}
		}
		p.after(10, 250)
		p.request("GET", a, "", p.url, status)
	}
	switch x := rng.IntN(100); {
	case cold && x < 90:
		p.after(100, 1200)
		p.request("GET", "/favicon.ico", "", p.url, 200)
	case (p.pages == 1 && x < 20 || x < 2) && !warm:
		p.after(100, 1200)
		p.request("GET", "/favicon.ico", "", p.url, 304)
	}
	if p.pages == 1 && p.ios && rng.IntN(5) < 2 {
		// Safari asks for home screen icons the site does not have, on
		// its own account: no referer.
		p.after(50, 500)
		p.request("GET", "/apple-touch-icon-precomposed.png", "", "", 404)
		p.after(5, 60)
		p.request("GET", "/apple-touch-icon.png", "", "", 404)
	}
	switch kind {
	case pageCart, pageCheckout, pageAddToCart:
		if p.s.kind == kindShop {
			p.after(50, 600)
			p.request("GET", "/api/cart", "", p.url, 200)
		}
	case pageSearch:
		if rng.IntN(10) < 7 {
			p.after(50, 600)
			p.request("GET", "/api/search", "q="+p.word, p.url, 200)
		}
	}
	if p.s.rich {
		p.xhr(kind)
	}
}

// request appends one request at the current time.
func (p *planner) request(method, path, query, ref string, status int) {
	if p.v.noReferer {
		ref = ""
	}
	p.reqs = append(p.reqs, Request{
		Time:      p.t,
		Site:      p.s.name,
		ClientIP:  p.v.ip,
		Method:    method,
		Path:      path,
		Query:     query,
		UserAgent: p.ua,
		Referer:   ref,
		Status:    status,
		Label:     HumanLabel,
		Profile:   p.profile,
	})
	if p.fields {
		p.net.apply(&p.reqs[len(p.reqs)-1], p.plain)
	}
}

func (p *planner) pageURL(path, query string) string {
	if query == "" {
		return "https://" + p.s.name + path
	}
	return "https://" + p.s.name + path + "?" + query
}

// searchEngine is the referer of a search result click: Google's mostly.
func searchEngine(rng *rand.Rand) string {
	switch x := rng.IntN(100); {
	case x < 75:
		return searchEngines[0]
	case x < 85:
		return searchEngines[1]
	default:
		return searchEngines[2+rng.IntN(len(searchEngines)-2)]
	}
}

// elsewhere is the referer of a link from another site or a social network.
func elsewhere(rng *rand.Rand) string {
	if rng.IntN(3) == 0 {
		return "https://" + siteNames[rng.IntN(len(siteNames))] + "/"
	}
	return socialReferers[rng.IntN(len(socialReferers))]
}

var socialReferers = []string{
	"https://www.facebook.com/", "https://l.facebook.com/", "https://t.co/", "https://www.reddit.com/",
	"https://news.ycombinator.com/", "https://www.instagram.com/", "https://www.linkedin.com/",
}

var socialSources = []string{"facebook", "twitter", "reddit", "instagram", "linkedin"}
