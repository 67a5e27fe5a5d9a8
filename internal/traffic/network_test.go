package traffic

import (
	"testing"
)

// TestLogFields checks the network fields: people from their site's
// country, browsers of a family sharing a few fingerprints, scanners from
// clouds, campaigns from homes and phones.
func TestLogFields(t *testing.T) {
	t.Parallel()
	cfg := tinyConfig(4000, Options{LogFields: true, People: Realistic().People, Campaigns: Campaigns{Scraping: 1, Addresses: 100}})
	cfg.Bots = Bots{VulnScanner: 12, Scraper: 2}
	reqs := generate(t, cfg)
	kindOf := map[uint32]map[asKind]bool{}
	for _, n := range networks {
		if kindOf[n.asn] == nil {
			kindOf[n.asn] = map[asKind]bool{}
		}
		kindOf[n.asn][n.kind] = true
	}
	home := map[string]string{}
	for i, name := range siteNames {
		home[name] = siteCountries[i]
	}
	var people, atHome int
	ja3s := map[int]map[string]int{} // TLS family of the user agent -> JA3 -> requests
	hosted := map[string]bool{}      // scanners: address -> from a cloud
	for _, r := range reqs {
		switch {
		case r.Label == HumanLabel:
			people++
			if r.Country == home[r.Site] {
				atHome++
			}
			if r.JA3 == "" {
				continue
			}
			f := tlsOf(r.UserAgent, -1)
			if ja3s[f] == nil {
				ja3s[f] = map[string]int{}
			}
			ja3s[f][r.JA3]++
		case r.Label == string(VulnScanner):
			hosted[r.ClientIP] = kindOf[r.ASN][asHosting]
		case r.Group != "":
			if k := kindOf[r.ASN]; !k[asResidential] && !k[asMobile] {
				t.Fatalf("campaign request from AS%d, not a residential or mobile network", r.ASN)
			}
		}
	}
	if share := float64(atHome) / float64(people); share < 0.6 || share > 0.9 {
		t.Errorf("%.2f of people's requests from their site's country, want about 0.75", share)
	}
	for _, f := range []int{tlsChrome, tlsFirefox, tlsSafari} {
		total, top := 0, 0
		for _, n := range ja3s[f] {
			total += n
			top = max(top, n)
		}
		t.Logf("%s: %d JA3 values over %d requests, the commonest %.2f", tlsFamilies[f].name, len(ja3s[f]), total, float64(top)/float64(total))
		if len(ja3s[f]) > len(tlsFamilies[f].ja3s) || float64(top) < 0.3*float64(total) {
			t.Errorf("%s: %d JA3 values, the commonest on %d of %d requests: want a few shared ones", tlsFamilies[f].name, len(ja3s[f]), top, total)
		}
	}
	n := 0
	for _, h := range hosted {
		if h {
			n++
		}
	}
	if len(hosted) != cfg.Bots[VulnScanner] || n < len(hosted)/2 {
		t.Errorf("%d of %d scanners from clouds and hosting, want most of %d", n, len(hosted), cfg.Bots[VulnScanner])
	}
}

// TestNetworkTables checks the tables the fields come from.
func TestNetworkTables(t *testing.T) {
	for _, n := range networks {
		if n.asn == 0 || len(n.country) != 2 || len(n.v4) == 0 || n.weight <= 0 {
			t.Errorf("network %+v is incomplete", n)
		}
	}
	for _, c := range countryWeights {
		for _, k := range []asKind{asResidential, asMobile, asBusiness} {
			if len(netIndex[c.country][k]) == 0 {
				t.Errorf("%s has no network of kind %d", c.country, k)
			}
		}
	}
	for _, c := range siteCountries {
		if len(netIndex[c][asResidential]) == 0 {
			t.Errorf("site country %s has no residential network", c)
		}
	}
	seen := map[string]string{}
	for _, f := range tlsFamilies {
		for i, ja3 := range f.ja3s {
			if !ja3Pattern.MatchString(ja3) || !ja4Pattern.MatchString(f.ja4s[i]) {
				t.Errorf("%s: JA3 %q, JA4 %q", f.name, ja3, f.ja4s[i])
			}
			if other, ok := seen[ja3]; ok {
				t.Errorf("%s and %s share JA3 %s", f.name, other, ja3)
			}
			seen[ja3] = f.name
		}
	}
	for ua, want := range map[string]int{
		userAgents[0]:                      tlsChrome,
		userAgents[6]:                      tlsFirefox,
		userAgents[10]:                     tlsSafari,
		"python-requests/2.32.3":           tlsPython,
		"okhttp/4.12.0":                    tlsOkHTTP,
		"ShopApp/4.2.1 (iPhone; iOS 17.5)": tlsSafari,
		crawlers[0].ua:                     tlsGooglebot,
		mobileAgents[7]:                    tlsSafari, // Chrome on iOS is WebKit
	} {
		if got := tlsOf(ua, -1); got != want {
			t.Errorf("tlsOf(%q) = %d, want %d", ua, got, want)
		}
	}
}
