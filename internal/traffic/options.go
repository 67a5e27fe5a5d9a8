package traffic

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Options turns on the richer traffic models, each on its own, so that a
// detector can be tried on traffic less uniform than one shop's: the
// original model is a few e-commerce sites, one kind of person and four
// bots. Each part is opt-in: the zero Options is the original traffic,
// byte for byte, for any Config. Realistic turns every part on.
//
// Every part draws from its own seeded random sources. The bot parts
// (Spread, Campaigns, and the scenarios of Config.Bots) never draw from the
// sources of the people, so the human requests of a Config are the same
// with or without them; the other parts change what people do.
type Options struct {
	// People mixes kinds of people (see People): offices and mobile
	// carriers with many people behind one address, privacy browsers,
	// warm caches, power users, one-page readers and app users.
	People People
	// SiteKinds makes the sites differ: news, blog, forum, docs and web
	// app sites beside the shops (by their names: news.example.org is a
	// news site), each with its own paths, page flow and static files,
	// and pages that call the site's JSON API (XHR/fetch under /api/ with
	// the page as referer).
	SiteKinds bool
	// Automation adds the automation sites want (see Automation), labelled
	// HumanLabel with a Profile naming it: app pollers, feed readers,
	// uptime monitors, API clients, search engine crawlers and link
	// previews.
	Automation Automation
	// Spread adds bots active for a bounded lifetime anywhere in the span,
	// as history has them (see Spread).
	Spread Spread
	// Campaigns adds coordinated attacks spread over many residential
	// proxy addresses (see Campaigns).
	Campaigns Campaigns
	// Surges adds people who come at once, to a page shared widely (see
	// Surges).
	Surges Surges
	// LogFields adds to every request what Logpush also logs: ClientASN,
	// ClientCountry, JA3Hash and JA4. Each site has a home country most
	// of its visitors come from; people browse from residential ISPs and
	// mobile carriers of their country (offices from business ISPs),
	// browsers of one family share a few fingerprints, and tools have
	// their own. Visitors' addresses are then drawn from their network's
	// prefixes (people's too, so their requests change).
	LogFields bool
}

// People is the mix of kinds of people, each a share of the visitor
// population from 0 to 1, together at most 1; the rest are "regular"
// visitors, as in the original model. All zero: the original people, with
// no Profile. A visitor is of one kind for the whole span, and its
// requests carry the kind as Profile.
type People struct {
	// Office is the share of visitors behind office addresses: groups of
	// 3 to 25 colleagues on one site and one address, each with their own
	// browser (many of them the office's standard one) and habits.
	// Colleagues are about equally active (neighbours in activity rank), so
	// that an office's address carries several people at once.
	Office float64
	// Carrier is the share behind a mobile carrier's shared (CGNAT)
	// address, 2 to 6 unrelated phone users to an address.
	Carrier float64
	// Privacy is the share on privacy browsers or extensions: they never
	// send a Referer and strip tracking parameters (gclid, utm_*) from
	// the URLs they land on; a third are on a VPN.
	Privacy float64
	// WarmCache is the share of returning visitors whose browsers have the
	// site cached: they load few static files, and no favicon.
	WarmCache float64
	// PowerUser is the share with long sessions: about 25 pages, with
	// shorter pauses.
	PowerUser float64
	// Bouncer is the share who read one page and leave, every session.
	Bouncer float64
	// MobileApp is the share using the site's native app: its sessions
	// call the site's JSON API (/api/v2/...) with an app user agent, no
	// Referer and no static files. Now and then they use the web site.
	MobileApp float64
}

// Automation is the legitimate automation on the sites. Its requests come
// on top of Config.Events, from their own random sources; they are labelled
// HumanLabel, with the Profile of their kind. A count "per site" is a mean:
// a site gets its integer part and one more with the chance of its
// fraction. All zero: none.
type Automation struct {
	// AppPollers is the number of native app sessions that poll an
	// endpoint of the site's API at a steady interval (15 s to 1 min, a
	// jitter of 1.5%), as a share of the visitor population. Each runs for
	// 2 minutes to an hour, starting anywhere in the span.
	AppPollers float64
	// FeedReaders per site fetch the site's RSS or Atom feed every 15
	// minutes to 2 hours, mostly answered 304; news and blog sites have
	// three times as many, shops and apps a third.
	FeedReaders float64
	// UptimeMonitors per site request / or a health endpoint every 30 s
	// to 5 min over the whole span, some from several locations.
	UptimeMonitors float64
	// APIClients per site are partner integrations: every 5 minutes to an
	// hour a sync job pages through the site's API.
	APIClients float64
	// Crawlers per site are search engine crawlers (Googlebot, Bingbot,
	// ...) from their operators' networks, reading robots.txt first.
	Crawlers float64
	// LinkPreviews is how many times an hour a link to each site is
	// shared in a chat or social network, each fetched once by 1 to 4
	// preview bots (facebookexternalhit, Slackbot, ...).
	LinkPreviews float64
}

