// Package traffic generates deterministic synthetic HTTP request logs: a
// population of visitors spread over a few sites, with Zipf-skewed activity
// (a few heavy visitors, a long tail), per-site path vocabularies, realistic
// browser user agents, referers, methods and status codes. The same Config
// always yields the same sequence, so benchmarks and replays can compare
// designs on identical traffic.
//
// Humans browse in sessions. Activity picks the visitor who starts the
// next session; a visitor keeps its site, IP address and user agent (now
// and then a session comes from a second device behind the same address).
// A session lands on a page from a search engine, directly (no referer),
// from another site or social network, or from a page of the site seen
// earlier, then follows a geometric number of links (mean 5) after
// lognormal think times (median 15 s): categories and products by
// popularity, searches and their result pages, the cart (adding to it is a
// POST), checkout, and rarely a login (a POST, mistyped now and then: 401).
// Each page loads its assets within a second or two with the page as
// referer, skipped or revalidated (304) once the browser has them cached.
// Some product links are dead (404), typed http:// URLs redirect (301).
// Session starts follow a diurnal curve in each site's local time, peaking
// at 15:00 four times above 03:00, and their rate is steered so that
// exactly Config.Events human requests fill [Start, Start+Duration).
// Sessions are planned as they start and only those in progress are kept,
// so a Generator's memory does not grow with Events. See humans.go.
//
// Config.Bots adds labelled bot visitors (see Scenario) on top of the
// humans, interleaved in time order. Bots draw from their own random
// sources, so the human requests of a Config are the same with or without
// bots.
//
// # Options
//
// A detector tuned on that model alone sees one kind of site, one kind of
// person and four bots. Config.Options (see Options) turns on, each on its
// own, a richer and more varied traffic, after public accounts of web
// traffic (OWASP's Automated Threats to Web Applications, bot-management
// vendors' reports, CDN log studies). Realistic turns them all on; the
// zero Options is the traffic above, byte for byte.
//
//   - People: offices and mobile carriers with several people behind one
//     address at once, privacy browsers (no Referer ever), warm caches
//     (few static files), power users, one-page readers, the site's native
//     app (JSON API calls, no Referer, no static files).
//   - SiteKinds: news, blog, forum, docs and web app sites beside the
//     shops, each with its own paths, page flow and static files, whose
//     pages call the site's JSON API with the page as referer.
//   - Automation: what sites want automated: app pollers at a steady
//     interval, feed readers, uptime monitors, partner API clients, search
//     engine crawlers, link previews.
//   - Spread: bots as history has them, each for a bounded lifetime
//     anywhere in the span, as counts or as a share of the visitors.
//   - Campaigns: coordinated scraping and credential stuffing over
//     hundreds of residential proxy addresses, a few requests each.
//   - LogFields: ClientASN, ClientCountry, JA3Hash and JA4, plausible for
//     each visitor: its country's residential and mobile networks, clouds
//     for most scrapers and scanners, one browser family's few
//     fingerprints shared by its users, tools' own.
//
// Beside the four original scenarios (Scenarios), eight newer ones and two
// coordinated ones (AllScenarios) can be asked for in Config.Bots; the
// individual ones also in Options.Spread.
//
// # Labels
//
// Request.Label is HumanLabel for every legitimate visitor, people and the
// automation a site wants alike, and the Scenario for a bot.
// Request.Profile says more when an option knows it: the kind of person or
// automation (Profiles; ProfileOffice, ProfileAppPoller, ...) or the
// variant of a bot's behaviour (e.g. "nuclei" for a vulnerability
// scanner); it is "" without options and for the original scenarios.
// Request.Group names the campaign of a coordinated bot ("campaign-1").
// LabelledJSON writes them as "label", "profile" and "group" (the last two
// when not empty); LogpushJSON, the log line, has none of them.
//
// Every part draws from seeded sources of its own: the same Config yields
// the same sequence, and no bot option changes the requests of the
// legitimate visitors. Agents (the newer bots, campaigns, automation) keep
// only the burst of requests in progress, so memory grows with the number
// of visitors and agents, not with the requests.
package traffic

