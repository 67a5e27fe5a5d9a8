package traffic

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
)

// The network model of Options.LogFields (and of the addresses of new bots,
// campaigns and automation, with or without it): autonomous systems by
// country and kind, with address prefixes to draw client addresses from,
// and TLS client fingerprints by client family.
//
// The AS numbers are those of real networks of each kind (Comcast is a
// residential ISP of the US, AS7922); the prefixes are plausible for each,
// not an authoritative routing table. The JA3 and JA4 values are made up
// (a hash of the family's name) but shaped as the real ones: what matters
// is which clients share one. A simplification: since Chrome 110 (2023)
// browsers permute their TLS extensions per connection, so that a real
// Chrome's JA3 varies from one connection to the next while its JA4 (which
// sorts them) stays; here each browser family has a few stable JA3 values.

// asKind is what a network is for, which says who browses from it.
type asKind uint8

const (
	asResidential asKind = iota // home broadband
	asMobile                    // a mobile carrier
	asBusiness                  // business ISPs and universities: offices
	asHosting                   // clouds and hosting: servers, scrapers, monitors
	asVPN                       // VPNs and relays privacy-minded people use
	numASKinds
)

// autSys is an autonomous system and where its addresses are.
type autSys struct {
	asn     uint32
	country string
	kind    asKind
	weight  int      // its share among the networks of its country and kind
	v4      []prefix // its IPv4 prefixes
	v6      string   // its IPv6 prefix, the first two groups
}

// prefix is an IPv4 prefix: a /8 when b < 0, a /16 otherwise, or a /19 of
// the /16 from c when c > 0 (c to c+31).
type prefix struct{ a, b, c int }

// ip draws an address of the network: IPv6 with the chance v6 (in 100),
// IPv4 otherwise.
func (as *autSys) ip(rng *rand.Rand, v6 int) string {
	if as.v6 != "" && rng.IntN(100) < v6 {
		return fmt.Sprintf("%s:%x:%x::%x", as.v6, rng.IntN(1<<16), rng.IntN(1<<16), 1+rng.IntN(1<<16-1))
	}
	p := as.v4[rng.IntN(len(as.v4))]
	b, c := p.b, rng.IntN(256)
	if b < 0 {
		b = rng.IntN(256)
	}
	if p.c > 0 {
		c = p.c + rng.IntN(32)
	}
	return fmt.Sprintf("%d.%d.%d.%d", p.a, b, c, 1+rng.IntN(254))
}

// ipv6Share is the chance, in 100, that a client of a kind of network
// has an IPv6 address: mobile carriers are the most IPv6, offices the
// least.
var ipv6Share = [numASKinds]int{asResidential: 25, asMobile: 40, asBusiness: 5, asHosting: 10, asVPN: 5}

func p8(a int) prefix        { return prefix{a, -1, 0} }
func p16(a, b int) prefix    { return prefix{a, b, 0} }
func p19(a, b, c int) prefix { return prefix{a, b, c} }

