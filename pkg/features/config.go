package features

import (
	"flag"
	"fmt"
	"time"
)

// Config is what every service that reads request events and computes
// visitor features must agree on, so the detector and the baseline service
// register the same flags: the window, the visitor identity and its secret,
// the event field map, and the fewest requests a scored window has.
type Config struct {
	Window   Window
	Identity IdentityMode
	// Secret keys the visitor-id hash; at least MinIdentityKey bytes. Every
	// service that computes visitor ids must use the same one.
	Secret string
	Fields FieldMap
	// MinRequests is the fewest requests a window needs to be scored: the
	// detector scores no smaller window and the baseline learns from none,
	// since a window of a request or two says little about a visitor.
	MinRequests int
}

// DefaultMinRequests is the default of -min-requests.
const DefaultMinRequests = 5

// DefaultRescoreInterval is how often, in event time, the detector
// re-scores a visitor at most: the default of its -rescore-interval flag.
const DefaultRescoreInterval = 30 * time.Second

// RegisterFlags registers the config's flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Window.RegisterFlags(fs)
	c.Fields = DefaultFieldMap()
	fs.Var(&c.Identity, "identity", "what identifies a visitor: ip (the default), ip+ua, ja3 or ja4 (TLS fingerprints add a distinct-IPs feature)")
	fs.StringVar(&c.Secret, "identity-secret", "", fmt.Sprintf("secret that keys the visitor-id hash, at least %d bytes; visitor ids are only comparable under the same secret (required)", MinIdentityKey))
	c.MinRequests = DefaultMinRequests
	fs.IntVar(&c.MinRequests, "min-requests", c.MinRequests, "fewest requests a visitor's window needs to be scored, and to be learned from by a baseline")
	fs.Var(&c.Fields, "fields", "JSON field map of request events: a preset (logpush, ecs, nginx) and/or name=key pairs, e.g. \"ecs,site=labels.site\"")
}

// Set is the feature set the config scores: its identity's.
func (c *Config) Set() Set { return SetOf(c.Identity) }

// Validate reports the first unusable setting.
func (c *Config) Validate() error {
	if err := c.Window.Validate(); err != nil {
		return err
	}
	if c.MinRequests < 1 {
		return fmt.Errorf("-min-requests must be at least 1, got %d", c.MinRequests)
	}
	if len(c.Secret) < MinIdentityKey {
		return fmt.Errorf("%w: -identity-secret has %d bytes, want at least %d", ErrIdentityKey, len(c.Secret), MinIdentityKey)
	}
	return c.Fields.Validate()
}
