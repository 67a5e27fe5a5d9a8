package traffic

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// Scenario is a labelled bot behaviour. Its value is the Request.Label of
// the bot's requests.
type Scenario string

// The original bot scenarios, those of Scenarios. Each stands out on
// different window features (see pkg/features), so that an HBOS detector
// has something to find in each. Their requests have no Profile.
const (
	// Scraper fetches product pages in id order at a high rate: nearly
	// every request a new path, one user agent, no referer.
	Scraper Scenario = "scraper"
	// CredentialStuffing POSTs to a login path at a high rate and is
	// mostly refused: high non-GET and 4xx shares, one or two paths.
	CredentialStuffing Scenario = "credential-stuffing"
	// UARotation browses ordinary pages at a moderate rate but sends a
	// different user agent on most requests.
	UARotation Scenario = "ua-rotation"
	// LowAndSlow crawls the site one request every 30-60 s, each a path
	// it has not asked for, with a non-browser user agent and no referer:
	// few requests per window, so only its ratios give it away.
	LowAndSlow Scenario = "low-and-slow"
)

// The scenarios after public accounts of automated threats (OWASP's
// Automated Threats to Web Applications, OAT-nnn, and bot-management
// vendors' write-ups). Each bot draws its own rate, user agents, paths and
// timing, and its requests carry the variant of its behaviour as Profile.
// They adapt to the site's kind (Options.SiteKinds): its items, listings,
// forms and API resource.
const (
	// HeadlessBrowser is a scraper driving a real browser (Puppeteer,
	// Playwright; OAT-011): it walks listings and their items every 1.5 to
	// 8 s, loading each page's static files and API calls with the page
	// as referer, like a browser. Profile "headless-chrome" says
	// HeadlessChrome in its user agent; "stealth-chrome" hides it behind
	// a plain Chrome's. A fresh browser context per page loads every asset
	// every time (200s, never 304); others cache as browsers do.
	HeadlessBrowser Scenario = "headless-browser"
	// PriceMonitor is competitive price and stock intelligence (OAT-011):
	// every 5 minutes to an hour it sweeps the same 3 to 25 item pages, in
	// the same order, a few seconds apart, no static files. Profiles:
	// "tool" (an HTTP library's user agent), "browser-ua" (a browser's,
	// often with a search engine as referer), "json-api" (the site's
	// availability API). It picks a shop when sites have kinds.
	PriceMonitor Scenario = "price-monitor"
	// Scalper hoards inventory (OAT-021 Denial of Inventory, OAT-005
	// Scalping): it hammers 1 to 3 hot items every 0.3 to 3 s, adding
	// them to the cart (POSTs, refused with 409 once sold out) and
	// starting checkouts it never completes. Profiles "add-to-cart" and
	// "checkout-hold" (which starts a checkout every round). It picks a
	// shop when sites have kinds.
	Scalper Scenario = "scalper"
	// SpamPoster posts spam to forms (OAT-017): comments, reviews, forum
	// replies or the contact form, every 5 s to 1.5 min, mostly refused
	// (403 from a CAPTCHA or WAF, 422, 429). Some fetch the form first
	// and post it after a few seconds, others post straight away.
	// Profiles: "comment-spam", "review-spam", "forum-spam",
	// "contact-form".
	SpamPoster Scenario = "spam-poster"
	// VulnScanner probes for known weaknesses (OAT-014): a word list of
	// admin panels, leaked files (/.env, /.git/config), WordPress paths,
	// framework endpoints and injection payloads, in bursts tens of
	// milliseconds apart, answered 404 mostly, 403 where a WAF steps in.
	// It stops when its list is done. Profiles: "wordpress-probe",
	// "generic-probe", "nuclei", "sqli-probe"; user agents of the tools,
	// a fake browser's, or none at all.
	VulnScanner Scenario = "vuln-scanner"
	// Carding tests stolen cards (OAT-001) or guesses gift card numbers
	// (OAT-010): a payment POST every 3 to 40 s from the checkout page,
	// mostly declined (402) or refused. Profiles "card-testing",
	// "gift-card". It picks a shop when sites have kinds (or makes small
	// donations where there is none).
	Carding Scenario = "carding"
	// FakeSignup creates accounts (OAT-019): the signup form and its POST
	// every 10 s to 2 min, now and then the e-mail verification link;
	// some go straight to the API. Profiles "web-form", "api".
	FakeSignup Scenario = "fake-signup"
	// APIScraper harvests the site's JSON API (OAT-011): batches of 20 to
	// 100 calls 0.1 to 1.5 s apart, paging through a listing
	// ("paged-list"), walking ids, many of them gone ("id-walk"), or
	// POSTing GraphQL queries ("graphql"); rate limited (429) when fast.
	APIScraper Scenario = "api-scraper"
	// DistributedScraper is a scraping campaign over hundreds of
	// residential proxy addresses, each a few item and listing pages of
	// the site's catalogue (see Campaigns).
	DistributedScraper Scenario = "distributed-scraper"
	// DistributedStuffing is a credential stuffing campaign over hundreds
	// of residential proxy addresses, each a few login POSTs, mostly 401
	// (see Campaigns).
	DistributedStuffing Scenario = "distributed-stuffing"
)

