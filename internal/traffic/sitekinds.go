package traffic

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Site kinds (Options.SiteKinds). Without the option every site is a shop,
// as newSite builds it. With it, a site's kind follows its name
// (news.example.org is a news site, bank.example.com a web app), and a
// site of another kind than shop gets its own vocabulary: its paths, its
// page flow (which page kinds link to which), its static files and the
// JSON API calls of its pages. The page kinds of the session model keep
// their roles: pageProduct is a site's item (an article, a post, a topic),
// pageCategory a listing, pageCart and pageCheckout a form page and its
// flow, pageAddToCart and pagePlaceOrder the POSTs of its forms.
type siteKind uint8

const (
	kindShop  siteKind = iota
	kindNews           // sections and articles; subscriptions; comments
	kindBlog           // tags and posts; comments; a contact form
	kindForum          // boards and topics of many pages; replies and new topics
	kindDocs           // sections and pages; search-heavy
	kindApp            // a web app behind a login: dashboards, projects, many API calls
	numSiteKinds
)

var kindNames = [numSiteKinds]string{"shop", "news", "blog", "forum", "docs", "app"}

// nameKinds is the kind of each of siteNames, by what the name says.
var nameKinds = []siteKind{
	kindShop, kindNews, kindBlog, kindShop, kindShop, kindApp,
	kindForum, kindDocs, kindShop, kindForum, kindBlog, kindNews,
}

// shopAssets are the static files of a shop's pages.
var shopAssets = []string{"/static/style.css", "/static/app.js"}

// vocabularies of the other kinds.
var (
	newsSections = []string{"world", "politics", "business", "tech", "science", "sport", "culture", "opinion", "health", "travel", "climate", "local"}
	newsWords    = []string{"election", "market", "storm", "budget", "court", "vaccine", "strike", "summit", "rates", "wildfire", "transfer", "festival", "trial", "merger", "drought", "protest"}
	blogTags     = []string{"golang", "rust", "databases", "devops", "career", "design", "testing", "performance", "security", "linux", "kubernetes", "frontend"}
	forumBoards  = []string{"general", "help", "announcements", "off-topic", "showcase", "trading", "guides", "bugs", "feedback", "modding"}
	docsSections = []string{"getting-started", "guides", "reference", "api", "cli", "tutorials", "faq", "release-notes"}
	docsWords    = []string{"install", "config", "auth", "token", "webhook", "deploy", "error", "limit", "upgrade", "export", "import", "cli"}
	appAreas     = []string{"projects", "tasks", "reports", "team", "invoices", "integrations", "calendar", "files"}
	appWords     = []string{"invoice", "q3", "roadmap", "budget", "onboarding", "sprint", "client", "contract"}
)

