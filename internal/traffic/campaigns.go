package traffic

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// campaign is one coordinated attack: what its addresses share.
type campaign struct {
	group    string
	stuffing bool
	login    string // the path stuffing posts to
	refMode  int    // what scrapers send as referer: 0 none, 1 the site, 2 a search engine
	// fixed: the tool has one TLS stack, whatever user agent each address
	// claims (else each address's fingerprint matches its user agent).
	fixed    bool
	ja3, ja4 string
}

// campaigns creates the campaigns of Options.Campaigns, from a source of
// their own: each over a window of the span on a random site.
func (g *Generator) campaigns(q botQueue, id *int) botQueue {
	c := g.opts.Campaigns
	if c.Scraping+c.Stuffing == 0 || g.cfg.Duration <= 1 {
		return q
	}
	seed := rand.New(rand.NewPCG(g.cfg.Seed, 0x63616d706169676e)) // "campaign"
	lo, hi := c.lengths()
	for k := range c.Scraping + c.Stuffing {
		s := DistributedScraper
		if k >= c.Scraping {
			s = DistributedStuffing
		}
		rng := rand.New(rand.NewPCG(seed.Uint64(), seed.Uint64()))
		length := min(logUniform(rng.Float64(), lo, hi), g.cfg.Duration)
		start := g.cfg.Start.Add(time.Duration(rng.Int64N(int64(g.cfg.Duration-length) + 1)))
		q = g.newCampaign(q, rng, s, id, rng.IntN(g.cfg.Sites), start, start.Add(length))
	}
	return q
}

// newCampaign queues the addresses of a campaign of scenario s on site,
// from start to end: each a bot of its own with a few requests at a random
// time in the window. Campaigns are numbered across a Generator, in the
// order they are made, so that their Group is unique.
func (g *Generator) newCampaign(q botQueue, rng *rand.Rand, s Scenario, id *int, site int, start, end time.Time) botQueue {
	if !start.Before(g.end) {
		return q
	}
	if end.After(g.end) {
		end = g.end
	}
	opts := g.opts.Campaigns
	si := &g.sites[site]
	c := &campaign{
		group:    "campaign-" + strconv.Itoa(g.campaignsMade+1),
		stuffing: s == DistributedStuffing,
		login:    [...]string{"/login", "/login", "/api/login", "/api/v1/auth/token"}[rng.IntN(4)],
		refMode:  rng.IntN(3),
		fixed:    rng.IntN(10) < 3,
	}
	g.campaignsMade++
	c.ja3, c.ja4 = tlsFamilies[tlsChrome].variant(uint8(rng.IntN(256)))
	addrs := opts.Addresses
	if addrs == 0 {
		addrs = 200 + rng.IntN(301)
	}
	lo, hi := opts.requests()
	cursor := rng.IntN(len(si.products))
	taken := make(map[string]bool, addrs)
	for range addrs {
		mrng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		b := &bot{
			scenario: s, id: *id, rng: mrng, site: site, until: g.end,
			label: string(s), profile: ProfileResidentialProxy, group: c.group,
		}
		*id++
		// Proxies are bought by country: the site's mostly.
		country := si.country
		if mrng.IntN(100) >= 50 {
			country = foreignCountry(mrng)
		}
		kind := asResidential
		if mrng.IntN(100) < botNets[s].mobile {
			kind = asMobile
		}
		ua := browserAgent(mrng)
		n := pickNet(mrng, country, kind)
		ip, nid := placeOn(mrng, n, tlsOf(ua, tlsChrome))
		for try := 0; taken[ip] && try < 20; try++ {
			ip = n.ip(mrng, ipv6Share[kind])
		}
		taken[ip] = true
		if c.fixed {
			nid.ja3, nid.ja4 = c.ja3, c.ja4
		}
		b.ip, b.uas = ip, []string{ua}
		if g.opts.LogFields {
			b.fields, b.net = true, nid
		}
		m := &member{c: c, n: lo + mrng.IntN(hi-lo+1), from: cursor}
		if !c.stuffing {
			cursor += m.n
		}
		b.act = m
		b.at = start.Add(time.Duration(mrng.Int64N(int64(end.Sub(start)) + 1)))
		q = launchLazy(q, b)
	}
	return q
}

// member is one address of a campaign: its few requests in one go, the
// first at b.at (it is launched lazily).
type member struct {
	c    *campaign
	n    int // requests
	from int // scrapers: its first catalogue index
	done bool
}

func (m *member) plan(b *bot, s *site) {
	if m.done {
		return
	}
	m.done = true
	rng := b.rng
	c := m.c
	t := b.at
	ua := b.uas[0]
	if c.stuffing {
		ref, n := "", m.n
		form := c.login
		if c.login != "/login" {
			form = "/login"
		}
		if n > 1 && rng.IntN(2) == 0 { // the form first, for its cookies
			b.add(s, t, "GET", form, "", ua, "", 200)
			t = t.Add(between(rng, 2*time.Second, 10*time.Second))
			ref, n = s.url(form, ""), n-1
		} else if c.refMode > 0 {
			ref = s.url(form, "")
		}
		for k := range n {
			status := 401
			switch x := rng.IntN(100); {
			case x < 4: // a stolen password that works
				status = 200
			case x < 12:
				status = 403
			case x < 22:
				status = 429
			}
			b.add(s, t, "POST", c.login, "", ua, ref, status)
			if status == 200 {
				if k == n-1 {
					break
				}
				t = t.Add(ms(300 + rng.IntN(700))) // in, within its requests

				b.add(s, t, "GET", "/account", "", ua, ref, 200)
				break
			}
			t = t.Add(lognorm(rng, 6*time.Second, 0.6))
		}
	} else {
		ref := ""
		switch c.refMode {
		case 1:
			ref = "https://" + s.name + "/"
		case 2:
			ref = searchEngines[0]
		}
		for k := range m.n {
			path, query, status := s.products[(m.from+k)%len(s.products)], "", 200
			if rng.IntN(100) < 15 { // a listing page, for the links
				path, query = s.categories[rng.IntN(len(s.categories))], "page="+strconv.Itoa(1+rng.IntN(20))
			}
			switch x := rng.IntN(100); {
			case x < 3:
				status = 404
			case x < 5:
				status = 403
			}
			b.add(s, t, "GET", path, query, ua, ref, status)
			t = t.Add(lognorm(rng, 5*time.Second, 0.8))
		}
	}
	b.at = b.until
}