// HumanLabel is the Request.Label of human visitors.
const HumanLabel = "human"

// Scenarios lists the four original scenarios, in the order New creates
// their bots (map order would make the sequence depend on the run).
// EveryScenario and the "n" of the Bots flag mean these.
func Scenarios() []Scenario {
	return []Scenario{Scraper, CredentialStuffing, UARotation, LowAndSlow}
}

// AllScenarios lists every scenario: the original four, the newer
// individual ones, then the coordinated ones, in the order New creates
// their bots.
func AllScenarios() []Scenario {
	return append(Scenarios(), HeadlessBrowser, PriceMonitor, Scalper, SpamPoster, VulnScanner,
		Carding, FakeSignup, APIScraper, DistributedScraper, DistributedStuffing)
}

// individualScenarios lists the scenarios that are not coordinated.
func individualScenarios() []Scenario {
	return slices.DeleteFunc(AllScenarios(), Scenario.Coordinated)
}

// Coordinated reports whether s is a campaign over many addresses, whose
// count in Config.Bots is of campaigns rather than of bots.
func (s Scenario) Coordinated() bool {
	return s == DistributedScraper || s == DistributedStuffing
}

// original reports whether s is one of the four original scenarios, whose
// requests must stay as they were.
func (s Scenario) original() bool {
	return s == Scraper || s == CredentialStuffing || s == UARotation || s == LowAndSlow
}

func (s Scenario) valid() bool { return slices.Contains(AllScenarios(), s) }

// interval is the scenario's mean time between requests; each gap is drawn
// from [interval/2, 3*interval/2) so that bots do not tick like clocks (and
// low-and-slow's gaps fall in 30-60 s).
func (s Scenario) interval() time.Duration {
	switch s {
	case Scraper:
		return 250 * time.Millisecond
	case CredentialStuffing:
		return 400 * time.Millisecond
	case UARotation:
		return 2 * time.Second
	default: // LowAndSlow
		return 40 * time.Second
	}
}

// bot is one bot visitor. Each has its own random source, so that bots
// never draw from the humans' one (human traffic is the same with or
// without bots) nor from each other's.
type bot struct {
	scenario Scenario
	id       int // creation order, the tie-break between bots due at once
	rng      *rand.Rand
	site     int
	ip       string
	uas      []string // the user agents it picks from; rotators make their own
	next     time.Time
	seq      int    // scraper: next product id; low-and-slow: next path index
	last     string // previous path, the referer a rotator sends
	// until is when it leaves: at its first request due then or later
	// (the span's end for Config.Bots, sooner for a lifetime).
	until time.Time
	// What its requests say beside the log line.
	label, profile, group string
	fields                bool  // set net on its requests (Options.LogFields)
	net                   netID // its network and TLS fingerprints
	// act plans the requests of the newer scenarios and of automation, a
	// burst at a time (nil for the original four): buf from i is the
	// burst in progress, at when the next one starts, lastAt the time of
	// the last request planned, which no later one precedes.
	act    actor
	buf    []Request
	i      int
	at     time.Time
	lastAt time.Time
}

// newBot builds bot id of scenario s on site, starting somewhere in the
// first half of [start, start+span) so that it runs alongside the humans for
// a good part of it.
func newBot(seed *rand.Rand, s Scenario, id, site int, start time.Time, span time.Duration) *bot {
	rng := rand.New(rand.NewPCG(seed.Uint64(), seed.Uint64()))
	b := &bot{scenario: s, id: id, rng: rng, site: site, ip: randomIP(rng)}
	if span > 1 {
		start = start.Add(time.Duration(rng.Int64N(int64(span / 2))))
	}
	b.next = start
	switch s {
	case Scraper:
		b.uas = []string{userAgents[rng.IntN(len(userAgents))]}
		b.seq = 1 + rng.IntN(50_000)
	case CredentialStuffing:
		// A small pool, so that the user agent count is not a giveaway.
		for range 3 {
			b.uas = append(b.uas, userAgents[rng.IntN(len(userAgents))])
		}
	case LowAndSlow:
		b.uas = []string{crawlerAgents[rng.IntN(len(crawlerAgents))]}
		b.seq = rng.IntN(1 << 20) // an offset into the site's paths
	}
	return b
}