// networks are the autonomous systems clients come from.
var networks = []autSys{
	// United States.
	{7922, "us", asResidential, 30, []prefix{p8(73), p16(98, 200), p16(67, 160)}, "2601:1c0"},
	{20115, "us", asResidential, 20, []prefix{p16(71, 80), p16(97, 100), p16(24, 160)}, "2603:6010"},
	{7018, "us", asResidential, 15, []prefix{p8(99), p16(107, 192), p16(76, 200)}, "2600:1700"},
	{701, "us", asResidential, 10, []prefix{p16(71, 160), p16(108, 20), p16(173, 48)}, "2600:4040"},
	{22773, "us", asResidential, 8, []prefix{p16(68, 0), p16(70, 160), p16(98, 160)}, "2600:8800"},
	{21928, "us", asMobile, 40, []prefix{p16(172, 56), p16(172, 58)}, "2607:fb90"},
	{6167, "us", asMobile, 35, []prefix{p16(174, 192), p16(97, 32)}, "2600:1000"},
	{20057, "us", asMobile, 25, []prefix{p16(166, 170), p16(107, 77)}, "2600:380"},
	{3356, "us", asBusiness, 40, []prefix{p8(4), p16(63, 80)}, "2001:1900"},
	{174, "us", asBusiness, 30, []prefix{p8(38)}, "2001:550"},
	{6461, "us", asBusiness, 30, []prefix{p16(64, 125), p16(216, 200)}, "2001:438"},
	// United Kingdom.
	{2856, "gb", asResidential, 35, []prefix{p16(86, 128), p16(81, 128), p16(109, 144)}, "2a00:23c0"},
	{5089, "gb", asResidential, 25, []prefix{p16(82, 0), p16(86, 0), p16(92, 232)}, "2a02:c7c"},
	{5607, "gb", asResidential, 20, []prefix{p16(2, 96), p16(90, 192), p16(5, 64)}, "2a02:c78"},
	{13285, "gb", asResidential, 15, []prefix{p16(89, 240), p16(92, 16)}, "2a01:4b00"},
	{12576, "gb", asMobile, 35, []prefix{p16(31, 94), p16(5, 68)}, "2a00:23a8"},
	{25135, "gb", asMobile, 25, []prefix{p16(85, 255)}, "2a01:4c8"},
	{206067, "gb", asMobile, 20, []prefix{p16(92, 40)}, "2a02:6b0"},
	{35228, "gb", asMobile, 20, []prefix{p16(82, 132)}, "2a02:c7d"},
	{8220, "gb", asBusiness, 50, []prefix{p16(212, 36)}, "2a02:2b8"},
	{786, "gb", asBusiness, 50, []prefix{p16(128, 243)}, "2001:630"},
	// Germany.
	{3320, "de", asResidential, 45, []prefix{p16(79, 192), p16(84, 128), p16(91, 0), p16(93, 192)}, "2003:e0"},
	{3209, "de", asResidential, 30, []prefix{p16(88, 64), p16(95, 88), p16(178, 0)}, "2a02:908"},
	{6805, "de", asResidential, 15, []prefix{p16(77, 0), p16(89, 204), p16(95, 112)}, "2a01:c22"},
	{8881, "de", asResidential, 10, []prefix{p16(87, 122), p16(212, 114)}, "2001:16b8"},
	{3320, "de", asMobile, 40, []prefix{p16(80, 187), p16(46, 114)}, "2a01:598"},
	{3209, "de", asMobile, 30, []prefix{p16(109, 40)}, "2a00:20"},
	{6805, "de", asMobile, 30, []prefix{p16(176, 0)}, "2a01:c23"},
	{680, "de", asBusiness, 40, []prefix{p8(141)}, "2001:638"},
	{8220, "de", asBusiness, 30, []prefix{p16(213, 61)}, "2a02:2b9"},
	{3320, "de", asBusiness, 30, []prefix{p16(62, 156)}, "2003:a"},
	// France.
	{3215, "fr", asResidential, 40, []prefix{p8(90), p16(86, 192)}, "2a01:cb00"},
	{12322, "fr", asResidential, 25, []prefix{p16(82, 64), p16(88, 160), p16(78, 192)}, "2a01:e0a"},
	{15557, "fr", asResidential, 20, []prefix{p16(77, 128), p16(109, 0)}, "2a02:8420"},
	{5410, "fr", asResidential, 15, []prefix{p16(89, 80), p16(176, 128)}, "2001:861"},
	{3215, "fr", asMobile, 40, []prefix{p16(92, 184)}, "2a01:cb1c"},
	{51207, "fr", asMobile, 25, []prefix{p16(37, 160)}, "2a0d:e487"},
	{15557, "fr", asMobile, 20, []prefix{p16(46, 218)}, "2a02:8428"},
	{5410, "fr", asMobile, 15, []prefix{p16(176, 129)}, "2001:862"},
	{5511, "fr", asBusiness, 50, []prefix{p16(193, 251)}, "2001:688"},
	{8220, "fr", asBusiness, 50, []prefix{p16(213, 41)}, "2a02:2ba"},
	// Finland.
	{719, "fi", asResidential, 40, []prefix{p16(88, 112), p16(91, 152)}, "2001:14ba"},
	{1759, "fi", asResidential, 30, []prefix{p16(84, 248), p16(91, 156)}, "2001:2003"},
	{16086, "fi", asResidential, 30, []prefix{p16(85, 76), p16(91, 158)}, "2001:14bb"},
	{719, "fi", asMobile, 40, []prefix{p16(188, 238)}, "2001:999"},
	{1759, "fi", asMobile, 30, []prefix{p16(62, 78)}, "2001:2004"},
	{16086, "fi", asMobile, 30, []prefix{p16(37, 33)}, "2001:14bc"},
	{1741, "fi", asBusiness, 50, []prefix{p16(128, 214)}, "2001:708"},
	{719, "fi", asBusiness, 50, []prefix{p16(195, 197)}, "2001:998"},
	// Italy.
	{3269, "it", asResidential, 40, []prefix{p16(79, 0), p16(93, 32)}, "2a01:e11"},
	{30722, "it", asResidential, 20, []prefix{p16(5, 90)}, "2a02:a450"},
	{12874, "it", asResidential, 20, []prefix{p16(2, 224)}, "2a01:2e0"},
	{1267, "it", asResidential, 20, []prefix{p8(151)}, "2a02:b020"},
	{3269, "it", asMobile, 35, []prefix{p16(37, 160)}, "2a01:e12"},
	{30722, "it", asMobile, 30, []prefix{p16(5, 168)}, "2a02:a451"},
	{1267, "it", asMobile, 35, []prefix{p16(151, 40)}, "2a02:b021"},
	{3269, "it", asBusiness, 50, []prefix{p16(212, 131)}, "2a01:e13"},
	{137, "it", asBusiness, 50, []prefix{p16(193, 204)}, "2001:760"},
	// Spain.
	{3352, "es", asResidential, 45, []prefix{p16(79, 144), p16(83, 32)}, "2a0c:5a80"},
	{12430, "es", asResidential, 20, []prefix{p16(62, 174)}, "2a02:9000"},
	{12479, "es", asResidential, 25, []prefix{p16(81, 32)}, "2a01:c50"},
	{3352, "es", asMobile, 40, []prefix{p16(88, 26)}, "2a0c:5a81"},
	{12430, "es", asMobile, 30, []prefix{p16(31, 4)}, "2a02:9001"},
	{12479, "es", asMobile, 30, []prefix{p16(37, 10)}, "2a01:c51"},
	{3352, "es", asBusiness, 50, []prefix{p16(195, 53)}, "2a0c:5a82"},
	{8220, "es", asBusiness, 50, []prefix{p16(213, 27)}, "2a02:2bb"},
	// The Netherlands.
	{1136, "nl", asResidential, 50, []prefix{p16(77, 160), p16(84, 80)}, "2a02:a400"},
	{33915, "nl", asResidential, 50, []prefix{p16(84, 24), p16(94, 208)}, "2001:1c00"},
	{1136, "nl", asMobile, 50, []prefix{p16(31, 149)}, "2a02:a401"},
	{31615, "nl", asMobile, 50, []prefix{p16(31, 20)}, "2a00:bba0"},
	{1103, "nl", asBusiness, 50, []prefix{p8(145)}, "2001:610"},
	{1136, "nl", asBusiness, 50, []prefix{p16(213, 75)}, "2a02:a402"},
	// Japan.
	{4713, "jp", asResidential, 35, []prefix{p8(153)}, "240b:10"},
	{2516, "jp", asResidential, 30, []prefix{p16(106, 128), p16(111, 96)}, "2001:268"},
	{17676, "jp", asResidential, 25, []prefix{p8(126)}, "240b:250"},
	{2527, "jp", asResidential, 10, []prefix{p16(114, 160)}, "2400:4050"},
	{9605, "jp", asMobile, 45, []prefix{p16(1, 66), p16(49, 96)}, "2001:240"},
	{2516, "jp", asMobile, 30, []prefix{p16(106, 133)}, "2001:269"},
	{17676, "jp", asMobile, 25, []prefix{p16(126, 0)}, "240b:251"},
	{2914, "jp", asBusiness, 50, []prefix{p16(129, 250)}, "2001:418"},
	{4713, "jp", asBusiness, 50, []prefix{p16(61, 112)}, "240b:11"},
	// India.
	{24560, "in", asResidential, 30, []prefix{p16(122, 160), p16(182, 64)}, "2401:4900"},
	{55836, "in", asResidential, 30, []prefix{p16(49, 36)}, "2405:201"},
	{24309, "in", asResidential, 25, []prefix{p16(106, 51)}, "2401:4901"},
	{9829, "in", asResidential, 15, []prefix{p16(117, 192), p16(59, 88)}, "2409:4000"},
	{55836, "in", asMobile, 50, []prefix{p16(49, 32), p16(157, 32)}, "2409:4040"},
	{45609, "in", asMobile, 30, []prefix{p16(106, 192), p16(223, 176)}, "2401:4902"},
	{55410, "in", asMobile, 20, []prefix{p16(42, 104), p16(106, 76)}, "2402:3a80"},
	{4755, "in", asBusiness, 50, []prefix{p16(14, 140)}, "2405:8100"},
	{9498, "in", asBusiness, 50, []prefix{p16(125, 16)}, "2404:a800"},
	// Brazil.
	{28573, "br", asResidential, 40, []prefix{p16(177, 32), p16(179, 96)}, "2804:14c"},
	{26599, "br", asResidential, 30, []prefix{p16(177, 0), p16(191, 32)}, "2804:7f0"},
	{7738, "br", asResidential, 15, []prefix{p16(189, 0)}, "2804:d4c"},
	{8167, "br", asResidential, 15, []prefix{p16(187, 0)}, "2804:388"},
	{26615, "br", asMobile, 35, []prefix{p16(177, 96)}, "2804:18"},
	{26599, "br", asMobile, 35, []prefix{p16(191, 240)}, "2804:7f1"},
	{28573, "br", asMobile, 30, []prefix{p16(187, 26)}, "2804:14d"},
	{4230, "br", asBusiness, 50, []prefix{p16(200, 244)}, "2804:1b0"},
	{16735, "br", asBusiness, 50, []prefix{p16(200, 225)}, "2804:1b1"},
	// Canada.
	{812, "ca", asResidential, 35, []prefix{p16(99, 224), p16(174, 112)}, "2607:fea8"},
	{577, "ca", asResidential, 35, []prefix{p16(70, 48), p16(142, 112)}, "2607:fa48"},
	{6327, "ca", asResidential, 30, []prefix{p16(68, 144), p16(24, 64)}, "2604:3d08"},
	{812, "ca", asMobile, 35, []prefix{p16(72, 136)}, "2607:fea9"},
	{577, "ca", asMobile, 35, []prefix{p16(184, 144)}, "2607:fa49"},
	{852, "ca", asMobile, 30, []prefix{p16(75, 152), p16(207, 34)}, "2001:56a"},
	{577, "ca", asBusiness, 50, []prefix{p16(206, 47)}, "2607:fa4a"},
	{174, "ca", asBusiness, 50, []prefix{p16(38, 99)}, "2001:551"},
	// Australia.
	{1221, "au", asResidential, 45, []prefix{p16(101, 160), p16(110, 140)}, "2001:8003"},
	{4804, "au", asResidential, 25, []prefix{p16(49, 176), p16(211, 30)}, "2401:d000"},
	{7545, "au", asResidential, 30, []prefix{p16(27, 32), p16(203, 219)}, "2403:5800"},
	{1221, "au", asMobile, 50, []prefix{p16(1, 128)}, "2001:8004"},
	{4804, "au", asMobile, 30, []prefix{p16(49, 181)}, "2401:d001"},
	{133612, "au", asMobile, 20, []prefix{p16(14, 200)}, "2407:7000"},
	{1221, "au", asBusiness, 50, []prefix{p16(203, 35)}, "2001:8005"},
	{7474, "au", asBusiness, 50, []prefix{p16(202, 139)}, "2401:d002"},
	// Clouds and hosting, by the country of the data centre.
	{16509, "us", asHosting, 30, []prefix{p8(3), p8(18), p8(52), p8(54)}, "2600:1f18"},
	{16509, "de", asHosting, 8, []prefix{p16(18, 184), p16(3, 120)}, "2a05:d014"},
	{16509, "ie", asHosting, 6, []prefix{p16(34, 240), p16(54, 78)}, "2a05:d018"},
	{16509, "jp", asHosting, 4, []prefix{p16(13, 112), p16(54, 64)}, "2406:da14"},
	{16509, "br", asHosting, 3, []prefix{p16(18, 228)}, "2600:1f1e"},
	{396982, "us", asHosting, 15, []prefix{p8(34), p8(35)}, "2600:1900"},
	{396982, "nl", asHosting, 4, []prefix{p16(34, 90)}, "2600:1901"},
	{8075, "us", asHosting, 12, []prefix{p8(20), p8(40)}, "2603:1030"},
	{8075, "nl", asHosting, 4, []prefix{p16(20, 50)}, "2603:1020"},
	{14061, "us", asHosting, 8, []prefix{p16(167, 99), p16(206, 189), p16(64, 225), p16(138, 197)}, "2604:a880"},
	{14061, "de", asHosting, 3, []prefix{p16(164, 92)}, "2a03:b0c0"},
	{14061, "sg", asHosting, 2, []prefix{p16(128, 199)}, "2400:6180"},
	{24940, "de", asHosting, 10, []prefix{p16(95, 216), p16(88, 198), p16(5, 9), p16(138, 201), p16(116, 202)}, "2a01:4f8"},
	{24940, "fi", asHosting, 4, []prefix{p16(65, 108), p16(95, 217)}, "2a01:4f9"},
	{16276, "fr", asHosting, 10, []prefix{p16(51, 38), p16(51, 75), p16(137, 74), p16(145, 239)}, "2001:41d0"},
	{16276, "ca", asHosting, 3, []prefix{p16(142, 44)}, "2607:5300"},
	{63949, "us", asHosting, 5, []prefix{p16(45, 79), p16(172, 104)}, "2600:3c00"},
	{20473, "us", asHosting, 5, []prefix{p16(45, 32), p16(45, 76), p16(149, 28)}, "2001:19f0"},
	{51167, "de", asHosting, 4, []prefix{p16(161, 97), p16(173, 212)}, "2a02:c207"},
	{60781, "nl", asHosting, 4, []prefix{p16(5, 79), p16(37, 48)}, "2001:1af8"},
	{45102, "sg", asHosting, 3, []prefix{p16(47, 74), p16(8, 219)}, "2408:4000"},
	{132203, "sg", asHosting, 2, []prefix{p16(43, 128), p16(119, 28)}, "2402:4e00"},
	{31898, "us", asHosting, 3, []prefix{p16(129, 146), p16(150, 136)}, "2603:c020"},
	// VPNs and relays.
	{9009, "gb", asVPN, 25, []prefix{p16(89, 238), p16(185, 220)}, "2a0d:5600"},
	{60068, "gb", asVPN, 20, []prefix{p16(185, 152), p16(89, 187)}, "2a02:6ea0"},
	{36183, "us", asVPN, 35, []prefix{p16(172, 224), p16(104, 28)}, "2a02:26f7"},
	{13335, "us", asVPN, 20, []prefix{p16(104, 28), p16(162, 158)}, "2a09:bac0"},
}