// linksOf is the page flow of each kind: where a visitor goes next from
// each kind of page. Shops keep links; the others send nobody to the page
// kinds they do not have.
var linksOf = [numSiteKinds]*[numPageKinds][]choice{
	kindShop: &links,
	kindNews: {
		pageHome:       {{pageProduct, 50}, {pageCategory, 30}, {pageSearch, 8}, {pageHome, 5}, {pageCart, 4}, {pageLogin, 3}},
		pageCategory:   {{pageProduct, 70}, {pageCategory, 15}, {pageHome, 10}, {pageSearch, 5}},
		pageProduct:    {{pageProduct, 55}, {pageCategory, 15}, {pageHome, 10}, {pageSearch, 5}, {pageAddToCart, 5}, {pageCart, 5}, {pageLogin, 5}},
		pageSearch:     {{pageProduct, 70}, {pageSearch, 20}, {pageHome, 10}},
		pageCart:       {{pageCheckout, 40}, {pageHome, 40}, {pageProduct, 20}},
		pageCheckout:   {{pagePlaceOrder, 40}, {pageHome, 40}, {pageLogin, 20}},
		pageLogin:      {{pageHome, 60}, {pageProduct, 40}},
		pageAddToCart:  {{pageProduct, 70}, {pageHome, 30}},
		pagePlaceOrder: {{pageHome, 70}, {pageProduct, 30}},
	},
	kindBlog: {
		pageHome:       {{pageProduct, 65}, {pageCategory, 20}, {pageSearch, 5}, {pageCart, 5}, {pageHome, 5}},
		pageCategory:   {{pageProduct, 75}, {pageCategory, 10}, {pageHome, 15}},
		pageProduct:    {{pageProduct, 45}, {pageCategory, 20}, {pageHome, 20}, {pageAddToCart, 5}, {pageCart, 5}, {pageSearch, 5}},
		pageSearch:     {{pageProduct, 80}, {pageHome, 20}},
		pageCart:       {{pageCheckout, 30}, {pageHome, 50}, {pageProduct, 20}},
		pageCheckout:   {{pagePlaceOrder, 60}, {pageHome, 40}},
		pageLogin:      {{pageHome, 100}},
		pageAddToCart:  {{pageProduct, 60}, {pageHome, 40}},
		pagePlaceOrder: {{pageHome, 100}},
	},
	kindForum: {
		pageHome:       {{pageCategory, 45}, {pageProduct, 35}, {pageSearch, 8}, {pageLogin, 7}, {pageCart, 5}},
		pageCategory:   {{pageProduct, 75}, {pageCategory, 10}, {pageHome, 10}, {pageCheckout, 5}},
		pageProduct:    {{pageProduct, 45}, {pageCategory, 20}, {pageAddToCart, 12}, {pageHome, 10}, {pageSearch, 5}, {pageCart, 5}, {pageLogin, 3}},
		pageSearch:     {{pageProduct, 70}, {pageSearch, 20}, {pageHome, 10}},
		pageCart:       {{pageProduct, 60}, {pageHome, 40}},
		pageCheckout:   {{pagePlaceOrder, 70}, {pageCategory, 30}},
		pageLogin:      {{pageHome, 50}, {pageCategory, 25}, {pageProduct, 25}},
		pageAddToCart:  {{pageProduct, 70}, {pageCategory, 20}, {pageHome, 10}},
		pagePlaceOrder: {{pageProduct, 60}, {pageCategory, 40}},
	},
	kindDocs: {
		pageHome:       {{pageCategory, 45}, {pageProduct, 30}, {pageSearch, 25}},
		pageCategory:   {{pageProduct, 75}, {pageCategory, 10}, {pageSearch, 10}, {pageHome, 5}},
		pageProduct:    {{pageProduct, 60}, {pageCategory, 15}, {pageSearch, 15}, {pageAddToCart, 5}, {pageHome, 5}},
		pageSearch:     {{pageProduct, 70}, {pageSearch, 25}, {pageHome, 5}},
		pageCart:       {{pageHome, 100}},
		pageCheckout:   {{pageHome, 100}},
		pageLogin:      {{pageHome, 100}},
		pageAddToCart:  {{pageProduct, 80}, {pageSearch, 20}},
		pagePlaceOrder: {{pageHome, 100}},
	},
	kindApp: {
		pageHome:       {{pageCategory, 45}, {pageProduct, 30}, {pageSearch, 5}, {pageCart, 5}, {pageAddToCart, 10}, {pageLogin, 5}},
		pageCategory:   {{pageProduct, 55}, {pageCategory, 20}, {pageHome, 15}, {pageAddToCart, 10}},
		pageProduct:    {{pageProduct, 30}, {pageCategory, 25}, {pageAddToCart, 20}, {pageHome, 20}, {pageSearch, 5}},
		pageSearch:     {{pageProduct, 70}, {pageCategory, 30}},
		pageCart:       {{pageCheckout, 30}, {pageHome, 70}},
		pageCheckout:   {{pagePlaceOrder, 50}, {pageHome, 50}},
		pageLogin:      {{pageHome, 100}},
		pageAddToCart:  {{pageProduct, 60}, {pageCategory, 20}, {pageHome, 20}},
		pagePlaceOrder: {{pageHome, 100}},
	},
}

