package features

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/pkg/keys"
)

func TestObserve(t *testing.T) {
	secret := []byte("0123456789abcdef0123")
	decoder, err := NewDecoder(DefaultFieldMap())
	if err != nil {
		t.Fatal(err)
	}
	const event = `{"EdgeStartTimestamp":"2026-11-21T10:30:15Z","ZoneName":"Shop.Example.com",
		"ClientIP":"203.0.113.7","ClientRequestMethod":"POST","ClientRequestPath":"/login",
		"ClientRequestURI":"/login?next=/a&user=x","ClientRequestUserAgent":"curl/8",
		"ClientRequestReferer":"","EdgeResponseStatus":403,"JA3Hash":"e7d705a3286e19ea42f587b344ee6865"}`
	var ev Event
	if err := decoder.Decode([]byte(event), &ev); err != nil {
		t.Fatal(err)
	}
	w := DefaultWindow()
	tests := []struct {
		mode IdentityMode
		ips  bool
	}{
		{IdentityIP, false},
		{IdentityJA3, true},
	}
	for _, tc := range tests {
		t.Run(tc.mode.String(), func(t *testing.T) {
			id, err := NewIdentity(tc.mode, secret)
			if err != nil {
				t.Fatal(err)
			}
			ob := NewObserver(w, id, DefaultClassifier())
			var o Observation
			if err := ob.Observe(&ev, &o); err != nil {
				t.Fatal(err)
			}
			visitor, _ := id.Visitor(&ev)
			want := Observation{
				Site:    keys.SiteID("shop.example.com"),
				Visitor: visitor,
				Bucket:  uint32(time.Date(2026, 11, 21, 10, 30, 0, 0, time.UTC).Unix() / 60),
				Second:  uint32(time.Date(2026, 11, 21, 10, 30, 15, 0, time.UTC).Unix()),
				Flags:   Flag4xx | FlagNonGET | FlagNoReferer, // curl is a tool, and /login a page
			}
			want.Hashes[SketchPaths] = HashValue("/login")
			want.Hashes[SketchUserAgents] = HashValue("curl/8")
			want.Hashes[SketchQueryShapes] = HashValue("next&user")
			if tc.ips {
				ip := ev.ClientIP.As16()
				want.Hashes[SketchIPs] = hashBytes(ip[:])
			}
			if o != want {
				t.Errorf("Observe = %+v\nwant      %+v", o, want)
			}
			if n := testing.AllocsPerRun(100, func() { _ = ob.Observe(&ev, &o) }); n != 0 {
				t.Errorf("Observe allocates %v times", n)
			}
		})
	}
	ja4, _ := NewIdentity(IdentityJA4, secret)
	var o Observation
	if err := NewObserver(w, ja4, DefaultClassifier()).Observe(&ev, &o); !errors.Is(err, ErrNoFingerprint) {
		t.Errorf("JA4 identity without JA4: err = %v, want ErrNoFingerprint", err)
	}
}

