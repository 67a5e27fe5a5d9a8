package traffic

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// The kinds of people of Options.People, and the profiles of legitimate
// visitors in general (Request.Profile of HumanLabel requests).
const (
	ProfileRegular   = "regular"         // a person as the original model has them
	ProfileOffice    = "office"          // one of several people behind an office address
	ProfileCarrier   = "mobile-carrier"  // one of several phone users behind a carrier's CGNAT address
	ProfilePrivacy   = "privacy-browser" // never a Referer, no tracking parameters
	ProfileWarmCache = "warm-cache"      // a returning visitor with the site cached: few static files
	ProfilePowerUser = "power-user"      // long sessions of many pages
	ProfileBouncer   = "bouncer"         // one page, then gone
	ProfileMobileApp = "mobile-app"      // the site's native app: API calls, no Referer, no static files
	// The automation of Options.Automation.
	ProfileAppPoller     = "app-poller"     // a native app polling an endpoint at a steady interval
	ProfileFeedReader    = "feed-reader"    // fetches the site's feed every so often
	ProfileUptimeMonitor = "uptime-monitor" // checks / or a health endpoint every 30 s to 5 min
	ProfileAPIClient     = "api-client"     // a partner integration syncing through the API
	ProfileCrawler       = "search-crawler" // a search engine's crawler
	ProfileLinkPreview   = "link-preview"   // fetches a page once when a link to it is shared
	// ProfileResidentialProxy is the Profile of the bots of campaigns.
	ProfileResidentialProxy = "residential-proxy"
)

// Profiles lists the profiles of legitimate visitors: the kinds of people,
// the people of surges, then the kinds of automation.
func Profiles() []string {
	return []string{
		ProfileRegular, ProfileOffice, ProfileCarrier, ProfilePrivacy, ProfileWarmCache, ProfilePowerUser,
		ProfileBouncer, ProfileMobileApp, ProfileSurge, ProfileAppPoller, ProfileFeedReader, ProfileUptimeMonitor,
		ProfileAPIClient, ProfileCrawler, ProfileLinkPreview,
	}
}

// profile is a visitor's kind of person.
type profile uint8

const (
	profNone profile = iota // Options.People is off
	profRegular
	profOffice
	profCarrier
	profPrivacy
	profWarm
	profPower
	profBouncer
	profApp
)

var profileNames = [...]string{
	profNone: "", profRegular: ProfileRegular, profOffice: ProfileOffice, profCarrier: ProfileCarrier,
	profPrivacy: ProfilePrivacy, profWarm: ProfileWarmCache, profPower: ProfilePowerUser,
	profBouncer: ProfileBouncer, profApp: ProfileMobileApp,
}

// Group sizes of offices and carrier addresses: uniform, so that their
// means are exact and the shares of People come out as asked.
const (
	officeMin, officeMax   = 3, 25
	carrierMin, carrierMax = 2, 6
)

// initPeople gives the visitors their kinds, from its own source. Offices
// and carrier addresses take visitors of consecutive activity ranks, so
// that the people behind one address are about equally active and the
// address carries several of them at once: they move to the first one's
// site and address. The other kinds are drawn for the rest, visitor by
// visitor.
func (g *Generator) initPeople() {
	p := g.opts.People
	rng := rand.New(rand.NewPCG(g.cfg.Seed, 0x70656f706c652121)) // "people!!"
	officeMean := float64(officeMin+officeMax) / 2
	carrierMean := float64(carrierMin+carrierMax) / 2
	single := max(0, 1-p.Office-p.Carrier)
	// Decisions at each free rank start an office with chance qo and an
	// carrier address with chance qc, so that over all visitors the
	// shares are Office and Carrier: see the package tests.
	t := 1 / (single + p.Office/officeMean + p.Carrier/carrierMean)
	qo, qc := p.Office*t/officeMean, p.Carrier*t/carrierMean
	for k := 0; k < len(g.rank); k++ {
		v := &g.visitors[g.rank[k]]
		if v.profile != profNone {
			continue
		}
		switch u := rng.Float64(); {
		case u < qo:
			g.group(rng, k, profOffice, officeMin+rng.IntN(officeMax-officeMin+1))
		case u < qo+qc:
			g.group(rng, k, profCarrier, carrierMin+rng.IntN(carrierMax-carrierMin+1))
		default:
			g.single(rng, v, single)
		}
	}
}