// formPaths are the paths of each kind's form pages: pageCart, then
// pageCheckout (a GET each).
var formPaths = [numSiteKinds][2]string{
	kindShop:  {"/cart", "/checkout"},
	kindNews:  {"/subscribe", "/subscribe/checkout"},
	kindBlog:  {"/about", "/contact"},
	kindForum: {"/notifications", "/new-topic"},
	kindDocs:  {"/changelog", "/support"},
	kindApp:   {"/app/settings", "/app/billing"},
}

// initSiteKinds gives each site the kind its name says and, for kinds
// other than shop, that kind's vocabulary. Each site draws from its own
// source, so that the visitor population stays as it was.
func (g *Generator) initSiteKinds() {
	for i := range g.sites {
		s := &g.sites[i]
		s.kind = nameKinds[i%len(nameKinds)]
		s.rich = true
		rng := rand.New(rand.NewPCG(g.cfg.Seed^uint64(i)<<32, 0x736974656b696e64)) // "sitekind"
		s.reshape(rng, g.rng)
	}
}

// reshape builds the vocabulary of s's kind from rng. Its popularity laws
// draw from people, the source the session model plans with.
func (s *site) reshape(rng, people *rand.Rand) {
	hash := strconv.FormatUint(rng.Uint64()>>36, 16) // the build of its static files
	s.pollEvery = []time.Duration{15 * time.Second, 30 * time.Second, 30 * time.Second, time.Minute}[rng.IntN(4)]
	switch s.kind {
	case kindShop:
		s.resource, s.poll = "products", "/api/v2/cart/count"
		s.feeds = []string{"/feed.xml"}
		return // the paths newSite drew
	case kindNews:
		s.resource, s.itemRoute, s.poll = "articles", "/article/", "/api/v2/breaking"
		s.feeds = []string{"/rss", "/feed.xml", "/" + newsSections[0] + "/rss"}
		s.words = newsWords
		s.assets = []string{"/assets/main." + hash + ".css", "/assets/main." + hash + ".js", "/assets/vendor." + hash + ".js"}
		s.categories = pickWords(rng, newsSections, 6, "/", "")
		s.products = items(rng, 300+rng.IntN(3000), func(id int) string {
			return "/" + newsSections[rng.IntN(len(newsSections))] + "/" + slug(rng, newsWords, 3) + "-" + strconv.Itoa(id)
		})
		s.category = rand.NewZipf(people, 1.2, 1, uint64(len(s.categories)-1))
		s.product = rand.NewZipf(people, 1.2, 2, uint64(len(s.products)-1)) // a few stories take most readers
	case kindBlog:
		s.resource, s.itemRoute, s.poll = "posts", "/p/", "/api/v2/posts/latest"
		s.feeds = []string{"/feed.xml", "/feed/", "/atom.xml"}
		s.words = blogTags
		s.assets = []string{"/assets/site." + hash + ".css", "/assets/site." + hash + ".js"}
		s.categories = pickWords(rng, blogTags, 4, "/tag/", "")
		vocab := append(append([]string(nil), blogTags...), newsWords...)
		s.products = items(rng, 30+rng.IntN(400), func(int) string { return "/posts/" + slug(rng, vocab, 2+rng.IntN(4)) })
		s.category = rand.NewZipf(people, 1.3, 1, uint64(len(s.categories)-1))
		s.product = rand.NewZipf(people, 1.1, 2, uint64(len(s.products)-1))
	case kindForum:
		s.resource, s.itemRoute, s.poll = "topics", "/t/", "/api/v2/notifications/unread"
		s.feeds = []string{"/latest.rss", "/top.rss"}
		s.words = append(append([]string(nil), forumBoards...), words...)
		s.assets = []string{"/assets/forum." + hash + ".css", "/assets/forum." + hash + ".js", "/assets/emoji." + hash + ".js"}
		s.categories = pickWords(rng, forumBoards, 5, "/f/", "")
		s.products = items(rng, 500+rng.IntN(5000), func(id int) string { return "/t/" + slug(rng, s.words, 3) + "/" + strconv.Itoa(id) })
		s.category = rand.NewZipf(people, 1.2, 1, uint64(len(s.categories)-1))
		s.product = rand.NewZipf(people, 1.05, 5, uint64(len(s.products)-1))
	case kindDocs:
		s.resource, s.itemRoute, s.poll = "pages", "/docs/page/", "/api/v2/status"
		s.feeds = []string{"/changelog.xml"}
		s.words = docsWords
		s.assets = []string{"/_next/static/css/" + hash + ".css", "/_next/static/chunks/main-" + hash + ".js", "/_next/static/chunks/pages/docs-" + hash + ".js"}
		s.categories = pickWords(rng, docsSections, 5, "/docs/", "/")
		s.products = items(rng, 50+rng.IntN(600), func(int) string {
			return "/docs/" + docsSections[rng.IntN(len(docsSections))] + "/" + slug(rng, docsWords, 1+rng.IntN(2))
		})
		s.category = rand.NewZipf(people, 1.2, 1, uint64(len(s.categories)-1))
		s.product = rand.NewZipf(people, 1.1, 3, uint64(len(s.products)-1))
	case kindApp:
		s.resource, s.itemRoute, s.poll = "projects", "/app/projects/", "/api/v2/notifications/unread"
		s.feeds = []string{"/status/feed.xml"}
		s.words = appWords
		s.assets = []string{"/static/js/runtime." + hash + ".js", "/static/js/main." + hash + ".js", "/static/css/main." + hash + ".css"}
		s.categories = pickWords(rng, appAreas, 5, "/app/", "")
		s.products = items(rng, 20+rng.IntN(300), func(id int) string { return "/app/projects/" + strconv.Itoa(id) })
		s.category = rand.NewZipf(people, 1.1, 1, uint64(len(s.categories)-1))
		s.product = rand.NewZipf(people, 1.2, 1, uint64(len(s.products)-1))
	}
	s.paths = append([]string{"/"}, s.assets...)
	s.paths = append(s.paths, "/search", "/favicon.ico", "/login", formPaths[s.kind][0], formPaths[s.kind][1])
	s.paths = append(s.paths, s.categories...)
	s.paths = append(s.paths, s.products...)
}

