package traffic

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// The automation of Options.Automation: legitimate, labelled HumanLabel,
// with the Profile of its kind. Each agent is a bot of the queue with an
// actor, from the automation's own source.

// automation creates the agents of Options.Automation.
func (g *Generator) automation(q botQueue, id *int) botQueue {
	a := g.opts.Automation
	if a == (Automation{}) || g.cfg.Duration <= 1 {
		return q
	}
	rng := rand.New(rand.NewPCG(g.cfg.Seed, 0x6175746f6d617465)) // "automate"
	count := func(mean float64) int {
		n := int(mean)
		if rng.Float64() < mean-float64(n) {
			n++
		}
		return n
	}
	agent := func(site int, profile string) *bot {
		b := &bot{id: *id, rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), site: site, until: g.end,
			label: HumanLabel, profile: profile}
		*id++
		return b
	}
	for i := range g.sites {
		s := &g.sites[i]
		for range count(a.UptimeMonitors) {
			q = g.uptimeMonitor(q, agent, i)
		}
		feeds := a.FeedReaders
		switch s.kind {
		case kindNews, kindBlog:
			feeds *= 3
		case kindShop, kindApp:
			feeds /= 3
		}
		for range count(feeds) {
			b := agent(i, ProfileFeedReader)
			f := newFeedReader(b, s)
			b.act, b.at = f, g.cfg.Start.Add(between(b.rng, 0, f.every))
			g.placeAgent(b, f.kind, f.fam, f.net)
			q = g.launch(q, b)
		}
		for range count(a.APIClients) {
			b := agent(i, ProfileAPIClient)
			c := newAPIClient(b)
			b.act, b.at = c, g.cfg.Start.Add(between(b.rng, 0, c.every))
			g.placeAgent(b, asHosting, tlsOf(c.ua, tlsJava), nil)
			q = g.launch(q, b)
		}
		for range count(a.Crawlers) {
			b := agent(i, ProfileCrawler)
			c := newCrawler(b)
			b.act, b.at = c, g.cfg.Start.Add(between(b.rng, 0, c.pace))
			g.placeAgent(b, asHosting, c.who.fam, c.who.net)
			q = g.launch(q, b)
		}
		if a.LinkPreviews > 0 {
			b := agent(i, ProfileLinkPreview)
			l := &linkPreview{gap: time.Duration(float64(time.Hour) / a.LinkPreviews)}
			b.act, b.at = l, g.cfg.Start.Add(time.Duration(b.rng.ExpFloat64()*float64(l.gap)))
			g.placeAgent(b, asHosting, tlsGo, nil) // each fetch says its own below
			q = g.launch(q, b)
		}
	}
	// App pollers: sites by size, as the visitors' are.
	n := int(math.Round(a.AppPollers * float64(g.cfg.Visitors)))
	siteOf := rand.NewZipf(rng, 1.2, 2, uint64(g.cfg.Sites-1))
	for range n {
		site := int(siteOf.Uint64())
		b := agent(site, ProfileAppPoller)
		s := &g.sites[site]
		p := newAppPoller(b, s)
		b.act = p
		b.at = g.cfg.Start.Add(time.Duration(b.rng.Int64N(int64(g.cfg.Duration))))
		if b.until = b.at.Add(logUniform(b.rng.Float64(), 2*time.Minute, time.Hour)); b.until.After(g.end) {
			b.until = g.end
		}
		kind := asResidential // on the home Wi-Fi
		if b.rng.IntN(100) < 60 {
			kind = asMobile
		}
		g.placeAgent(b, kind, tlsOf(p.ua, tlsOkHTTP), nil)
		q = g.launch(q, b)
	}
	return q
}

// placeAgent gives an agent an address on a network of kind (or on net,
// when given) and its fingerprint, of family fam. People's agents are in
// the site's country mostly; services' where their network is.
func (g *Generator) placeAgent(b *bot, kind asKind, fam int, net *autSys) {
	rng := b.rng
	if net == nil {
		country := g.sites[b.site].country
		if kind == asHosting || rng.IntN(100) >= 75 {
			country = foreignCountry(rng)
		}
		net = pickNet(rng, country, kind)
	}
	ip, id := placeOn(rng, net, fam)
	b.ip = ip
	if g.opts.LogFields {
		b.fields, b.net = true, id
	}
}

