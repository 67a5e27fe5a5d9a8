package traffic

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Agents: the newer bot scenarios, the members of campaigns and the
// automation of Options.Automation share the bot queue with the original
// bots. Where an original bot computes one request at a time, these plan a
// burst (a page and its assets, a sweep, a sync job) with an actor, and
// the queue returns its requests one by one. Only the burst in progress is
// kept, so memory grows with the number of agents, not of requests.

// actor plans what an agent does.
type actor interface {
	// plan appends the agent's next burst to b.buf (with b.add), from
	// b.at on, and sets b.at to when the burst after starts. It appends
	// nothing when the agent is done.
	plan(b *bot, s *site)
}

// fromBurst returns the agent's request due at b.next, planning the next
// burst when this one is done.
func (b *bot) fromBurst(s *site) Request {
	if b.i == len(b.buf) { // a lazy agent, due at b.at: its first burst
		b.buf, b.i = b.buf[:0], 0
		b.act.plan(b, s)
	}
	r := b.buf[b.i]
	b.i++
	if b.i == len(b.buf) {
		b.buf, b.i = b.buf[:0], 0
		if b.at.Before(b.until) {
			b.act.plan(b, s)
		}
	}
	if b.i < len(b.buf) {
		b.next = b.buf[b.i].Time
	} else {
		b.next = b.until // done: Next drops it
	}
	return r
}

// add appends a request of the agent at t (or at its last request's time,
// if t is earlier: its requests stay in order) and returns it for any
// change.
func (b *bot) add(s *site, t time.Time, method, path, query, ua, ref string, status int) *Request {
	if t.Before(b.lastAt) {
		t = b.lastAt
	}
	b.lastAt = t
	b.buf = append(b.buf, Request{
		Time: t, Site: s.name, ClientIP: b.ip, Method: method, Path: path, Query: query,
		UserAgent: ua, Referer: ref, Status: status, Label: b.label, Profile: b.profile, Group: b.group,
	})
	r := &b.buf[len(b.buf)-1]
	if b.fields {
		b.net.apply(r, false)
	}
	return r
}

// launch plans the agent's first burst, from b.at, and queues it if it
// has a request before it leaves.
func (g *Generator) launch(q botQueue, b *bot) botQueue {
	if !b.at.Before(b.until) {
		return q
	}
	b.act.plan(b, &g.sites[b.site])
	if len(b.buf) == 0 || !b.buf[0].Time.Before(b.until) {
		return q
	}
	b.next = b.buf[0].Time
	return append(q, b)
}

// launchLazy queues an agent due at b.at without planning its first
// burst, which must then start at b.at: campaigns have many addresses,
// whose requests should not all wait in memory from the start.
func launchLazy(q botQueue, b *bot) botQueue {
	if !b.at.Before(b.until) {
		return q
	}
	b.next = b.at
	return append(q, b)
}

// launchBot finishes a bot of Config.Bots or Options.Spread, made by
// newBot, and queues it. The original scenarios only get their network
// (Options.LogFields), from a source of their own, so that their requests
// are otherwise as they were.
func (g *Generator) launchBot(q botQueue, b *bot) botQueue {
	b.label = string(b.scenario)
	if b.scenario.original() {
		if g.opts.LogFields {
			g.placeBot(b)
		}
		if b.next.Before(b.until) {
			q = append(q, b)
		}
		return q
	}
	if needsShop(b.scenario) && g.opts.SiteKinds {
		b.site = g.shopNear(b.site)
	}
	newActor(b, &g.sites[b.site])
	g.placeBot(b)
	b.at = b.next
	return g.launch(q, b)
}

// shopNear returns the first shop from site on, or site if there is none.
func (g *Generator) shopNear(site int) int {
	for k := range g.sites {
		if i := (site + k) % len(g.sites); g.sites[i].kind == kindShop {
			return i
		}
	}
	return site
}

// botNet is where a scenario's bots run: the chance in 100 of a cloud or
// hosting network (else a residential one, or a mobile carrier with the
// chance mobile of the rest), and their TLS stack.
type botNet struct {
	hosting, mobile int
	tls             int // tlsBrowser, tlsTool, tlsByAgent or tlsEither
}

// How a bot's TLS family is chosen.
const (
	tlsBrowser = iota // a real browser: the family its user agent says
	tlsTool           // a script: an HTTP library, whatever its user agent says
	tlsByAgent        // the family its user agent says, a library when it names none
	tlsEither         // half the bots a real browser, half a script
)

// botNets are after vendors' accounts: scanners and scrapers mostly from
// clouds, account and payment abuse mostly through residential proxies.
var botNets = map[Scenario]botNet{
	Scraper:             {70, 20, tlsTool},
	CredentialStuffing:  {35, 30, tlsTool},
	UARotation:          {50, 20, tlsTool},
	LowAndSlow:          {60, 10, tlsByAgent},
	HeadlessBrowser:     {60, 10, tlsBrowser},
	PriceMonitor:        {70, 10, tlsByAgent},
	Scalper:             {30, 30, tlsEither},
	SpamPoster:          {50, 20, tlsTool},
	VulnScanner:         {85, 5, tlsByAgent},
	Carding:             {30, 30, tlsEither},
	FakeSignup:          {40, 30, tlsEither},
	APIScraper:          {75, 5, tlsByAgent},
	DistributedScraper:  {0, 20, tlsBrowser},
	DistributedStuffing: {0, 20, tlsBrowser},
}