// pickWords returns at least min of list (in a random order, all when
// there are fewer), each as prefix+word+suffix.
func pickWords(rng *rand.Rand, list []string, least int, prefix, suffix string) []string {
	n := min(len(list), least+rng.IntN(len(list)-least+1))
	var out []string
	for _, i := range rng.Perm(len(list))[:n] {
		out = append(out, prefix+list[i]+suffix)
	}
	return out
}

// items makes n item paths with ids from 1000 up, skipping some (deleted).
func items(rng *rand.Rand, n int, path func(id int) string) []string {
	out := make([]string, 0, n)
	id := 1000 + rng.IntN(9000)
	for range n {
		out = append(out, path(id))
		id += 1 + rng.IntN(3)
	}
	return out
}

// slug joins n words of list with dashes.
func slug(rng *rand.Rand, list []string, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(list[rng.IntN(len(list))])
	}
	return b.String()
}

// setBasics sets what every site has for the options, without drawing:
// its app's name and polled endpoint, and its feed.
func (s *site) setBasics() {
	name := s.name[:strings.IndexByte(s.name, '.')]
	if strings.HasPrefix(s.name, "site") { // site12.shop.example.com: Shop
		rest := s.name[len(name)+1:]
		name = rest[:strings.IndexByte(rest, '.')]
	}
	s.app = strings.ToUpper(name[:1]) + name[1:] + "App"
	s.poll, s.pollEvery, s.feeds = "/api/v2/cart/count", 30*time.Second, []string{"/feed.xml"}
}