// uptimeMonitor queues one monitor: one agent per location it checks
// from, all with its user agent, path and interval, at their own phase.
func (g *Generator) uptimeMonitor(q botQueue, agent func(int, string) *bot, site int) botQueue {
	first := agent(site, ProfileUptimeMonitor)
	rng := first.rng
	who := monitorAgents[rng.IntN(len(monitorAgents))]
	every := []time.Duration{30 * time.Second, time.Minute, time.Minute, 2 * time.Minute, 5 * time.Minute}[rng.IntN(5)]
	method := "GET"
	if rng.IntN(10) < 3 {
		method = "HEAD"
	}
	path := [...]string{"/", "/", "/", "/health", "/health", "/healthz", "/status", "/api/health"}[rng.IntN(8)]
	locations := 1
	if rng.IntN(10) < 4 {
		locations = 2 + rng.IntN(2)
	}
	for l := range locations {
		b := first
		if l > 0 {
			b = agent(site, ProfileUptimeMonitor)
		}
		b.act = &uptime{every: every, method: method, path: path, ua: who.ua}
		b.uas = []string{who.ua}
		b.at = g.cfg.Start.Add(between(b.rng, 0, every))
		g.placeAgent(b, asHosting, who.fam, nil)
		q = g.launch(q, b)
	}
	return q
}

// uptime is an uptime monitor's check from one location.
type uptime struct {
	every        time.Duration
	method, path string
	ua           string
}

func (u *uptime) plan(b *bot, s *site) {
	b.add(s, b.at, u.method, u.path, "", u.ua, "", 200)
	b.at = b.at.Add(jitter(b.rng, u.every, 0.005)) // a scheduler's drift
}

// monitorAgents are uptime services and the TLS stacks of their probes.
var monitorAgents = []struct {
	ua  string
	fam int
}{
	{"Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", tlsNode},
	{"Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", tlsJava},
	{"Mozilla/5.0 (compatible; StatusCake)", tlsGo},
	{"Better Uptime Bot Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/96.0.4664.110 Safari/537.36", tlsGo},
	{"Site24x7", tlsJava},
	{"Datadog/Synthetics", tlsGo},
	{"Checkly/1.0 (https://www.checklyhq.com)", tlsNode},
}

// feedReader fetches a feed of the site every so often, conditionally:
// mostly 304.
type feedReader struct {
	every    time.Duration
	path, ua string
	kind     asKind  // hosted services from clouds, desktop readers from homes
	fam      int     // its TLS stack
	net      *autSys // nil: by kind
}

func newFeedReader(b *bot, s *site) *feedReader {
	rng := b.rng
	f := &feedReader{path: s.feeds[rng.IntN(len(s.feeds))], kind: asHosting}
	subscribers := strconv.Itoa(1 + int(rng.ExpFloat64()*40))
	switch x := rng.IntN(100); {
	case x < 35:
		f.ua, f.fam = "Feedly/1.0 (+http://www.feedly.com/fetcher.html; "+subscribers+" subscribers; )", tlsJava
	case x < 50:
		f.ua, f.fam = "Inoreader/1.0 (+http://www.inoreader.com/feed-fetcher; "+subscribers+" subscribers; )", tlsGo
	case x < 60:
		f.ua, f.fam = "Feedbin feed-id:"+strconv.Itoa(100_000+rng.IntN(900_000))+" - "+subscribers+" subscribers", tlsRuby
	case x < 68:
		f.ua, f.fam = "NewsBlur Feed Fetcher - "+subscribers+" subscribers - https://www.newsblur.com/site/"+strconv.Itoa(rng.IntN(9_000_000))+"/", tlsPython
	case x < 75:
		f.ua, f.fam = "FreshRSS/1.24.1 (Linux; https://freshrss.org)", tlsCurl
	case x < 88:
		f.ua, f.fam, f.kind = "NetNewsWire (RSS Reader; https://netnewswire.com/)", tlsSafari, asResidential
	default:
		f.ua, f.fam, f.kind = "Reeder/5050.1 CFNetwork/1494.0.7 Darwin/23.4.0", tlsSafari, asResidential
	}
	if f.kind == asHosting {
		f.every = []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour}[rng.IntN(3)]
	} else {
		f.every = []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour}[rng.IntN(3)]
	}
	b.uas = []string{f.ua}
	return f
}