// countryWeights is where visitors from abroad come from, by share of
// the world's web traffic, roughly.
var countryWeights = []struct {
	country string
	weight  int
}{
	{"us", 30}, {"in", 10}, {"gb", 8}, {"de", 8}, {"fr", 6}, {"br", 6}, {"jp", 5},
	{"ca", 5}, {"es", 4}, {"it", 4}, {"nl", 3}, {"au", 3}, {"fi", 1},
}

// siteCountries are the home countries of siteNames, from their zones.
var siteCountries = []string{"us", "de", "us", "gb", "us", "fr", "fi", "us", "it", "jp", "ca", "in"}

// netIndex finds the networks of a country and kind. It is built once and
// never changed.
var netIndex = func() map[string][numASKinds][]*autSys {
	idx := map[string][numASKinds][]*autSys{}
	for i := range networks {
		n := &networks[i]
		k := idx[n.country]
		k[n.kind] = append(k[n.kind], n)
		idx[n.country] = k
	}
	return idx
}()

// netOfKind lists every network of a kind, of any country.
var netOfKind = func() (by [numASKinds][]*autSys) {
	for i := range networks {
		by[networks[i].kind] = append(by[networks[i].kind], &networks[i])
	}
	return by
}()

// pickNet draws a network of kind in country, by weight; of any country
// when the country has none of that kind (hosting, VPNs).
func pickNet(rng *rand.Rand, country string, kind asKind) *autSys {
	list := netIndex[country][kind]
	if len(list) == 0 {
		list = netOfKind[kind]
	}
	total := 0
	for _, n := range list {
		total += n.weight
	}
	x := rng.IntN(total)
	for _, n := range list {
		if x < n.weight {
			return n
		}
		x -= n.weight
	}
	return list[len(list)-1]
}