// deadItem is the path of an item that is gone: a 404. For a shop it
// draws as the original model did.
func (s *site) deadItem(rng *rand.Rand) string {
	if s.kind == kindShop {
		return "/products/" + strconv.Itoa(100_000+rng.IntN(900_000))
	}
	return s.itemRoute + strconv.Itoa(100_000+rng.IntN(900_000))
}

// itemID is the last segment of an item path: its id or slug.
func itemID(path string) string {
	return path[strings.LastIndexByte(path, '/')+1:]
}

// url is the https URL of path and query on s.
func (s *site) url(path, query string) string {
	if query == "" {
		return "https://" + s.name + path
	}
	return "https://" + s.name + path + "?" + query
}

// popular draws an index of a list of n in popularity order, skewed toward
// its head, from a bot's own source: bots must not draw from the site's
// Zipf laws, which draw from the people's source.
func popular(rng *rand.Rand, n int) int {
	u := rng.Float64()
	return min(n-1, int(float64(n)*u*u*u))
}

// formPost is the path a form of the current page posts to: pageAddToCart
// (adding to the cart, a comment, a reply) or pagePlaceOrder (an order, a
// subscription, a new topic).
func (p *planner) formPost(kind pageKind) string {
	k := p.s.kind
	if kind == pagePlaceOrder {
		return formPaths[k][1]
	}
	switch k {
	case kindNews, kindBlog:
		if p.kind == pageProduct {
			return p.path + "/comments"
		}
		return "/comments"
	case kindForum:
		if p.kind == pageProduct {
			return p.path + "/reply"
		}
		return "/new-topic"
	case kindDocs:
		return "/feedback"
	case kindApp:
		return "/app/tasks"
	}
	return formPaths[k][0]
}

// xhr are the JSON API calls of a page of a site with Options.SiteKinds,
// made by its script once it has loaded, with the page as referer: reviews
// and recommendations on a shop, comments and related stories on news,
// the many calls of a web app's screens.
func (p *planner) xhr(kind pageKind) {
	rng := p.rng
	call := func(chance int, path, query string) {
		if rng.IntN(100) < chance {
			p.after(40, 500)
			p.request("GET", path, query, p.url, 200)
		}
	}
	id := itemID(p.path)
	switch p.s.kind {
	case kindShop:
		switch kind {
		case pageProduct:
			call(50, "/api/products/"+id+"/reviews", "page=1")
			call(40, "/api/recommendations", "product="+id)
		case pageHome:
			call(50, "/api/recommendations", "")
		case pageCategory:
			call(30, "/api/products", "category="+itemID(p.path)+"&page=1")
		}
	case kindNews:
		switch kind {
		case pageProduct:
			call(40, "/api/comments", "article="+id)
			call(30, "/api/related", "article="+id)
		case pageHome:
			call(60, "/api/headlines", "")
		}
		call(20, "/api/paywall/status", "")
	case kindBlog:
		if kind == pageProduct {
			call(30, "/api/likes", "post="+id)
		}
	case kindForum:
		switch kind {
		case pageProduct:
			call(50, "/api/topics/"+id+"/posts", "page=1")
			call(25, "/api/presence", "topic="+id)
		case pageHome, pageCategory:
			call(40, "/api/notifications/unread", "")
		}
	case kindDocs:
		if kind == pageProduct {
			call(15, "/api/feedback/summary", "page="+id)
		}
	case kindApp:
		if p.pages == 1 {
			call(100, "/api/v1/me", "")
			call(90, "/api/v1/features", "")
		}
		switch kind {
		case pageProduct:
			call(100, "/api/v1/projects/"+id, "")
			call(80, "/api/v1/projects/"+id+"/tasks", "status=open")
			call(50, "/api/v1/projects/"+id+"/activity", "limit=20")
		case pageCategory:
			call(100, "/api/v1/"+itemID(p.path), "page=1&per_page=25")
		case pageHome:
			call(100, "/api/v1/dashboard", "")
			call(70, "/api/v1/projects", "recent=true")
		}
		call(60, "/api/v1/notifications/unread", "")
	}
}