func (f *feedReader) plan(b *bot, s *site) {
	status := 304
	if b.rng.IntN(10) < 3 { // new entries since the last fetch
		status = 200
	}
	b.add(s, b.at, "GET", f.path, "", f.ua, "", status)
	b.at = b.at.Add(jitter(b.rng, f.every, 0.05))
}

// appPoller is a native app left open: it polls one endpoint at its
// interval and renews its token now and then.
type appPoller struct {
	every   time.Duration
	path    string
	ua      string
	ticks   int
	refresh int // ticks between token renewals
}

func newAppPoller(b *bot, s *site) *appPoller {
	rng := b.rng
	p := &appPoller{every: s.pollEvery, path: s.poll, ua: appAgent(rng, s.app), refresh: 20 + rng.IntN(60)}
	if rng.IntN(5) == 0 { // an older version of the app
		p.every = []time.Duration{15 * time.Second, 30 * time.Second, time.Minute}[rng.IntN(3)]
	}
	b.uas = []string{p.ua}
	return p
}

func (p *appPoller) plan(b *bot, s *site) {
	rng := b.rng
	status := 304
	if rng.IntN(10) < 3 {
		status = 200
	}
	b.add(s, b.at, "GET", p.path, "", p.ua, "", status)
	p.ticks++
	if p.ticks%p.refresh == 0 {
		b.add(s, b.at.Add(ms(200+rng.IntN(400))), "POST", "/api/v2/auth/refresh", "", p.ua, "", 200)
	}
	b.at = b.at.Add(jitter(rng, p.every, 0.015))
}

// apiClient is a partner integration: a sync job at its interval, paging
// through what changed since the last one.
type apiClient struct {
	every time.Duration
	res   string
	ua    string
	last  time.Time
}

func newAPIClient(b *bot) *apiClient {
	rng := b.rng
	c := &apiClient{
		every: []time.Duration{5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour}[rng.IntN(5)],
		res:   [...]string{"orders", "products", "customers", "inventory", "events"}[rng.IntN(5)],
		ua: [...]string{
			"python-requests/2.32.3", "PartnerSync/2.3 (+https://partner.example.net)", "Zapier", "okhttp/4.12.0",
			"Java/17.0.11", "Go-http-client/2.0", "axios/1.7.2", "ERPConnector/5.1 Apache-HttpClient/4.5.14 (Java/11.0.22)",
		}[rng.IntN(8)],
	}
	b.uas = []string{c.ua}
	return c
}

func (c *apiClient) plan(b *bot, s *site) {
	rng := b.rng
	t := b.at
	since := c.last
	if since.IsZero() {
		since = t.Add(-c.every)
	}
	for page := range 1 + rng.IntN(5) {
		status := 200
		if rng.IntN(50) == 0 {
			status = 429
		}
		b.add(s, t, "GET", "/api/v1/"+c.res, "updated_since="+strconv.FormatInt(since.Unix(), 10)+"&page="+strconv.Itoa(page+1), c.ua, "", status)
		t = t.Add(ms(100 + rng.IntN(800)))
	}
	if rng.IntN(10) == 0 { // writes back
		b.add(s, t, "POST", "/api/v1/"+c.res+"/batch", "", c.ua, "", 200)
	}
	c.last = b.at
	b.at = b.at.Add(jitter(rng, c.every, 0.02))
}