import (
	"bufio"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Request is one HTTP request as a log line would record it.
type Request struct {
	Time      time.Time
	Site      string // host name, lower case
	ClientIP  string
	Method    string
	Path      string
	Query     string // raw query string, without '?'; "" for none
	UserAgent string
	Referer   string // "" for none
	Status    int
	// The fields of Options.LogFields, zero without it: where the client
	// is on the network and how its TLS stack greets the edge.
	ASN     uint32 // ClientASN: the autonomous system of ClientIP
	Country string // ClientCountry: ISO 3166-1 alpha-2, lower case as Logpush writes it
	JA3     string // JA3Hash: the TLS client fingerprint, 32 hex digits; "" over plain HTTP
	JA4     string // JA4: the newer fingerprint; "" over plain HTTP
	// What the generator knows of the client, not part of the log line.
	Label string // HumanLabel (people and the automation a site wants) or the bot's Scenario
	// Profile is the kind of legitimate visitor (ProfileOffice, ...) or the
	// variant of the bot's behaviour (e.g. "nuclei"); "" when the options
	// that name them are off, and for the four original scenarios.
	Profile string
	Group   string // the coordinated campaign of a bot, e.g. "campaign-1"; "" for none
}

// Config says what traffic to generate.
type Config struct {
	Sites    int           // number of sites, at least 1
	Visitors int           // visitor population, at least 1; not all need appear
	Events   int           // number of requests of people's browsing sessions; bots and Options.Automation come on top
	Start    time.Time     // start of the span: no request is earlier
	Duration time.Duration // human requests fill [Start, Start+Duration) at a diurnal rate; 0: all at Start
	Seed     uint64        // same seed and config: same sequence
	// Skew (> 1) and SkewOffset (>= 1) shape visitor activity, a Zipf law:
	// the visitor of activity rank k (from 0) starts browsing sessions in
	// proportion to (SkewOffset+k)^-Skew, so that heavy visitors have
	// several at once. The offset flattens the head, so that the heaviest
	// human is a busy NAT rather than a crawler. 1.1 and 10 make the top
	// 1% of 100k visitors send about 65% of the requests, and the heaviest
	// one about 2%.
	Skew, SkewOffset float64
	// Bots is the number of bot visitors of each scenario; absent or zero
	// means none. Their requests come on top of Events, at each
	// scenario's own rate, from a start in the first half of the span to
	// its end (a vulnerability scanner stops when its word list is done).
	// For a coordinated scenario (see Scenario.Coordinated) the number is
	// of campaigns, shaped by Options.Campaigns, each from a start in the
	// first half of the span to its end.
	Bots Bots
	// Options turns on the richer traffic models (see Options and
	// Realistic); its zero value is the traffic above, byte for byte.
	Options Options
}

// DefaultConfig is 100k visitors over 20 sites, 1M requests over 20 minutes.
func DefaultConfig() Config {
	return Config{
		Sites:      20,
		Visitors:   100_000,
		Events:     1_000_000,
		Start:      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Duration:   20 * time.Minute,
		Seed:       1,
		Skew:       1.1,
		SkewOffset: 10,
	}
}

// ErrConfig is an unusable Config.
var ErrConfig = errors.New("invalid traffic config")

// Validate reports an unusable config.
func (c Config) Validate() error {
	switch {
	case c.Sites < 1:
		return fmt.Errorf("%w: sites must be at least 1, got %d", ErrConfig, c.Sites)
	case c.Visitors < 1:
		return fmt.Errorf("%w: visitors must be at least 1, got %d", ErrConfig, c.Visitors)
	case c.Events < 0:
		return fmt.Errorf("%w: events must not be negative, got %d", ErrConfig, c.Events)
	case c.Duration < 0:
		return fmt.Errorf("%w: duration must not be negative, got %v", ErrConfig, c.Duration)
	case !(c.Skew > 1):
		return fmt.Errorf("%w: skew must be above 1, got %v", ErrConfig, c.Skew)
	case !(c.SkewOffset >= 1):
		return fmt.Errorf("%w: skew offset must be at least 1, got %v", ErrConfig, c.SkewOffset)
	}
	for _, s := range slices.Sorted(maps.Keys(c.Bots)) { // sorted: the same error every run
		switch {
		case !s.valid():
			return fmt.Errorf("%w: unknown bot scenario %q", ErrConfig, s)
		case c.Bots[s] < 0:
			return fmt.Errorf("%w: %s bots must not be negative, got %d", ErrConfig, s, c.Bots[s])
		}
	}
	return c.Options.validate()
}

// visitor is the stable identity and browser state of one human visitor.
// Bots are not visitors: they are scheduled by time (see bot), not drawn by
// activity rank.
type visitor struct {
	site int
	ip   string
	ua   string
	// seen is set by the visitor's first session: from then on its
	// browser has the site's assets cached.
	seen bool
	// noReferer is a visitor behind a proxy or privacy extension that
	// strips the Referer header from every request.
	noReferer bool
	// profile is the kind of person (Options.People); profNone without.
	profile profile
	// lead is 1 + the index of the first visitor of the office or mobile
	// carrier address this one shares, 0 for a visitor on its own.
	lead int32
	// tls picks among the TLS variants of its browser (Options.LogFields),
	// so that a visitor keeps one fingerprint and a browser has a few.
	tls     uint8
	asn     uint32 // Options.LogFields: its network
	country string
}

// site is a site's name and what can be requested from it.
type site struct {
	name       string
	paths      []string // popularity order: what bots sample and walk
	categories []string // popularity order
	products   []string // popularity order
	category   *rand.Zipf
	product    *rand.Zipf
	// phase is the site's diurnal phase at Config.Start, from its time
	// zone (see site.diurnal).
	phase float64
	// The rest is what Options.SiteKinds and Options.LogFields vary (see
	// sitekinds.go); newSite sets the shop's.
	kind      siteKind
	rich      bool     // its pages call JSON APIs (Options.SiteKinds)
	words     []string // search words and category names
	assets    []string // static files every page loads
	itemRoute string   // prefix of the id-addressed item URLs bots enumerate
	resource  string   // what its JSON API lists: "products", "articles", ...
	country   string   // home country: most visitors come from it
	app       string   // its native app's name, for app user agents
	feeds     []string // its RSS/Atom feed URLs
	poll      string   // the endpoint its app polls
	pollEvery time.Duration
}

// Generator produces the requests of a Config, in time order. It is not
// safe for concurrent use. Its memory holds the visitor population and the
// sessions in progress, not the requests: see Next.
type Generator struct {
	cfg      Config
	rng      *rand.Rand
	activity *rand.Zipf
	rank     []int32 // activity rank -> visitor, so heavy visitors spread over sites
	visitors []visitor
	sites    []site
	n        int      // human requests returned
	bots     botQueue // by next request time: bots and legitimate automation
	end      time.Time
	humans   humans
	opts     *Options // cfg.Options
	// campaignsMade numbers the campaigns as New makes them.
	campaignsMade int
}

// New returns a generator for cfg.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x7261666669632121)) // "traffic!!"
	g := &Generator{
		cfg:      cfg,
		rng:      rng,
		activity: rand.NewZipf(rng, cfg.Skew, cfg.SkewOffset, uint64(cfg.Visitors-1)),
		sites:    make([]site, cfg.Sites),
		visitors: make([]visitor, cfg.Visitors),
		end:      cfg.Start.Add(cfg.Duration),
	}
	g.opts = &g.cfg.Options
	for i := range g.sites {
		g.sites[i] = newSite(rng, i)
	}
	// Site sizes are skewed too: a few big sites, many small ones.
	siteOf := rand.NewZipf(rng, 1.2, 2, uint64(cfg.Sites-1))
	for i := range g.visitors {
		g.visitors[i] = visitor{
			site: int(siteOf.Uint64()),
			ip:   randomIP(rng),
			ua:   userAgents[rng.IntN(len(userAgents))],
		}
	}
	g.rank = make([]int32, cfg.Visitors)
	for i := range g.rank {
		g.rank[i] = int32(i)
	}
	rng.Shuffle(len(g.rank), func(i, j int) { g.rank[i], g.rank[j] = g.rank[j], g.rank[i] })
	for i := range g.visitors {
		g.visitors[i].noReferer = rng.IntN(25) == 0
	}
	// The options draw from their own sources, so that each leaves the
	// draws of the original model alone.
	if g.opts.SiteKinds {
		g.initSiteKinds()
	}
	if g.opts.People.on() {
		g.initPeople()
	}
	if g.opts.LogFields {
		g.initNetwork()
	}
	g.initHumans()
	// After the humans, and from their own sources: humans stay unchanged.
	g.bots = g.newBots()
	return g, nil
}