// foreignCountry draws a visitor's country by world traffic share.
func foreignCountry(rng *rand.Rand) string {
	total := 0
	for _, c := range countryWeights {
		total += c.weight
	}
	x := rng.IntN(total)
	for _, c := range countryWeights {
		if x < c.weight {
			return c.country
		}
		x -= c.weight
	}
	return "us"
}

// visitorCountry is a person's country: the site's mostly.
func visitorCountry(rng *rand.Rand, home string) string {
	if rng.IntN(100) < 75 {
		return home
	}
	return foreignCountry(rng)
}

// The fixed networks of well-known operators.
var (
	netGoogle   = autSys{15169, "us", asHosting, 1, []prefix{p19(66, 249, 64)}, "2001:4860:4801"}
	netBing     = autSys{8075, "us", asHosting, 1, []prefix{p16(157, 55), p16(40, 77), p16(207, 46)}, ""}
	netApple    = autSys{714, "us", asHosting, 1, []prefix{p8(17)}, ""}
	netYandex   = autSys{13238, "ru", asHosting, 1, []prefix{p16(5, 255), p16(141, 8)}, ""}
	netFacebook = autSys{32934, "us", asHosting, 1, []prefix{p16(31, 13), p16(69, 171), p16(173, 252)}, "2a03:2880"}
	netTwitter  = autSys{13414, "us", asHosting, 1, []prefix{p16(199, 16), p16(199, 59)}, ""}
	netLinkedIn = autSys{14413, "us", asHosting, 1, []prefix{p16(108, 174)}, ""}
	netTelegram = autSys{62041, "nl", asHosting, 1, []prefix{p16(149, 154), p16(91, 108)}, ""}
)