// Spread is bots as history has them: each active for a bounded lifetime,
// log-uniform between MinLifetime and MaxLifetime, from a start anywhere in
// [Start, Start+Duration), where Config.Bots run from the first half of
// the span to its end. Bots come from Bots and from Share, on top of each
// other. Coordinated scenarios are not for Spread: see Campaigns.
type Spread struct {
	// Bots is the number of bots of each scenario.
	Bots Bots
	// Share is the share of visitors that are bots, from 0 to below 1:
	// bots are added so that they are this share of all visitors seen in
	// the span (people, estimated from the activity law, and these bots),
	// one scenario after the other from Scenarios.
	Share float64
	// Scenarios are those of Share; nil: every individual scenario.
	Scenarios []Scenario
	// MinLifetime and MaxLifetime bound a bot's lifetime; zero: 2 minutes
	// and 1 hour.
	MinLifetime, MaxLifetime time.Duration
}

// Campaigns is coordinated attacks: each campaign targets one site from
// many residential proxy addresses (residential ISPs and mobile carriers of
// many countries, most of the site's own), each with a plausible browser
// user agent and only a few requests, so that no address stands out. All
// requests of a campaign carry its Group ("campaign-1", ...) and the
// Profile "residential-proxy". A campaign lasts MinLength to MaxLength
// (log-uniform, at most the span) from a start anywhere in the span; its
// addresses come in at random times within it.
type Campaigns struct {
	// Scraping campaigns (DistributedScraper) walk the site's catalogue,
	// each address a few pages of it.
	Scraping int
	// Stuffing campaigns (DistributedStuffing) try stolen credentials on
	// the site's login, each address a few.
	Stuffing int
	// Addresses per campaign; 0: 200 to 500, drawn per campaign.
	Addresses int
	// MinRequests and MaxRequests bound the requests of one address; 0: 2
	// and 8.
	MinRequests, MaxRequests int
	// MinLength and MaxLength bound a campaign's length; 0: 10 minutes and
	// 1 hour.
	MinLength, MaxLength time.Duration
}

// Realistic turns every option on, in proportions that are plausible
// rather than measured: varied sites; a mix of people (a tenth behind
// shared office or carrier addresses, a tenth on the site's app, a few
// percent on privacy browsers); the automation sites want; bots as 3% of
// the visitors, spread over the span and every individual scenario (few
// visitors but busy ones: bot-management vendors' yearly reports put bad
// bots at about a third of all requests); one scraping and one stuffing
// campaign; and the network fields. Tools can offer it as one flag (see
// Options.Set).
func Realistic() Options {
	return Options{
		People: People{
			Office: 0.08, Carrier: 0.10, Privacy: 0.05, WarmCache: 0.15,
			PowerUser: 0.03, Bouncer: 0.12, MobileApp: 0.07,
		},
		SiteKinds: true,
		Automation: Automation{
			AppPollers: 0.004, FeedReaders: 3, UptimeMonitors: 2,
			APIClients: 1, Crawlers: 1.5, LinkPreviews: 6,
		},
		Spread:    Spread{Share: 0.03},
		Campaigns: Campaigns{Scraping: 1, Stuffing: 1},
		Surges:    Surges{Count: 1},
		LogFields: true,
	}
}

// The parts of Options by name, as Options.Set reads them.
const (
	PartPeople     = "people"
	PartSites      = "sites"
	PartAutomation = "automation"
	PartSpread     = "spread"
	PartCampaigns  = "campaigns"
	PartSurges     = "surges"
	PartFields     = "fields"
)

// optionPart is a part of Options: its name, how to copy it from one
// Options to another, and whether it is on.
type optionPart struct {
	name string
	copy func(dst, src *Options)
	on   func(o *Options) bool
}