// Generate returns all the requests of cfg.
func Generate(cfg Config) ([]Request, error) {
	g, err := New(cfg)
	if err != nil {
		return nil, err
	}
	reqs := make([]Request, 0, cfg.Events)
	for r, ok := g.Next(); ok; r, ok = g.Next() {
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// Next returns the next request in time order, or false after Config.Events
// requests of people's sessions and every request of bots and automation in
// the span. At equal times a person's request comes first. It plans each human session when the session starts
// and keeps only the sessions in progress, so memory grows with the
// session start rate times the session length, not with Config.Events.
func (g *Generator) Next() (Request, bool) {
	t, human := g.nextHuman()
	if len(g.bots) > 0 && (!human || g.bots[0].next.Before(t)) {
		b := g.bots[0]
		r := b.request(&g.sites[b.site])
		if b.next.Before(b.until) {
			heap.Fix(&g.bots, 0)
		} else {
			heap.Pop(&g.bots)
		}
		return r, true
	}
	if !human {
		return Request{}, false
	}
	return g.emit(), true
}

// newSite builds site i with its own product and category vocabulary.
func newSite(rng *rand.Rand, i int) site {
	s := site{name: siteNames[i%len(siteNames)]}
	if i >= len(siteNames) {
		s.name = "site" + strconv.Itoa(i) + "." + s.name
	}
	s.paths = []string{"/", "/static/app.js", "/static/style.css", "/search", "/cart", "/favicon.ico", "/api/cart", "/login", "/checkout"}
	for c := range 5 + rng.IntN(15) {
		s.paths = append(s.paths, "/category/"+words[(i+c)%len(words)])
	}
	for range 50 + rng.IntN(2000) {
		s.paths = append(s.paths, "/products/"+strconv.Itoa(1+rng.IntN(99999)))
	}
	for _, p := range s.paths {
		switch {
		case strings.HasPrefix(p, "/category/"):
			s.categories = append(s.categories, p)
		case strings.HasPrefix(p, "/products/"):
			s.products = append(s.products, p)
		}
	}
	s.category = rand.NewZipf(rng, 1.3, 1, uint64(len(s.categories)-1))
	s.product = rand.NewZipf(rng, 1.05, 3, uint64(len(s.products)-1))
	s.words, s.assets, s.itemRoute, s.resource = words, shopAssets, "/products/", "products"
	s.country = siteCountries[i%len(siteCountries)]
	s.setBasics()
	return s
}

// randomIP returns a public-looking address: IPv4 mostly, some IPv6.
func randomIP(rng *rand.Rand) string {
	if rng.IntN(10) == 0 {
		return fmt.Sprintf("2001:db8:%x:%x::%x", rng.IntN(1<<16), rng.IntN(1<<16), 1+rng.IntN(1<<16-1))
	}
	return fmt.Sprintf("%d.%d.%d.%d", 1+rng.IntN(222), rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
}

var siteNames = []string{
	"shop.example.com", "news.example.org", "blog.example.net", "store.example.co.uk",
	"tickets.example.com", "bank.example.com", "forum.example.org", "docs.example.io",
	"travel.example.com", "games.example.net", "recipes.example.com", "jobs.example.org",
}

var searchEngines = []string{
	"https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/",
	"https://search.yahoo.com/", "https://yandex.ru/",
}

var words = []string{
	"shoes", "laptop", "coffee", "garden", "books", "phone", "camera", "bike",
	"kitchen", "toys", "music", "sofa", "tent", "watch", "jacket", "lamp",
	"printer", "guitar", "pillow", "backpack",
}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",
	"Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.6422.165 Mobile Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0",
	"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68",
}

// logpushEvent is a Request in Cloudflare Logpush http_requests field names,
// the detector's input contract.
type logpushEvent struct {
	EdgeStartTimestamp     int64  `json:"EdgeStartTimestamp"`
	ZoneName               string `json:"ZoneName"`
	ClientIP               string `json:"ClientIP"`
	ClientRequestMethod    string `json:"ClientRequestMethod"`
	ClientRequestPath      string `json:"ClientRequestPath"`
	ClientRequestURI       string `json:"ClientRequestURI"`
	ClientRequestUserAgent string `json:"ClientRequestUserAgent"`
	ClientRequestReferer   string `json:"ClientRequestReferer"`
	EdgeResponseStatus     int    `json:"EdgeResponseStatus"`
	// Options.LogFields; omitted when empty, so that the default output
	// stays as it was.
	ClientASN     uint32 `json:"ClientASN,omitempty"`
	ClientCountry string `json:"ClientCountry,omitempty"`
	JA3Hash       string `json:"JA3Hash,omitempty"`
	JA4           string `json:"JA4,omitempty"`
}

// labelledEvent is a logpushEvent with the generator's label, for replays
// that score traffic and then check the scores against the truth. The
// pipeline ignores unknown fields, so it reads these as plain events.
type labelledEvent struct {
	logpushEvent
	Label   string `json:"label"`
	Profile string `json:"profile,omitempty"`
	Group   string `json:"group,omitempty"`
}

// LogpushJSON returns r as a Logpush http_requests JSON event, with the
// timestamp in Unix nanoseconds.
func (r *Request) LogpushJSON() ([]byte, error) {
	return json.Marshal(r.logpush())
}

// LabelledJSON is LogpushJSON with r.Label as a trailing "label" field,
// then r.Profile as "profile" and r.Group as "group" when not empty.
func (r *Request) LabelledJSON() ([]byte, error) {
	return json.Marshal(labelledEvent{r.logpush(), r.Label, r.Profile, r.Group})
}

// WriteJSONL writes reqs to w as JSON lines, labelled if labels is true.
func WriteJSONL(w io.Writer, reqs []Request, labels bool) error {
	jw := NewJSONLWriter(w, labels)
	for i := range reqs {
		if err := jw.Write(&reqs[i]); err != nil {
			return err
		}
	}
	return jw.Flush()
}

// JSONLWriter writes requests as JSON lines one at a time, so that a
// Generator's output can stream to a file in bounded memory (WriteJSONL
// needs every request at once). It buffers: call Flush at the end.
type JSONLWriter struct {
	bw     *bufio.Writer
	encode func(*Request) ([]byte, error)
	n      int // requests written, to name the one that fails
}

// NewJSONLWriter returns a writer of LogpushJSON lines to w, or of
// LabelledJSON lines if labels is true.
func NewJSONLWriter(w io.Writer, labels bool) *JSONLWriter {
	encode := (*Request).LogpushJSON
	if labels {
		encode = (*Request).LabelledJSON
	}
	return &JSONLWriter{bw: bufio.NewWriterSize(w, 64<<10), encode: encode}
}

// Write writes r as one line. After an error of the underlying writer every
// later Write and Flush fails.
func (w *JSONLWriter) Write(r *Request) error {
	b, err := w.encode(r)
	if err != nil {
		return fmt.Errorf("encoding request %d: %w", w.n, err)
	}
	w.bw.Write(b) // a write error sticks, and WriteByte returns it
	if err := w.bw.WriteByte('\n'); err != nil {
		return fmt.Errorf("writing request %d: %w", w.n, err)
	}
	w.n++
	return nil
}

// Flush writes any buffered lines to the underlying writer.
func (w *JSONLWriter) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("writing requests: %w", err)
	}
	return nil
}

func (r *Request) logpush() logpushEvent {
	uri := r.Path
	if r.Query != "" {
		uri += "?" + r.Query
	}
	return logpushEvent{
		EdgeStartTimestamp:     r.Time.UnixNano(),
		ZoneName:               r.Site,
		ClientIP:               r.ClientIP,
		ClientRequestMethod:    r.Method,
		ClientRequestPath:      r.Path,
		ClientRequestURI:       uri,
		ClientRequestUserAgent: r.UserAgent,
		ClientRequestReferer:   r.Referer,
		EdgeResponseStatus:     r.Status,
		ClientASN:              r.ASN,
		ClientCountry:          r.Country,
		JA3Hash:                r.JA3,
		JA4:                    r.JA4,
	}
}
