package features

import (
	"errors"
	"testing"
)

func TestIsBrowser(t *testing.T) {
	tests := []struct {
		ua   string
		want bool
	}{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", true},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0", true},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", true},
		{"Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko", true},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36", true},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", false},
		{"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", false},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) SiteCrawler/2.0", false},
		{"Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36 SomeSPIDER", false},
		{"Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1)", false},
		{"python-requests/2.31.0", false},
		{"okhttp/4.12.0", false},
		{"ShopApp/4.2.1 (iPhone; iOS 17.5)", false},
		{"Feedly/1.0 (+http://www.feedly.com/fetcher.html; 42 subscribers)", false},
		{"curl/8.5.0", false},
		{"", false},
		{"Mozilla/5.0 (", false},
		{"Mozilla/5.0 (X11) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 ScanBOT", false},
		{"Mozilla/5.0 (X11) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 crawle", true},
		{"Mozilla/5.0 (X11) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 bo", true},
	}
	for _, tc := range tests {
		if got := IsBrowser([]byte(tc.ua)); got != tc.want {
			t.Errorf("IsBrowser(%q) = %v, want %v", tc.ua, got, tc.want)
		}
	}
	ua := []byte(tests[0].ua)
	if n := testing.AllocsPerRun(100, func() { IsBrowser(ua) }); n != 0 {
		t.Errorf("IsBrowser allocates %v times", n)
	}
}

// BenchmarkClientOf measures what a user agent costs the Observer the first
// time it sees it: a common browser's (every test of IsBrowser passes, so
// the whole string is read), an app's (read in full for tools' names too,
// as any user agent of no known kind, which a bot can make up anew for
// every request) and a tool's.
func BenchmarkClientOf(b *testing.B) {
	for _, tc := range []struct{ name, ua string }{
		{"browser", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"},
		{"program", "ShopApp/4.2.1 (iPhone; iOS 17.5; Scale/3.00) Alamofire/5.9.1 with more of the app's own words after it"},
		{"tool", "python-requests/2.31.0"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ua := []byte(tc.ua)
			b.ReportAllocs()
			for b.Loop() {
				ClientOf(ua)
			}
		})
	}
}

func TestClientOf(t *testing.T) {
	for _, tc := range []struct {
		ua   string
		want Client
	}{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", ClientBrowser},
		{"", ClientTool},
		{"python-requests/2.31.0", ClientTool},
		{"curl/8.5.0", ClientTool},
		{"Wget/1.21.4", ClientTool},
		{"Go-http-client/1.1", ClientTool},
		{"Python/3.11 aiohttp/3.9.5", ClientTool},
		{"ERPConnector/5.1 Apache-HttpClient/4.5.14 (Java/11.0.22)", ClientTool},
		{"Scrapy/2.11.2 (+https://scrapy.org)", ClientTool},
		{"Mozilla/5.0 zgrab/0.x", ClientTool},
		{"Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000001)", ClientTool},
		{"Mozilla/5.0 (compatible; Nuclei - Open-source project (github.com/projectdiscovery/nuclei))", ClientTool},
		{"sqlmap/1.8.4#stable (https://sqlmap.org)", ClientTool},
		{"PYTHON-REQUESTS/2.0", ClientTool},
		{"okhttp/4.12.0", ClientProgram},
		{"Dalvik/2.1.0 (Linux; U; Android 14; SM-S918B Build/UP1A.231005.007)", ClientProgram},
		{"ShopApp/4.2.1 CFNetwork/1496.0.7 Darwin/23.5.0", ClientProgram},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", ClientProgram},
		{"Feedly/1.0 (+http://www.feedly.com/fetcher.html; 42 subscribers)", ClientProgram},
		{"Mozilla/5.0 (compatible; StatusCake)", ClientProgram},
		{"Datadog/Synthetics", ClientProgram},
		{"Sitemapper/1.0", ClientProgram}, // no tool's name in "sitemap"
		{"curl", ClientProgram},           // a name without its version is no tool's default
	} {
		if got := ClientOf([]byte(tc.ua)); got != tc.want {
			t.Errorf("ClientOf(%q) = %d, want %d", tc.ua, got, tc.want)
		}
	}
}

func TestClassifier(t *testing.T) {
	const browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
	c, err := (DefaultClassRules + ",shop.example=/rest,*.csv").Classifier()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		site, path, ua, referer string
		api                     bool
	}{
		{"a.example", "/products/1", browser, "", false},
		{"a.example", "/api/cart", browser, "https://a.example/cart", false}, // the page's own call
		{"a.example", "/api/cart", browser, "", true},
		{"a.example", "/api", browser, "", true},
		{"a.example", "/apiary", browser, "", false},
		{"a.example", "/v1/items.json", browser, "", true},
		{"a.example", "/feed", browser, "", true},
		{"a.example", "/feedback", browser, "", false},
		{"a.example", "/export.csv", browser, "", true},
		{"a.example", "/", "okhttp/4.12.0", "", true}, // an app's call
		{"a.example", "/", "UptimeRobot/2.0", "https://a.example/", true},
		{"a.example", "/products/1", "python-requests/2.31.0", "", false}, // a tool's page
		{"a.example", "/products/1", "", "", false},
		{"a.example", "/api/cart", "curl/8.5.0", "https://a.example/cart", true}, // a tool's API call, referer or not
		{"a.example", "/feed", "Go-http-client/1.1", "", true},
		{"shop.example", "/rest/items", browser, "", true},
		{"a.example", "/rest/items", browser, "", false},
	}
	for _, tc := range tests {
		ev := Event{Site: tc.site, Path: []byte(tc.path), UserAgent: []byte(tc.ua), Referer: []byte(tc.referer)}
		if got := c.API(&ev); got != tc.api {
			t.Errorf("%s %s ua %.20q referer %q: API %v, want %v", tc.site, tc.path, tc.ua, tc.referer, got, tc.api)
		}
	}
	for _, bad := range []string{"api", "/api/*", "*", "*/x.json", "=/api", "/a,b"} {
		var r ClassRules
		if err := r.Set(bad); !errors.Is(err, ErrClass) {
			t.Errorf("rules %q: error %v, want ErrClass", bad, err)
		}
	}
	var none ClassRules
	if err := none.Set(""); err != nil {
		t.Errorf("no path rules: %v", err)
	}
}

func TestClass(t *testing.T) {
	for _, tc := range []struct {
		requests, api uint64
		want          Class
	}{{10, 0, ClassBrowser}, {10, 5, ClassBrowser}, {10, 6, ClassAPI}, {0, 0, ClassBrowser}} {
		var a Aggregate
		a.Counts[CountRequests], a.Counts[CountAPI] = tc.requests, tc.api
		if got := a.Class(); got != tc.want {
			t.Errorf("%d of %d requests API: class %s, want %s", tc.api, tc.requests, got, tc.want)
		}
	}
	for _, c := range []Class{ClassBrowser, ClassAPI} {
		if got, err := ParseClass(c.String()); got != c || err != nil {
			t.Errorf("ParseClass(%q) = %v, %v", c, got, err)
		}
	}
	if _, err := ParseClass("bot"); !errors.Is(err, ErrClass) {
		t.Errorf("ParseClass(bot): %v", err)
	}
}