// tlsFamily is a TLS client stack and the fingerprints its versions and
// settings send: browsers of one family share a few, so that one JA3 is
// common among the people of a browser, and each tool has its own.
type tlsFamily struct {
	name string
	ja4  string // JA4 part a: protocol, version, SNI, cipher and extension counts, ALPN
	// share is the cumulative chance, in 256, of each variant: the first
	// is the current release, the next older ones and other settings.
	share []int
	ja3s  []string // per variant
	ja4s  []string // per variant; JA4 sorts the extensions, so variants share
}

// variant returns the fingerprints of variant pick (0-255, by share).
func (f *tlsFamily) variant(pick uint8) (ja3, ja4 string) {
	for i, s := range f.share {
		if int(pick) < s {
			return f.ja3s[i], f.ja4s[i]
		}
	}
	return f.ja3s[0], f.ja4s[0]
}

// The TLS families.
const (
	tlsChrome = iota // Chrome, Edge, Brave, Opera, Samsung Internet, headless Chrome
	tlsFirefox
	tlsSafari // Safari, and apps on Apple's network stack
	tlsCurl
	tlsPython // requests, urllib3, aiohttp, Scrapy
	tlsGo
	tlsOkHTTP // Android apps
	tlsJava
	tlsNode
	tlsDotNet
	tlsRuby
	tlsPerl
	tlsGooglebot
	tlsBingbot
	numTLSFamilies
)

