package traffic

import (
	"math/rand/v2"
	"time"
)

// ProfileSurge is the Profile of the people of surges.
const ProfileSurge = "surge"

// Surges is people who come at once: a page of a site shared widely (on
// social media, in a newsletter, by a news site), so that hundreds of
// people new to the site land on it within minutes. They are labelled
// HumanLabel with Profile ProfileSurge: each from an address of its own
// (the site's country mostly), with an empty cache, following the same
// social network's link to the page; most read it and leave, the others
// browse on as the site's people do. A detector must not take them for a
// coordinated attack: they are many, new and at the same time, on one
// path, but each visits as a person does. Their requests come on top of
// Config.Events, from sources of their own.
type Surges struct {
	// Count is the surges over the span, each on a random site and page,
	// from a start anywhere in it.
	Count int
	// People per surge; 0: 150 to 400, drawn per surge.
	People int
	// MinLength and MaxLength bound a surge's length; 0: 10 and 30
	// minutes. Arrivals are densest at its start.
	MinLength, MaxLength time.Duration
}

// people returns the bounds of a surge's people.
func (s Surges) people() (lo, hi int) {
	if s.People > 0 {
		return s.People, s.People
	}
	return 150, 400
}

// lengths returns the bounds of a surge's length.
func (s Surges) lengths() (lo, hi time.Duration) {
	lo, hi = s.MinLength, s.MaxLength
	if lo == 0 {
		lo = 10 * time.Minute
	}
	if hi == 0 {
		hi = max(lo, 30*time.Minute)
	}
	return lo, hi
}

// surges queues the people of Options.Surges, from a source of their own.
func (g *Generator) surges(q botQueue, id *int) botQueue {
	o := g.opts.Surges
	if o.Count == 0 || g.cfg.Duration <= 1 {
		return q
	}
	seed := rand.New(rand.NewPCG(g.cfg.Seed, 0x7375726765737572)) // "surgesur"
	lo, hi := o.lengths()
	plo, phi := o.people()
	for range o.Count {
		rng := rand.New(rand.NewPCG(seed.Uint64(), seed.Uint64()))
		length := min(logUniform(rng.Float64(), lo, hi), g.cfg.Duration)
		start := g.cfg.Start.Add(time.Duration(rng.Int64N(int64(g.cfg.Duration-length) + 1)))
		si := rng.IntN(len(g.sites))
		s := &g.sites[si]
		// A popular page: one of the site's first products.
		page := s.products[rng.IntN(min(len(s.products), 20))]
		source := socialSources[rng.IntN(len(socialSources))]
		ref := socialReferers[rng.IntN(len(socialReferers))]
		for range plo + rng.IntN(phi-plo+1) {
			mrng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
			b := &bot{id: *id, rng: mrng, site: si, until: g.end, label: HumanLabel, profile: ProfileSurge}
			*id++
			v := visitor{site: si, ip: randomIP(mrng), ua: userAgents[mrng.IntN(len(userAgents))], profile: profRegular}
			if mrng.IntN(100) < 60 {
				v.profile = profBouncer
			}
			if g.opts.LogFields {
				kind := asResidential
				if isMobile(v.ua) && mrng.IntN(100) < 55 {
					kind = asMobile
				}
				n := pickNet(mrng, visitorCountry(mrng, s.country), kind)
				v.ip, v.asn, v.country, v.tls = n.ip(mrng, ipv6Share[kind]), n.asn, n.country, uint8(mrng.IntN(256))
			}
			query := "utm_source=" + source + "&utm_medium=social"
			if mrng.IntN(4) == 0 { // shared on, or the app strips it
				query = ""
			}
			u := mrng.Float64()
			b.at = start.Add(time.Duration(u * u * float64(length)))
			b.act = &surgePerson{g: g, v: v, path: page, query: query, ref: ref}
			q = launchLazy(q, b)
		}
	}
	return q
}

// surgePerson is one person of a surge: one session, from the shared link.
type surgePerson struct {
	g                *Generator
	v                visitor
	path, query, ref string
	done             bool
}

func (sp *surgePerson) plan(b *bot, _ *site) {
	if sp.done {
		return
	}
	sp.done = true
	p := sp.g.newPlanner(b.rng, b.buf[:0], &sp.v, b.at)
	p.profile = ProfileSurge
	p.show("GET", sp.path, sp.query, sp.ref, pageProduct, 200) // the page shared is there
	p.browse(b.until)
	b.buf = p.reqs
	b.at = b.until
}