// request is the bot's request due at b.next; it then schedules the next.
func (b *bot) request(s *site) Request {
	if b.act != nil {
		return b.fromBurst(s)
	}
	rng := b.rng
	r := Request{
		Time:     b.next,
		Site:     s.name,
		ClientIP: b.ip,
		Method:   "GET",
		Status:   200,
		Label:    string(b.scenario),
	}
	if len(b.uas) > 0 {
		r.UserAgent = b.uas[rng.IntN(len(b.uas))]
	}
	switch b.scenario {
	case Scraper:
		r.Path = s.itemRoute + strconv.Itoa(b.seq)
		b.seq++
		if rng.IntN(12) == 0 { // ids that do not exist
			r.Status = 404
		}
	case CredentialStuffing:
		r.Method = "POST"
		r.Path = "/login"
		if rng.IntN(10) == 0 {
			r.Path = "/api/login"
		}
		r.Referer = "https://" + s.name + "/login"
		switch p := rng.IntN(100); {
		case p < 3: // a stolen password that works
			r.Status = 200
		case p < 75:
			r.Status = 401
		case p < 93:
			r.Status = 403
		default:
			r.Status = 429
		}
	case UARotation:
		// Ordinary popular pages, browsed like a human, but most requests
		// claim a new browser build.
		r.Path = s.paths[rng.IntN(min(len(s.paths), 40))]
		if r.Path == "/search" {
			r.Query = "q=" + words[rng.IntN(len(words))]
		}
		r.UserAgent = b.last
		if r.UserAgent == "" || rng.IntN(10) != 0 {
			r.UserAgent = rotatedAgent(rng)
		}
		b.last = r.UserAgent
		if rng.IntN(2) == 0 {
			r.Referer = "https://" + s.name + "/"
		}
		if rng.IntN(50) == 0 {
			r.Status = 404
		}
	case LowAndSlow:
		// Walk the site's own vocabulary from a random point: a new path
		// each time until it has seen them all.
		r.Path = s.paths[b.seq%len(s.paths)]
		b.seq++
		if rng.IntN(30) == 0 {
			r.Status = 404
		}
	}
	iv := int64(b.scenario.interval())
	b.next = b.next.Add(time.Duration(iv/2 + rng.Int64N(iv)))
	if b.fields {
		b.net.apply(&r, false)
	}
	return r
}

// rotatedAgent makes a plausible browser user agent with random version
// numbers, so that a rotator rarely repeats one.
func rotatedAgent(rng *rand.Rand) string {
	switch rng.IntN(3) {
	case 0:
		return fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.%d.%d Safari/537.36",
			100+rng.IntN(30), 4000+rng.IntN(3000), rng.IntN(200))
	case 1:
		return fmt.Sprintf("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_%d) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/%d.%d.%d Safari/605.1.15",
			rng.IntN(8), 14+rng.IntN(4), rng.IntN(7), rng.IntN(10))
	default:
		platforms := [...]string{"X11; Linux x86_64", "Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 14.5"}
		v := 100 + rng.IntN(30)
		return fmt.Sprintf("Mozilla/5.0 (%s; rv:%d.0) Gecko/20100101 Firefox/%d.0.%d",
			platforms[rng.IntN(len(platforms))], v, v, rng.IntN(10))
	}
}

// crawlerAgents are what a low-and-slow crawler sends: tools and
// self-declared bots rather than browsers.
var crawlerAgents = []string{
	"python-requests/2.31.0",
	"Go-http-client/1.1",
	"curl/8.5.0",
	"Mozilla/5.0 (compatible; SiteAuditBot/1.4; +https://audit.example.net/bot)",
	"Scrapy/2.11.2 (+https://scrapy.org)",
}

// botQueue is a min-heap of bots by next request time, then id, so that
// equal times always come out in the same order.
type botQueue []*bot

func (q botQueue) Len() int { return len(q) }
func (q botQueue) Less(i, j int) bool {
	if !q[i].next.Equal(q[j].next) {
		return q[i].next.Before(q[j].next)
	}
	return q[i].id < q[j].id
}
func (q botQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *botQueue) Push(x any)   { *q = append(*q, x.(*bot)) }
func (q *botQueue) Pop() any {
	old := *q
	b := old[len(old)-1]
	*q = old[:len(old)-1]
	return b
}

// newBots creates the bots of Config.Bots, spread round-robin over the
// sites from a seed-dependent first site, then those of the options and
// the automation, each group from its own source. A bot whose first
// request would fall after the span (a zero Duration) never enters the
// queue.
func (g *Generator) newBots() botQueue {
	cfg := g.cfg
	seed := rand.New(rand.NewPCG(cfg.Seed, 0x626f7473626f7473)) // "botsbots"
	var q botQueue
	id, site := 0, seed.IntN(cfg.Sites)
	for _, s := range AllScenarios() {
		for range cfg.Bots[s] {
			if s.Coordinated() {
				rng := rand.New(rand.NewPCG(seed.Uint64(), seed.Uint64()))
				start := cfg.Start
				if cfg.Duration > 1 {
					start = start.Add(time.Duration(rng.Int64N(int64(cfg.Duration / 2))))
				}
				q = g.newCampaign(q, rng, s, &id, site, start, g.end)
			} else {
				b := newBot(seed, s, id, site, cfg.Start, cfg.Duration)
				b.until = g.end
				q = g.launchBot(q, b)
				id++
			}
			site = (site + 1) % cfg.Sites
		}
	}
	q = g.spreadBots(q, &id)
	q = g.campaigns(q, &id)
	q = g.automation(q, &id)
	q = g.surges(q, &id)
	heap.Init(&q)
	return q
}