// tlsFamilies are the families, with their variants. Built once at init:
// the hashes are computed, never changed.
var tlsFamilies = func() [numTLSFamilies]tlsFamily {
	spec := [numTLSFamilies]struct {
		name, ja4 string
		share     []int
		ja4Groups int // distinct JA4 values among the variants
	}{
		tlsChrome:    {"chrome", "t13d1516h2", []int{150, 215, 240, 256}, 2},
		tlsFirefox:   {"firefox", "t13d1715h2", []int{170, 230, 256}, 2},
		tlsSafari:    {"safari", "t13d2014h2", []int{180, 256}, 1},
		tlsCurl:      {"curl", "t13d3112h2", []int{200, 256}, 1},
		tlsPython:    {"python", "t13d4907h1", []int{160, 230, 256}, 2},
		tlsGo:        {"go", "t13d1311h2", []int{190, 256}, 1},
		tlsOkHTTP:    {"okhttp", "t13d1613h2", []int{200, 256}, 1},
		tlsJava:      {"java", "t13d4312h1", []int{256}, 1},
		tlsNode:      {"node", "t13d5911h1", []int{200, 256}, 1},
		tlsDotNet:    {"dotnet", "t12d1912h1", []int{256}, 1},
		tlsRuby:      {"ruby", "t13d4910h1", []int{256}, 1},
		tlsPerl:      {"perl", "t12d5309h1", []int{256}, 1},
		tlsGooglebot: {"googlebot", "t13d1413h2", []int{256}, 1},
		tlsBingbot:   {"bingbot", "t13d1812h2", []int{256}, 1},
	}
	var fams [numTLSFamilies]tlsFamily
	for i, s := range spec {
		f := tlsFamily{name: s.name, ja4: s.ja4, share: s.share}
		for v := range s.share {
			sum := md5.Sum([]byte("ja3/" + s.name + "/" + fmt.Sprint(v)))
			f.ja3s = append(f.ja3s, hex.EncodeToString(sum[:]))
			g := v % s.ja4Groups
			c := sha256.Sum256([]byte("ja4c/" + s.name + "/" + fmt.Sprint(g)))
			e := sha256.Sum256([]byte("ja4e/" + s.name + "/" + fmt.Sprint(g)))
			f.ja4s = append(f.ja4s, s.ja4+"_"+hex.EncodeToString(c[:6])+"_"+hex.EncodeToString(e[:6]))
		}
		fams[i] = f
	}
	return fams
}()