// group makes the visitors of ranks k to k+n-1 the people behind one
// office or carrier address.
func (g *Generator) group(rng *rand.Rand, k int, kind profile, n int) {
	lead := g.rank[k]
	l := &g.visitors[lead]
	standard := officeAgents[rng.IntN(len(officeAgents))]
	for j := k; j < min(k+n, len(g.rank)); j++ {
		v := &g.visitors[g.rank[j]]
		v.profile = kind
		if j > k {
			v.lead = lead + 1
			v.site, v.ip = l.site, l.ip
		}
		if kind == profCarrier {
			v.ua = mobileAgents[rng.IntN(len(mobileAgents))]
			continue
		}
		switch x := rng.IntN(100); { // the office's standard browser, another, or a phone on the Wi-Fi
		case x < 45:
			v.ua = standard
		case x < 85:
			v.ua = desktopAgents[rng.IntN(len(desktopAgents))]
		default:
			v.ua = mobileAgents[rng.IntN(len(mobileAgents))]
		}
	}
}

// single draws the kind of a visitor on its own: single is the share of
// such visitors, that the shares of People are of.
func (g *Generator) single(rng *rand.Rand, v *visitor, single float64) {
	p := g.opts.People
	u := rng.Float64() * single
	v.profile = profRegular
	for _, c := range []struct {
		share float64
		kind  profile
	}{
		{p.Privacy, profPrivacy}, {p.WarmCache, profWarm}, {p.PowerUser, profPower},
		{p.Bouncer, profBouncer}, {p.MobileApp, profApp},
	} {
		if u < c.share {
			v.profile = c.kind
			break
		}
		u -= c.share
	}
	switch v.profile {
	case profPrivacy:
		v.noReferer = true
		v.ua = privacyAgents[rng.IntN(len(privacyAgents))]
	case profWarm:
		v.seen = true
	case profApp:
		v.noReferer = true // apps have no page to refer from
		v.ua = appAgent(rng, g.sites[v.site].app)
	}
}

// initNetwork places every visitor on a network (Options.LogFields), from
// its own source: the site's country mostly, a network of the kind its
// profile and device say, an address of that network. The people behind
// one office or carrier address share their first one's.
func (g *Generator) initNetwork() {
	rng := rand.New(rand.NewPCG(g.cfg.Seed, 0x6e65746e65746e65)) // "netnetne"
	for i := range g.visitors {
		v := &g.visitors[i]
		v.tls = uint8(rng.IntN(256))
		if v.lead != 0 {
			continue
		}
		kind := asResidential
		switch v.profile {
		case profOffice:
			kind = asBusiness
		case profCarrier:
			kind = asMobile
		case profApp:
			if rng.IntN(100) < 60 {
				kind = asMobile
			}
		case profPrivacy:
			if rng.IntN(3) == 0 {
				kind = asVPN
			}
		default:
			if isMobile(v.ua) {
				if rng.IntN(100) < 55 {
					kind = asMobile
				}
			} else if rng.IntN(100) < 7 { // at work
				kind = asBusiness
			}
		}
		n := pickNet(rng, visitorCountry(rng, g.sites[v.site].country), kind)
		v.ip = n.ip(rng, ipv6Share[kind])
		v.asn, v.country = n.asn, n.country
	}
	for i := range g.visitors {
		if v := &g.visitors[i]; v.lead != 0 {
			l := &g.visitors[v.lead-1]
			v.ip, v.asn, v.country = l.ip, l.asn, l.country
		}
	}
}