// parts are the parts of Options, in field order.
var parts = []optionPart{
	{PartPeople, func(d, s *Options) { d.People = s.People }, func(o *Options) bool { return o.People.on() }},
	{PartSites, func(d, s *Options) { d.SiteKinds = s.SiteKinds }, func(o *Options) bool { return o.SiteKinds }},
	{PartAutomation, func(d, s *Options) { d.Automation = s.Automation }, func(o *Options) bool { return o.Automation != Automation{} }},
	{PartSpread, func(d, s *Options) { d.Spread = s.Spread }, func(o *Options) bool { return o.Spread.on() }},
	{PartCampaigns, func(d, s *Options) { d.Campaigns = s.Campaigns }, func(o *Options) bool { return o.Campaigns.Scraping+o.Campaigns.Stuffing > 0 }},
	{PartSurges, func(d, s *Options) { d.Surges = s.Surges }, func(o *Options) bool { return o.Surges.Count > 0 }},
	{PartFields, func(d, s *Options) { d.LogFields = s.LogFields }, func(o *Options) bool { return o.LogFields }},
}

// partNames lists the parts, for help texts and errors.
func partNames() string {
	var names []string
	for _, p := range parts {
		names = append(names, p.name)
	}
	return strings.Join(names, ", ")
}

// String names the parts that are on, "realistic" when all are as
// Realistic has them, or "none". As a flag.Value's it shows a default.
func (o *Options) String() string {
	if o == nil {
		return "none"
	}
	var on []string
	for _, p := range parts {
		if p.on(o) {
			on = append(on, p.name)
		}
	}
	r := Realistic()
	if len(on) == len(parts) && o.People == r.People && o.SiteKinds && o.Automation == r.Automation &&
		o.Spread.Share == r.Spread.Share && o.Spread.Scenarios == nil && len(o.Spread.Bots) == 0 &&
		o.Spread.MinLifetime == 0 && o.Spread.MaxLifetime == 0 && o.Campaigns == r.Campaigns && o.Surges == r.Surges && o.LogFields {
		return "realistic"
	}
	if len(on) == 0 {
		return "none"
	}
	return strings.Join(on, ",")
}

// Set makes Options a flag.Value: "none", "realistic", or a comma-separated
// list of parts (people, sites, automation, spread, campaigns, surges, fields),
// each as Realistic has it and the others off. Set replaces the whole
// value, so that a flag given twice keeps the last.
func (o *Options) Set(v string) error {
	v = strings.TrimSpace(v)
	switch v {
	case "", "none":
		*o = Options{}
		return nil
	case "realistic":
		*o = Realistic()
		return nil
	}
	var opts Options
	r := Realistic()
	var seen []string
	for item := range strings.SplitSeq(v, ",") {
		name := strings.TrimSpace(item)
		i := slices.IndexFunc(parts, func(p optionPart) bool { return p.name == name })
		switch {
		case i < 0:
			return fmt.Errorf("unknown option %q (want none, realistic or a list of %s)", name, partNames())
		case slices.Contains(seen, name):
			return fmt.Errorf("option %q named twice", name)
		}
		seen = append(seen, name)
		parts[i].copy(&opts, &r)
	}
	*o = opts
	return nil
}

func (p People) on() bool { return p != People{} }

func (s Spread) on() bool { return s.Share > 0 || len(s.Bots) > 0 }

// lifetimes returns the bounds of a spread bot's lifetime.
func (s Spread) lifetimes() (lo, hi time.Duration) {
	lo, hi = s.MinLifetime, s.MaxLifetime
	if lo == 0 {
		lo = 2 * time.Minute
	}
	if hi == 0 {
		hi = max(lo, time.Hour)
	}
	return lo, hi
}

// scenarios returns the scenarios of Share.
func (s Spread) scenarios() []Scenario {
	if s.Scenarios != nil {
		return s.Scenarios
	}
	return individualScenarios()
}

// requests returns the bounds of an address's requests.
func (c Campaigns) requests() (lo, hi int) {
	lo, hi = c.MinRequests, c.MaxRequests
	if lo == 0 {
		lo = 2
	}
	if hi == 0 {
		hi = max(lo, 8)
	}
	return lo, hi
}

// lengths returns the bounds of a campaign's length.
func (c Campaigns) lengths() (lo, hi time.Duration) {
	lo, hi = c.MinLength, c.MaxLength
	if lo == 0 {
		lo = 10 * time.Minute
	}
	if hi == 0 {
		hi = max(lo, time.Hour)
	}
	return lo, hi
}