// tlsOf is the TLS family a user agent's client most likely has, or
// fallback when the user agent does not say (a browser's name on a tool).
func tlsOf(ua string, fallback int) int {
	switch {
	case ua == "":
		return fallback
	case strings.Contains(ua, "Googlebot"):
		return tlsGooglebot
	case strings.Contains(ua, "bingbot"):
		return tlsBingbot
	case strings.Contains(ua, "python"), strings.Contains(ua, "Python"), strings.Contains(ua, "Scrapy"),
		strings.Contains(ua, "aiohttp"), strings.Contains(ua, "sqlmap"):
		return tlsPython
	case strings.Contains(ua, "curl/"):
		return tlsCurl
	case strings.Contains(ua, "Go-http-client"), strings.Contains(ua, "Nuclei"), strings.Contains(ua, "zgrab"):
		return tlsGo
	case strings.Contains(ua, "okhttp"), strings.Contains(ua, "Dalvik"), strings.Contains(ua, "Android") && !strings.Contains(ua, "Mozilla"):
		return tlsOkHTTP
	case strings.Contains(ua, "CFNetwork"), strings.Contains(ua, "iOS") && !strings.Contains(ua, "Mozilla"):
		return tlsSafari
	case strings.Contains(ua, "Java/"), strings.Contains(ua, "Apache-HttpClient"):
		return tlsJava
	case strings.Contains(ua, "axios"), strings.Contains(ua, "node-fetch"), strings.Contains(ua, "undici"):
		return tlsNode
	case strings.Contains(ua, "Nikto"):
		return tlsPerl
	case strings.Contains(ua, "Ruby"), strings.Contains(ua, "Feedbin"):
		return tlsRuby
	case strings.Contains(ua, "Firefox/"):
		return tlsFirefox
	case strings.Contains(ua, "CriOS"): // Chrome on iOS runs on WebKit
		return tlsSafari
	case strings.Contains(ua, "Chrome/"):
		return tlsChrome
	case strings.Contains(ua, "Safari/") || strings.Contains(ua, "(iPhone;") || strings.Contains(ua, "(iPad;"):
		return tlsSafari
	}
	return fallback
}

// toolFamily draws the HTTP library of a script.
func toolFamily(rng *rand.Rand) int {
	switch x := rng.IntN(100); {
	case x < 35:
		return tlsPython
	case x < 60:
		return tlsGo
	case x < 75:
		return tlsNode
	case x < 85:
		return tlsCurl
	case x < 93:
		return tlsJava
	default:
		return tlsDotNet
	}
}

// netID is a client's place on the network and its TLS fingerprints, as
// Options.LogFields logs them.
type netID struct {
	asn      uint32
	country  string
	ja3, ja4 string
}

// apply sets the log fields of r; a plain HTTP request has no TLS.
func (n *netID) apply(r *Request, plain bool) {
	r.ASN, r.Country = n.asn, n.country
	if !plain {
		r.JA3, r.JA4 = n.ja3, n.ja4
	}
}

// place draws an address on a network of kind in country, and the
// client's netID with TLS family fam.
func place(rng *rand.Rand, country string, kind asKind, fam int) (ip string, id netID) {
	n := pickNet(rng, country, kind)
	return placeOn(rng, n, fam)
}

// placeOn is place on a given network.
func placeOn(rng *rand.Rand, n *autSys, fam int) (ip string, id netID) {
	ip = n.ip(rng, ipv6Share[n.kind])
	ja3, ja4 := tlsFamilies[fam].variant(uint8(rng.IntN(256)))
	return ip, netID{asn: n.asn, country: n.country, ja3: ja3, ja4: ja4}
}
