package traffic

import (
	"regexp"
	"strings"
	"testing"
)

// TestSiteKinds checks that with Options.SiteKinds each site has the paths
// of its kind, and that pages call the site's API with the page as
// referer.
func TestSiteKinds(t *testing.T) {
	t.Parallel()
	cfg := tinyConfig(6000, Options{SiteKinds: true})
	reqs := generate(t, cfg)
	items := [numSiteKinds]*regexp.Regexp{
		kindShop:  regexp.MustCompile(`^/products/\d+$`),
		kindNews:  regexp.MustCompile(`^/[a-z]+/[a-z-]+-\d+$`),
		kindBlog:  regexp.MustCompile(`^/posts/[a-z-]+$`),
		kindForum: regexp.MustCompile(`^/t/[a-z-]+/\d+$`),
		kindDocs:  regexp.MustCompile(`^/docs/[a-z-]+/[a-z-]+$`),
		kindApp:   regexp.MustCompile(`^/app/projects/\d+$`),
	}
	kindOf := map[string]siteKind{}
	for i, name := range siteNames {
		kindOf[name] = nameKinds[i]
	}
	type seen struct{ requests, items, api, apiFromPage int }
	sites := map[string]*seen{}
	referring := map[string]bool{} // visitors that send referers at all
	for _, r := range reqs {
		if r.Referer != "" {
			referring[r.Site+"|"+r.ClientIP+"|"+r.UserAgent] = true
		}
	}
	for _, r := range reqs {
		s := sites[r.Site]
		if s == nil {
			s = &seen{}
			sites[r.Site] = s
		}
		s.requests++
		if items[kindOf[r.Site]].MatchString(r.Path) {
			s.items++
		}
		if strings.HasPrefix(r.Path, "/api/") && referring[r.Site+"|"+r.ClientIP+"|"+r.UserAgent] {
			s.api++
			if strings.HasPrefix(r.Referer, "https://"+r.Site+"/") {
				s.apiFromPage++
			}
		}
	}
	kinds := map[siteKind]bool{}
	for name, s := range sites {
		kind := kindOf[name]
		t.Logf("%s (%s): %d requests, %d items, %d API calls", name, kindNames[kind], s.requests, s.items, s.api)
		if s.requests < 50 {
			continue
		}
		kinds[kind] = true
		if float64(s.items) < 0.05*float64(s.requests) {
			t.Errorf("%s (%s): %d item pages of %d requests", name, kindNames[kind], s.items, s.requests)
		}
		if s.api == 0 || float64(s.apiFromPage) < 0.8*float64(s.api) {
			t.Errorf("%s: %d API calls, %d with a page of the site as referer", name, s.api, s.apiFromPage)
		}
	}
	if len(kinds) != int(numSiteKinds) {
		t.Errorf("busy sites of %d kinds, want all %d", len(kinds), numSiteKinds)
	}
}