// validate reports the first unusable option, naming its field.
func (o *Options) validate() error {
	bad := func(field, want string, got any) error {
		return fmt.Errorf("%w: Options.%s must be %s, got %v", ErrConfig, field, want, got)
	}
	share := func(x float64) bool { return x >= 0 && x <= 1 }
	p := o.People
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"Office", p.Office}, {"Carrier", p.Carrier}, {"Privacy", p.Privacy}, {"WarmCache", p.WarmCache},
		{"PowerUser", p.PowerUser}, {"Bouncer", p.Bouncer}, {"MobileApp", p.MobileApp},
	} {
		if !share(f.v) {
			return bad("People."+f.name, "a share from 0 to 1", f.v)
		}
	}
	if sum := p.Office + p.Carrier + p.Privacy + p.WarmCache + p.PowerUser + p.Bouncer + p.MobileApp; sum > 1+1e-9 {
		return bad("People", "shares that add up to at most 1", sum)
	}
	a := o.Automation
	if !share(a.AppPollers) {
		return bad("Automation.AppPollers", "a share of the visitors from 0 to 1", a.AppPollers)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"FeedReaders", a.FeedReaders}, {"UptimeMonitors", a.UptimeMonitors}, {"APIClients", a.APIClients},
		{"Crawlers", a.Crawlers}, {"LinkPreviews", a.LinkPreviews},
	} {
		if !(f.v >= 0 && f.v <= 1000) {
			return bad("Automation."+f.name, "from 0 to 1000 per site", f.v)
		}
	}
	s := o.Spread
	if !(s.Share >= 0 && s.Share < 1) {
		return bad("Spread.Share", "from 0 to below 1", s.Share)
	}
	for _, sc := range slices.Sorted(maps.Keys(s.Bots)) {
		switch {
		case !sc.valid():
			return fmt.Errorf("%w: Options.Spread.Bots: unknown bot scenario %q", ErrConfig, sc)
		case sc.Coordinated():
			return fmt.Errorf("%w: Options.Spread.Bots: %s is coordinated: use Options.Campaigns", ErrConfig, sc)
		case s.Bots[sc] < 0:
			return bad("Spread.Bots["+string(sc)+"]", "0 or more", s.Bots[sc])
		}
	}
	if s.Scenarios != nil && len(s.Scenarios) == 0 {
		return bad("Spread.Scenarios", "nil or some scenarios", "none")
	}
	for _, sc := range s.Scenarios {
		if !sc.valid() || sc.Coordinated() {
			return bad("Spread.Scenarios", "individual bot scenarios", fmt.Sprintf("%q", sc))
		}
	}
	switch lo, hi := s.lifetimes(); {
	case s.MinLifetime < 0:
		return bad("Spread.MinLifetime", "0 or more", s.MinLifetime)
	case s.MaxLifetime < 0 || hi < lo:
		return bad("Spread.MaxLifetime", "0 or at least MinLifetime", s.MaxLifetime)
	}
	c := o.Campaigns
	switch lo, hi := c.requests(); {
	case c.Scraping < 0:
		return bad("Campaigns.Scraping", "0 or more", c.Scraping)
	case c.Stuffing < 0:
		return bad("Campaigns.Stuffing", "0 or more", c.Stuffing)
	case c.Addresses < 0 || c.Addresses > 100_000:
		return bad("Campaigns.Addresses", "from 0 to 100000", c.Addresses)
	case c.MinRequests < 0:
		return bad("Campaigns.MinRequests", "0 or more", c.MinRequests)
	case c.MaxRequests < 0 || hi < lo || hi > 10_000:
		return bad("Campaigns.MaxRequests", "0 or from MinRequests to 10000", c.MaxRequests)
	}
	switch lo, hi := c.lengths(); {
	case c.MinLength < 0:
		return bad("Campaigns.MinLength", "0 or more", c.MinLength)
	case c.MaxLength < 0 || hi < lo:
		return bad("Campaigns.MaxLength", "0 or at least MinLength", c.MaxLength)
	}
	u := o.Surges
	switch lo, hi := u.lengths(); {
	case u.Count < 0 || u.Count > 1000:
		return bad("Surges.Count", "from 0 to 1000", u.Count)
	case u.People < 0 || u.People > 100_000:
		return bad("Surges.People", "from 0 to 100000", u.People)
	case u.MinLength < 0:
		return bad("Surges.MinLength", "0 or more", u.MinLength)
	case u.MaxLength < 0 || hi < lo:
		return bad("Surges.MaxLength", "0 or at least MinLength", u.MaxLength)
	}
	return nil
}

// logUniform draws a duration between lo and hi, evenly on a log scale:
// lifetimes and lengths span orders of magnitude.
func logUniform(u float64, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	l, h := math.Log(float64(lo)), math.Log(float64(hi))
	return time.Duration(math.Exp(l + u*(h-l)))
}
