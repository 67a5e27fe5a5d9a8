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
	// Classes are the API paths of the traffic classes.
	Classes ClassRules
}

// DefaultMinRequests is the default of -min-requests.
const DefaultMinRequests = 4

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
	c.Classes = DefaultClassRules
	fs.Var(&c.Classes, "api-paths", "paths of API and feed requests, which with the requests of programs that name themselves (apps, feed readers, monitors, crawlers; not browsers, nor tools such as curl, whose other requests are pages) make the api traffic class, judged against a baseline of its own: comma-separated path prefixes (/api matches /api/v1 too) or suffixes (*.json), each optionally after site= for one site only")
}

// Classifier returns the traffic classifier of a validated config.
func (c *Config) Classifier() *Classifier {
	cl, err := c.Classes.Classifier()
	if err != nil {
		panic(fmt.Sprintf("features: Classifier of an invalid config: %v", err))
	}
	return cl
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
	if _, err := c.Classes.Classifier(); err != nil {
		return fmt.Errorf("-api-paths: %w", err)
	}
	if len(c.Secret) < MinIdentityKey {
		return fmt.Errorf("%w: -identity-secret has %d bytes, want at least %d", ErrIdentityKey, len(c.Secret), MinIdentityKey)
	}
	return c.Fields.Validate()
}
