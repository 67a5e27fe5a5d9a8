package features

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Class is a traffic class: a kind of client whose windows are judged
// against a baseline of their own kind, so that an app polling its API is
// compared with apps, not with people browsing pages.
type Class uint8

// The classes.
const (
	// ClassBrowser is pages: the requests of a browser, including the API
	// calls its pages make (they carry the page as referer), and a tool's
	// requests for pages (see ClientTool).
	ClassBrowser Class = iota
	// ClassAPI is a program: a client that names itself and is no browser
	// (apps, feed readers, monitors, self-declared crawlers), or a request
	// for an API or feed path without a referer.
	ClassAPI
	NumClasses = iota
)

var classNames = [NumClasses]string{ClassBrowser: "browser", ClassAPI: "api"}

func (c Class) String() string {
	if int(c) < NumClasses {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// ParseClass returns the class named s ("browser" or "api").
func ParseClass(s string) (Class, error) {
	if i := slices.Index(classNames[:], s); i >= 0 {
		return Class(i), nil
	}
	return 0, fmt.Errorf("%w: %q (classes: %s)", ErrClass, s, strings.Join(classNames[:], ", "))
}

// ErrClass is an unknown class name or an unusable class rule.
var ErrClass = errors.New("invalid traffic class")

// Class returns the class of a window: API when most of its requests are
// API requests (CountAPI), else browser.
func (a *Aggregate) Class() Class {
	if 2*a.Counts[CountAPI] > a.Counts[CountRequests] {
		return ClassAPI
	}
	return ClassBrowser
}

// DefaultClassRules are the paths of API and feed requests on every site:
// the usual API roots and feeds, and files of data rather than pages.
const DefaultClassRules ClassRules = "/api,/graphql,/feed,/rss,*.json,*.xml,*.rss,*.atom"

// ClassRules says which paths are API or feed paths, as a flag value:
// comma-separated patterns, each a path prefix that matches whole segments
// ("/api" matches /api and /api/v1/items, not /apiary) or "*" and a suffix
// ("*.json"), and optionally "site=" before it to apply to that site only
// ("shop.example.com=/rest"). A browser's request for such a path without a
// referer is an API request; with one, it is its page's call and stays with
// the browser.
type ClassRules string

// Classifier decides the class of each request. It is safe for concurrent
// use.
type Classifier struct {
	all   []pathPattern
	sites map[string][]pathPattern
}

type pathPattern struct {
	text   string
	suffix bool
}

func (p pathPattern) match(path []byte) bool {
	if p.suffix {
		return bytes.HasSuffix(path, []byte(p.text))
	}
	return bytes.HasPrefix(path, []byte(p.text)) && (len(path) == len(p.text) || path[len(p.text)] == '/')
}

// DefaultClassifier is the Classifier of DefaultClassRules.
func DefaultClassifier() *Classifier {
	c, err := DefaultClassRules.Classifier()
	if err != nil {
		panic(err) // a constant that parses
	}
	return c
}

// Classifier parses the rules.
func (r ClassRules) Classifier() (*Classifier, error) {
	c := &Classifier{sites: make(map[string][]pathPattern)}
	if r == "" {
		return c, nil
	}
	for _, item := range strings.Split(string(r), ",") {
		site, pat, scoped := strings.Cut(item, "=")
		if !scoped {
			pat = site
		}
		var p pathPattern
		switch {
		case strings.HasPrefix(pat, "*") && len(pat) > 1 && !strings.ContainsAny(pat[1:], "*/"):
			p = pathPattern{text: pat[1:], suffix: true}
		case strings.HasPrefix(pat, "/") && !strings.Contains(pat, "*") && (len(pat) == 1 || !strings.HasSuffix(pat, "/")):
			p = pathPattern{text: strings.TrimSuffix(pat, "/")}
		default:
			return nil, fmt.Errorf("%w: %q: want a path prefix such as /api or a suffix such as *.json, optionally after site=", ErrClass, item)
		}
		if !scoped {
			c.all = append(c.all, p)
			continue
		}
		if site == "" || len(site) > maxSiteLen {
			return nil, fmt.Errorf("%w: %q: the site before '=' must be a host name", ErrClass, item)
		}
		site = lowerASCII([]byte(site))
		c.sites[site] = append(c.sites[site], p)
	}
	return c, nil
}

// Set parses a flag value, so that *ClassRules is a flag.Value.
func (r *ClassRules) Set(s string) error {
	if _, err := ClassRules(s).Classifier(); err != nil {
		return err
	}
	*r = ClassRules(s)
	return nil
}

func (r *ClassRules) String() string { return string(*r) }

// API reports whether a request of ev's shape is an API request: from a
// program (ClientProgram), or for an API path, without a referer when a
// browser asks.
func (c *Classifier) API(ev *Event) bool { return c.api(ev, ClientOf(ev.UserAgent)) }

// api is API, given the kind of client of ev's user agent.
func (c *Classifier) api(ev *Event, client Client) bool {
	switch client {
	case ClientProgram:
		return true
	case ClientBrowser:
		if len(ev.Referer) > 0 {
			return false
		}
	}
	for _, p := range c.all {
		if p.match(ev.Path) {
			return true
		}
	}
	for _, p := range c.sites[ev.Site] {
		if p.match(ev.Path) {
			return true
		}
	}
	return false
}

// Client is a kind of HTTP client, told by its user agent.
type Client uint8

// The kinds of client.
const (
	// ClientBrowser is a web browser (IsBrowser).
	ClientBrowser Client = iota
	// ClientTool is an HTTP library, a command-line client or a security
	// scanner (toolNames), or a client that sends no user agent: it names no
	// application, so what it asks for says what it is. Its requests for
	// pages are judged with browsers' pages, where a script that walks a
	// site's pages without loading them stands out; among programs it
	// would be judged with the crawlers, monitors and feed readers that
	// sites want, and with the history's own scripts, and look ordinary.
	ClientTool
	// ClientProgram is any other client: an app, feed reader, monitor or
	// crawler that names itself.
	ClientProgram
)

// ClientOf returns the kind of client that sends user agent ua.
func ClientOf(ua []byte) Client {
	switch {
	case IsBrowser(ua):
		return ClientBrowser
	case len(ua) == 0 || namesTool(ua):
		return ClientTool
	}
	return ClientProgram
}

// toolNames are, in lower case, what the user agents of HTTP libraries,
// command-line clients and security scanners say by default. App stacks
// (okhttp, Dalvik, CFNetwork) are not among them: they send an app's
// calls.
var toolNames = []string{
	"python-requests", "python-urllib", "python-httpx", "aiohttp", "curl/", "wget/", "libwww-perl",
	"go-http-client", "java/", "apache-httpclient", "axios/", "node-fetch", "undici", "scrapy",
	"httpie", "guzzlehttp", "zgrab", "nikto", "sqlmap", "wpscan", "nuclei", "masscan", "nmap",
	"gobuster", "ffuf", "dirbuster", "feroxbuster",
}

// toolsByFirst are toolNames by their first byte, so that namesTool tries
// at each byte of a user agent only the names that begin with it: a user
// agent of no known kind is read in full on every request until the
// Observer remembers it, as many times as a bot makes up new ones.
var toolsByFirst = func() (ix [256][]string) {
	for _, name := range toolNames {
		ix[name[0]] = append(ix[name[0]], name)
	}
	return ix
}()

// namesTool reports whether ua holds one of toolNames, in any case.
func namesTool(ua []byte) bool {
	for i, c := range ua {
		for _, name := range toolsByFirst[c|0x20] {
			if hasFoldAt(ua, i, name) {
				return true
			}
		}
	}
	return false
}

// IsBrowser reports whether a user agent is a web browser's: "Mozilla/5.0"
// with a rendering engine (AppleWebKit, Gecko, Trident), and not a
// self-declared crawler ("compatible;", or bot, crawler or spider in it).
// Apps, HTTP libraries, command-line tools and feed readers are not.
func IsBrowser(ua []byte) bool {
	if !bytes.HasPrefix(ua, []byte("Mozilla/5.0 (")) || bytes.Contains(ua, []byte("compatible;")) {
		return false
	}
	if !bytes.Contains(ua, []byte("AppleWebKit/")) && !bytes.Contains(ua, []byte("Gecko/")) && !bytes.Contains(ua, []byte("Trident/")) {
		return false
	}
	return !selfDeclaredBot(ua)
}

// selfDeclaredBot reports whether ua has "bot", "crawler" or "spider" in
// it, in any case, in one pass without allocating: every browser's user
// agent is checked, so this is on the detector's path of every request.
func selfDeclaredBot(ua []byte) bool {
	for i, c := range ua {
		var w string
		switch c | 0x20 {
		case 'b':
			w = "bot"
		case 'c':
			w = "crawler"
		case 's':
			w = "spider"
		default:
			continue
		}
		if hasFoldAt(ua, i, w) {
			return true
		}
	}
	return false
}

// hasFoldAt reports whether s holds the lower-case ASCII word w at i,
// ignoring the case of s.
func hasFoldAt(s []byte, i int, w string) bool {
	if len(s)-i < len(w) {
		return false
	}
	for j := range len(w) {
		if s[i+j]|0x20 != w[j] {
			return false
		}
	}
	return true
}