// isMobile reports whether a user agent is a phone's or tablet's.
func isMobile(ua string) bool {
	return strings.Contains(ua, "Mobile") || strings.Contains(ua, "iPhone") || strings.Contains(ua, "iPad") ||
		strings.Contains(ua, "Android")
}

// desktopAgents are the desktop browsers of userAgents.
var desktopAgents = func() []string {
	var out []string
	for _, ua := range userAgents {
		if !isMobile(ua) {
			out = append(out, ua)
		}
	}
	return out
}()

// officeAgents are what offices standardise on: Chrome and Edge on
// Windows, now and then a Mac shop.
var officeAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 Edg/125.0.2535.92",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
}

// mobileAgents are phones' browsers.
var mobileAgents = []string{
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",
	"Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.6422.165 Mobile Safari/537.36",
	"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 16_7_8 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0",
}

// privacyAgents are privacy browsers: Tor and Mullvad Browser (a Firefox
// ESR on Windows for everyone), Firefox, Brave (a plain Chrome), Safari,
// and the DuckDuckGo and Firefox Focus apps.
var privacyAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; rv:128.0) Gecko/20100101 Firefox/128.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
	"Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 DuckDuckGo/7 Safari/605.1.15",
	"Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Focus/127.0 Chrome/126.0.6478.122 Mobile Safari/537.36",
}

// appAgent draws the user agent of a native app called name: a few
// versions in use at once, iOS and Android, and Android's default okhttp
// and Dalvik agents from apps that do not set their own.
func appAgent(rng *rand.Rand, name string) string {
	version := [...]string{"4.2.1", "4.2.1", "4.2.1", "4.2.0", "4.1.7"}[rng.IntN(5)]
	if rng.IntN(2) == 0 {
		ios := [...]string{"17.5", "17.5", "17.4.1", "16.7.8"}[rng.IntN(4)]
		if rng.IntN(10) < 3 {
			return fmt.Sprintf("%s/%s CFNetwork/1496.0.7 Darwin/23.5.0", name, version)
		}
		return fmt.Sprintf("%s/%s (iPhone; iOS %s; Scale/3.00)", name, version, ios)
	}
	switch x := rng.IntN(10); {
	case x < 4:
		return "okhttp/4.12.0"
	case x < 5:
		return "Dalvik/2.1.0 (Linux; U; Android 14; SM-S918B Build/UP1A.231005.007)"
	default:
		device := [...]string{"Pixel 8", "SM-S918B", "SM-A546B", "M2101K6G"}[rng.IntN(4)]
		return fmt.Sprintf("%s/%s (Android %d; %s)", name, version, 13+rng.IntN(2), device)
	}
}

// appView is a screen of the native app: a call to the site's JSON API for
// what the web page would show, with no Referer and no static files, and
// now and then a second call for what the screen also shows.
func (p *planner) appView(method, path, query string, kind pageKind, status int) {
	api := "/api/v2" + path
	if path == "/" {
		api = "/api/v2/home"
	}
	p.request(method, api, query, "", status)
	p.pages++
	p.kind = kind
	p.path = path
	p.url = p.pageURL(path, query)
	if kind == pageProduct && status == 200 && p.rng.IntN(10) < 4 {
		p.after(80, 400)
		p.request("GET", api+"/related", "", "", 200)
	}
}

// appLogin is the app's sign-in: a token request, retried once after a
// mistyped password.
func (p *planner) appLogin() {
	p.t = p.t.Add(p.think(7, 0.5))
	if p.rng.IntN(100) < 8 {
		p.request("POST", "/api/v2/auth/token", "", "", 401)
		p.t = p.t.Add(p.think(6, 0.5))
	}
	p.request("POST", "/api/v2/auth/token", "", "", 200)
	p.pages++
	p.kind = pageLogin
}