func TestObserveAsset(t *testing.T) {
	decoder, err := NewDecoder(DefaultFieldMap())
	if err != nil {
		t.Fatal(err)
	}
	id, err := NewIdentity(IdentityIP, []byte("0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	ob := NewObserver(DefaultWindow(), id, DefaultClassifier())
	for _, tc := range []struct {
		path  string
		asset bool
	}{
		{"/static/app.js", true},
		{"/products/12", false},
	} {
		var ev Event
		event := `{"EdgeStartTimestamp":"2026-11-21T10:30:15Z","ZoneName":"shop.example.com","ClientIP":"203.0.113.7",
			"ClientRequestMethod":"GET","ClientRequestPath":"` + tc.path + `","ClientRequestReferer":"https://shop.example.com/"}`
		if err := decoder.Decode([]byte(event), &ev); err != nil {
			t.Fatal(err)
		}
		var o Observation
		if err := ob.Observe(&ev, &o); err != nil {
			t.Fatal(err)
		}
		if got := o.Flags&FlagAsset != 0; got != tc.asset {
			t.Errorf("%s: FlagAsset %v, want %v (flags %b)", tc.path, got, tc.asset, o.Flags)
		}
	}
}

// TestObserveRemembersClients: the API flag of a request is the
// Classifier's, whether its user agent was seen before, is new, or was
// forgotten when more than maxClients of them came.
func TestObserveRemembersClients(t *testing.T) {
	id, err := NewIdentity(IdentityIP, []byte("0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultClassifier()
	ob := NewObserver(DefaultWindow(), id, c)
	uas := []string{"", "curl/8.5.0", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}
	for i := range 2*maxClients + 10 {
		switch i % 3 {
		case 0:
			uas = append(uas, fmt.Sprintf("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36", i))
		case 1:
			uas = append(uas, fmt.Sprintf("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) SomeCrawler/%d", i))
		default:
			uas = append(uas, fmt.Sprintf("python-requests/2.%d.0", i))
		}
	}
	ev := Event{Site: "shop.example.com", ClientIP: netip.MustParseAddr("203.0.113.7"), Method: []byte("GET")}
	for round, path := range []string{"/products/1", "/api/products/1"} {
		ev.Path = []byte(path)
		for _, ua := range uas {
			ev.UserAgent = []byte(ua)
			var o Observation
			if err := ob.Observe(&ev, &o); err != nil {
				t.Fatal(err)
			}
			if got, want := o.Flags&FlagAPI != 0, c.API(&ev); got != want {
				t.Fatalf("round %d, %q: FlagAPI %v, the classifier says %v", round, ua, got, want)
			}
		}
		if len(ob.clients) > maxClients {
			t.Errorf("%d user agents remembered, at most %d wanted", len(ob.clients), maxClients)
		}
	}
}

func TestIsAsset(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/static/style.css", true},
		{"/static/app.JS", true},
		{"/favicon.ico", true},
		{"/img/logo.webp", true},
		{"/fonts/a.woff2", true},
		{"/", false},
		{"/products/123", false},
		{"/index.html", false},
		{"/v1.2/products", false}, // the dot is in a directory, not the file
		{"/archive.tar.gz", false},
		{"/.css", true},
		{"/css", false},
		{"", false},
		{"/file.", false},
	} {
		if got := IsAsset([]byte(tc.path)); got != tc.want {
			t.Errorf("IsAsset(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = IsAsset([]byte("/static/app.js")) }); n != 0 {
		t.Errorf("IsAsset allocates %v times", n)
	}
}

func TestPage(t *testing.T) {
	tests := []struct {
		path, referer, want string // want "" is 0
	}{
		{"/products/1", "", "/products/1"},
		{"/products/1", "https://shop.example/search?q=x", "/products/1"},
		{"/static/app.js", "https://shop.example/products/1?utm_source=x", "/products/1"},
		{"/static/app.js", "https://shop.example/products/1#top", "/products/1"},
		{"/static/app.js", "https://shop.example", "/static/app.js"},
		{"/static/app.js", "", "/static/app.js"},
		{"/favicon.ico", "/relative/page", "/relative/page"},
		{"", "", ""},
	}
	id, err := NewIdentity(IdentityIP, []byte("page test secret, 16+ bytes"))
	if err != nil {
		t.Fatal(err)
	}
	ob := NewObserver(DefaultWindow(), id, DefaultClassifier())
	observe := func(path, referer string) (*Event, *Observation) {
		ev := &Event{Time: time.Unix(1e9, 0), Site: "shop.example", ClientIP: netip.MustParseAddr("192.0.2.1"),
			Method: []byte("GET"), Path: []byte(path), Referer: []byte(referer)}
		var o Observation
		if err := ob.Observe(ev, &o); err != nil {
			t.Fatal(err)
		}
		return ev, &o
	}
	for _, tt := range tests {
		ev, o := observe(tt.path, tt.referer)
		want := uint64(0)
		if tt.want != "" {
			want = HashValue(tt.want)
		}
		if got := Page(ev, o); got != want {
			t.Errorf("Page(%q, referer %q) = %x, want the hash of %q", tt.path, tt.referer, got, tt.want)
		}
	}
	ev, o := observe("/static/app.js", "https://shop.example/products/1?x=1")
	if n := testing.AllocsPerRun(100, func() { Page(ev, o) }); n != 0 {
		t.Errorf("Page allocates %v times", n)
	}
}