// placeBot gives a bot its address and network (the fields only with
// Options.LogFields), from a source of its own: the original scenarios'
// own sources must draw as they did.
func (g *Generator) placeBot(b *bot) {
	rng := rand.New(rand.NewPCG(g.cfg.Seed^0x6e6574626f747321, uint64(b.id))) // "netbots!"
	bn := botNets[b.scenario]
	kind := asResidential
	switch x := rng.IntN(100); {
	case x < bn.hosting:
		kind = asHosting
	case rng.IntN(100) < bn.mobile:
		kind = asMobile
	}
	country := g.sites[b.site].country
	if rng.IntN(100) >= 40 {
		country = foreignCountry(rng)
	}
	ua := ""
	if len(b.uas) > 0 {
		ua = b.uas[0]
	}
	fam := tlsOf(ua, tlsChrome)
	switch bn.tls {
	case tlsTool:
		fam = toolFamily(rng)
	case tlsByAgent:
		if f := tlsOf(ua, -1); f < 0 || f == tlsChrome || f == tlsFirefox || f == tlsSafari {
			fam = toolFamily(rng) // a browser's name on a script
		}
	case tlsEither:
		if rng.IntN(2) == 0 {
			fam = toolFamily(rng)
		}
	}
	ip, id := place(rng, country, kind, fam)
	b.ip = ip
	if g.opts.LogFields {
		b.fields, b.net = true, id
	}
}

// spreadBots creates the bots of Options.Spread, each with a start
// anywhere in the span and a bounded lifetime, on a random site, from a
// source of their own.
func (g *Generator) spreadBots(q botQueue, id *int) botQueue {
	sp := g.opts.Spread
	if !sp.on() || g.cfg.Duration <= 1 {
		return q
	}
	seed := rand.New(rand.NewPCG(g.cfg.Seed, 0x7370726561642121)) // "spread!!"
	var kinds []Scenario
	for _, s := range AllScenarios() {
		for range sp.Bots[s] {
			kinds = append(kinds, s)
		}
	}
	if sp.Share > 0 {
		n := int(math.Round(sp.Share / (1 - sp.Share) * g.peopleSeen()))
		list := sp.scenarios()
		for k := range n {
			kinds = append(kinds, list[k%len(list)])
		}
	}
	lo, hi := sp.lifetimes()
	for _, s := range kinds {
		site := seed.IntN(g.cfg.Sites)
		b := newBot(seed, s, *id, site, g.cfg.Start, 0)
		*id++
		// Anywhere in the span, for a lifetime.
		b.next = g.cfg.Start.Add(time.Duration(b.rng.Int64N(int64(g.cfg.Duration))))
		b.until = b.next.Add(logUniform(b.rng.Float64(), lo, hi))
		if b.until.After(g.end) {
			b.until = g.end
		}
		q = g.launchBot(q, b)
	}
	return q
}

// peopleSeen estimates how many visitors of the population send at least
// one request in the span: each starts sessions as a Poisson process of
// its share of the activity law, and the span has about Events over the
// mean session size of them.
func (g *Generator) peopleSeen() float64 {
	h := &g.humans
	if g.cfg.Events == 0 || h.sizes.mean == 0 {
		return 0
	}
	sessions := float64(g.cfg.Events) / h.sizes.mean
	norm := 0.0
	for k := range g.cfg.Visitors {
		norm += math.Pow(g.cfg.SkewOffset+float64(k), -g.cfg.Skew)
	}
	seen := 0.0
	for k := range g.cfg.Visitors {
		p := math.Pow(g.cfg.SkewOffset+float64(k), -g.cfg.Skew) / norm
		seen += -math.Expm1(-sessions * p)
	}
	return seen
}

// Time draws of agents.

// jitter is d off by up to frac of it either way.
func jitter(rng *rand.Rand, d time.Duration, frac float64) time.Duration {
	return time.Duration(float64(d) * (1 + frac*(2*rng.Float64()-1)))
}

// lognorm is a lognormal duration of the given median, capped at 50 times
// it.
func lognorm(rng *rand.Rand, median time.Duration, sigma float64) time.Duration {
	return time.Duration(float64(median) * min(50, math.Exp(sigma*rng.NormFloat64())))
}

// between is a duration drawn evenly from [lo, hi].
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

// ms is n milliseconds.
func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// User agents of agents.

// browserAgent draws a plausible browser user agent, as residential proxy
// bots and stealthy scripts send: a common one, or a recent build.
func browserAgent(rng *rand.Rand) string {
	switch x := rng.IntN(10); {
	case x < 4:
		return userAgents[rng.IntN(len(userAgents))]
	case x < 6:
		return mobileAgents[rng.IntN(len(mobileAgents))]
	default:
		return chromeAgent(rng)
	}
}

// chromeAgent is a recent desktop Chrome's user agent, with the reduced
// version Chrome sends (major.0.0.0).
func chromeAgent(rng *rand.Rand) string {
	platform := [...]string{
		"Windows NT 10.0; Win64; x64", "Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7", "X11; Linux x86_64",
	}[rng.IntN(4)]
	return fmt.Sprintf("Mozilla/5.0 (%s) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36",
		platform, 120+rng.IntN(7))
}

// headlessAgent is headless Chrome's own user agent.
func headlessAgent(rng *rand.Rand) string {
	return fmt.Sprintf("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/%d.0.%d.%d Safari/537.36",
		118+rng.IntN(9), 5900+rng.IntN(700), rng.IntN(200))
}

// toolAgents are HTTP libraries' default user agents.
var toolAgents = []string{
	"python-requests/2.32.3", "python-requests/2.31.0", "Python/3.11 aiohttp/3.9.5", "python-httpx/0.27.0",
	"Go-http-client/2.0", "Go-http-client/1.1", "axios/1.7.2", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
	"curl/8.7.1", "Java/17.0.11", "Apache-HttpClient/4.5.14 (Java/17.0.11)",
}
