package features

import (
	"github.com/cespare/xxhash/v2"

	"github.com/anomalyd/anomalyd/pkg/keys"
)

// Observation is what one request adds to its visitor's window bucket: a
// fixed-size value, so batches of them cost no allocation per request.
type Observation struct {
	Site    uint64 // keys.SiteID of the site
	Visitor uint64 // the visitor's keyed identity hash
	Bucket  uint32 // Window.Bucket of the request's time
	Flags   uint8  // Flag4xx, FlagNonGET
	// Hashes holds HashValue of each sketch's value (SketchPaths...), or 0
	// where the request has none (an empty referer, say).
	Hashes [NumSketches]uint64
}

// Observation flags: which counters besides CountRequests a request adds to.
const (
	Flag4xx       uint8 = 1 << iota // EdgeResponseStatus 400..499
	FlagNonGET                      // ClientRequestMethod is not "GET"
	FlagNoReferer                   // ClientRequestReferer is empty
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
	shape    []byte // scratch for AppendQueryShape
}

// NewObserver returns an Observer for window w and visitor identity id.
func NewObserver(w Window, id *Identity) *Observer {
	return &Observer{w: w, identity: id, shape: make([]byte, 0, 256)}
}

// Observe fills *o from ev. It fails only when ev lacks what the visitor
// identity needs (ErrNoClientIP, ErrNoFingerprint). It does not allocate.
func (ob *Observer) Observe(ev *Event, o *Observation) error {
	visitor, err := ob.identity.Visitor(ev)
	if err != nil {
		return err
	}
	*o = Observation{Site: keys.SiteID(ev.Site), Visitor: visitor, Bucket: ob.w.Bucket(ev.Time)}
	if ev.Status >= 400 && ev.Status <= 499 {
		o.Flags |= Flag4xx
	}
	if string(ev.Method) != "GET" {
		o.Flags |= FlagNonGET
	}
	if len(ev.Referer) == 0 {
		o.Flags |= FlagNoReferer
	}
	ob.shape = AppendQueryShape(ob.shape[:0], ev.URI)
	for s, v := range [...][]byte{
		SketchPaths:       ev.Path,
		SketchUserAgents:  ev.UserAgent,
		SketchReferers:    ev.Referer,
		SketchQueryShapes: ob.shape,
	} {
		if len(v) > 0 {
			o.Hashes[s] = hashBytes(v)
		}
	}
	if ob.identity.Mode().Fingerprint() && ev.ClientIP.IsValid() {
		ip := ev.ClientIP.As16()
		o.Hashes[SketchIPs] = hashBytes(ip[:])
	}
	return nil
}
