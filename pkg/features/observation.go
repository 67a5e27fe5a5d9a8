package features

import (
	"bytes"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/anomalyd/anomalyd/pkg/keys"
)

// Observation is what one request adds to its visitor's window bucket: a
// fixed-size value, so batches of them cost no allocation per request.
type Observation struct {
	Site    uint64 // keys.SiteID of the site
	Visitor uint64 // the visitor's keyed identity hash
	Bucket  uint32 // Window.Bucket of the request's time
	Second  uint32 // the request's time in Unix seconds (0 before 1970)
	Flags   uint8  // the Flag bits below
	// Hashes holds HashValue of each sketch's value (SketchPaths...), or 0
	// where the request has none (no query string, say).
	Hashes [NumSketches]uint64
}

// Observation flags: which counters besides CountRequests a request adds to.
const (
	Flag4xx       uint8 = 1 << iota // EdgeResponseStatus 400..499
	FlagNonGET                      // ClientRequestMethod is not "GET"
	FlagNoReferer                   // ClientRequestReferer is empty
	FlagAsset                       // ClientRequestPath is a static file (IsAsset)
	FlagAPI                         // an API request (Classifier.API)
)

// HashValue is the 64-bit hash a sketch stores for a value: xxHash64, which
// is fast and well mixed as HyperLogLog needs. It is never 0, which marks an
// absent value; no key is involved because sketches only ever hold hashes.
func HashValue(s string) uint64 {
	return max(xxhash.Sum64String(s), 1)
}

// hashBytes is HashValue for a byte slice.
func hashBytes(b []byte) uint64 { return max(xxhash.Sum64(b), 1) }

// Observer turns decoded events into Observations. It is not safe for
// concurrent use: each detector worker has its own.
type Observer struct {
	w        Window
	identity *Identity
	classes  *Classifier
	ips      bool   // the feature set keeps SketchIPs
	shape    []byte // scratch for AppendQueryShape
	// clients is ClientOf the user agents seen, by their HashValue, which
	// the sketch takes anyway: ClientOf reads every byte of a user agent,
	// and a few thousand of them make most requests.
	clients map[uint64]Client
}

// maxClients bounds Observer.clients: user agents made up anew for each
// request (a rotating bot's) empty it now and then.
const maxClients = 1 << 12

// NewObserver returns an Observer for window w, visitor identity id and
// traffic classes c, which observes what the feature set of id's mode
// keeps.
func NewObserver(w Window, id *Identity, c *Classifier) *Observer {
	ips := SetOf(id.Mode()).Has(SketchIPs.Def().Set)
	return &Observer{w: w, identity: id, classes: c, ips: ips, shape: make([]byte, 0, 256), clients: make(map[uint64]Client)}
}

// SetClassifier makes the Observer classify requests with c from now on:
// traffic-class rules that changed (the policy's).
func (ob *Observer) SetClassifier(c *Classifier) { ob.classes = c }

// Observe fills *o from ev. It fails only when ev lacks what the visitor
// identity needs (ErrNoClientIP, ErrNoFingerprint). It does not allocate,
// but while its memory of user agents grows to its bound.
func (ob *Observer) Observe(ev *Event, o *Observation) error {
	visitor, err := ob.identity.Visitor(ev)
	if err != nil {
		return err
	}
	*o = Observation{Site: keys.SiteID(ev.Site), Visitor: visitor, Bucket: ob.w.Bucket(ev.Time), Second: uint32(max(ev.Time.Unix(), 0))}
	if ev.Status >= 400 && ev.Status <= 499 {
		o.Flags |= Flag4xx
	}
	if string(ev.Method) != "GET" {
		o.Flags |= FlagNonGET
	}
	if len(ev.Referer) == 0 {
		o.Flags |= FlagNoReferer
	}
	if IsAsset(ev.Path) {
		o.Flags |= FlagAsset
	}
	ob.shape = AppendQueryShape(ob.shape[:0], ev.URI)
	for s, v := range [...][]byte{
		SketchPaths:       ev.Path,
		SketchUserAgents:  ev.UserAgent,
		SketchQueryShapes: ob.shape,
	} {
		if len(v) > 0 {
			o.Hashes[s] = hashBytes(v)
		}
	}
	if ob.classes.api(ev, ob.client(ev.UserAgent, o.Hashes[SketchUserAgents])) {
		o.Flags |= FlagAPI
	}
	if ob.ips && ev.ClientIP.IsValid() {
		ip := ev.ClientIP.As16()
		o.Hashes[SketchIPs] = hashBytes(ip[:])
	}
	return nil
}

// client is ClientOf(ua), remembered by ua's hash.
func (ob *Observer) client(ua []byte, hash uint64) Client {
	if len(ua) == 0 {
		return ClientTool
	}
	c, ok := ob.clients[hash]
	if !ok {
		if len(ob.clients) >= maxClients {
			clear(ob.clients)
		}
		c = ClientOf(ua)
		ob.clients[hash] = c
	}
	return c
}

// Page returns the hash (HashValue) of the page ev, observed as o, belongs
// to: its path (o's), or, for a static file with a referer, the referer's
// path, the page that loaded it; 0 when it has neither. Visitors that
// fetch one page and its files, whatever their order, are on the same
// page. It does not allocate.
func Page(ev *Event, o *Observation) uint64 {
	if o.Flags&FlagAsset != 0 {
		if p := refererPath(ev.Referer); len(p) > 0 {
			return hashBytes(p)
		}
	}
	return o.Hashes[SketchPaths]
}

// refererPath is the path of a referer URL ("https://host/path?query"):
// from the first "/" after the host to the query or fragment; nil when it
// has none.
func refererPath(ref []byte) []byte {
	if i := bytes.Index(ref, []byte("://")); i >= 0 {
		ref = ref[i+3:]
	}
	i := bytes.IndexByte(ref, '/')
	if i < 0 {
		return nil
	}
	ref = ref[i:]
	if j := bytes.IndexAny(ref, "?#"); j >= 0 {
		ref = ref[:j]
	}
	return ref
}

// assetExtensions are the file extensions of what a browser fetches for a
// page it renders: styles, scripts, images, fonts.
var assetExtensions = [...]string{
	"css", "js", "mjs", "map", "png", "jpg", "jpeg", "gif", "webp", "avif",
	"svg", "ico", "woff", "woff2", "ttf", "otf", "eot",
}

// IsAsset reports whether path names a static file by its extension,
// compared without regard to case. Browsers fetch such files for the pages
// they render; most crawlers and scripts never do.
func IsAsset(path []byte) bool {
	dot := -1
	for i := len(path) - 1; i >= 0 && path[i] != '/'; i-- {
		if path[i] == '.' {
			dot = i
			break
		}
	}
	if dot < 0 {
		return false
	}
	ext := path[dot+1:]
	for _, a := range assetExtensions {
		if len(a) == len(ext) && strings.EqualFold(a, string(ext)) {
			return true
		}
	}
	return false
}