// crawlerID is a search engine's crawler: its user agent, network and
// TLS stack.
type crawlerID struct {
	ua     string
	net    *autSys
	fam    int
	weight int
}

var crawlers = []crawlerID{
	{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", &netGoogle, tlsGooglebot, 35},
	{"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.126 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", &netGoogle, tlsGooglebot, 30},
	{"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", &netBing, tlsBingbot, 15},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)", &netApple, tlsSafari, 8},
	{"Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", &netYandex, tlsGo, 6},
	{"DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", &netBing, tlsGo, 6},
}

// crawler is a search engine crawler on one site: robots.txt first, the
// sitemap, then pages, popular ones more often, at its crawl rate.
type crawler struct {
	who  crawlerID
	pace time.Duration // median between fetches
	n    int
}

func newCrawler(b *bot) *crawler {
	rng := b.rng
	total := 0
	for _, c := range crawlers {
		total += c.weight
	}
	x := rng.IntN(total)
	c := &crawler{pace: between(rng, 5*time.Second, 2*time.Minute)}
	for _, w := range crawlers {
		if x < w.weight {
			c.who = w
			break
		}
		x -= w.weight
	}
	b.uas = []string{c.who.ua}
	return c
}

func (c *crawler) plan(b *bot, s *site) {
	rng := b.rng
	path, status := "", 200
	switch {
	case c.n%150 == 0:
		path = "/robots.txt"
	case c.n == 1:
		path = "/sitemap.xml"
	case rng.IntN(10) == 0: // rendering: the page's static files
		path = s.assets[rng.IntN(len(s.assets))]
		if rng.IntN(2) == 0 {
			status = 304
		}
	default:
		path = s.paths[popular(rng, len(s.paths))]
		if rng.IntN(3) == 0 {
			path = s.products[rng.IntN(len(s.products))]
		}
		switch x := rng.IntN(100); {
		case x < 5:
			path, status = s.deadItem(rng), 404
		case x < 8:
			status = 301
		case x < 18:
			status = 304
		}
	}
	c.n++
	b.add(s, b.at, "GET", path, "", c.who.ua, "", status)
	b.at = b.at.Add(lognorm(rng, c.pace, 0.6))
}

// linkPreview is the preview bots of the chats and networks a site's
// links are shared in: each share brings 1 to 4 of them to the page once.
type linkPreview struct {
	gap time.Duration // mean between shares
}

// previewer is a link preview bot: its user agent, its operator's network
// (nil: a cloud's, or the sender's phone for WhatsApp) and TLS stack.
type previewer struct {
	ua  string
	net *autSys
	fam int
}

// previewers are the link preview bots.
var previewers = []previewer{
	{"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", &netFacebook, tlsGo},
	{"Twitterbot/1.0", &netTwitter, tlsJava},
	{"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", nil, tlsJava},
	{"Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", nil, tlsPython},
	{"LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)", &netLinkedIn, tlsJava},
	{"TelegramBot (like TwitterBot)", &netTelegram, tlsGo},
	{"WhatsApp/2.24.12.78 A", nil, tlsOkHTTP},
}

func (l *linkPreview) plan(b *bot, s *site) {
	rng := b.rng
	t := b.at
	page := s.products[popular(rng, len(s.products))]
	for _, k := range rng.Perm(len(previewers))[:1+rng.IntN(4)] {
		p := previewers[k]
		t = t.Add(between(rng, 200*time.Millisecond, 20*time.Second))
		r := b.add(s, t, "GET", page, "", p.ua, "", 200)
		net, kind := p.net, asHosting
		if net == nil && p.fam == tlsOkHTTP {
			kind = asMobile
		}
		if net == nil {
			net = pickNet(rng, s.country, kind)
		}
		ip, id := placeOn(rng, net, p.fam)
		r.ClientIP = ip
		if b.fields {
			id.apply(r, false)
		}
	}
	b.at = b.at.Add(time.Duration(rng.ExpFloat64() * float64(l.gap)))
	if b.at.Before(t) {
		b.at = t
	}
}
