package features

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config is what an operator sets for a service that keeps visitor
// features: the window, the visitor identity and its secret, the event
// field map and the rescore interval.
type Config struct {
	Window   Window
	Identity IdentityMode
	// Secret keys the visitor-id hash; at least MinIdentityKey bytes. Every
	// service that computes visitor ids must use the same one.
	Secret          string
	Fields          FieldMap
	RescoreInterval time.Duration
}

// DefaultRescoreInterval is how often, in event time, a visitor is
// re-scored at most.
const DefaultRescoreInterval = 30 * time.Second

// RegisterFlags registers the config's flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Window.RegisterFlags(fs)
	c.Fields = DefaultFieldMap()
	fs.Var(&c.Identity, "identity", "what identifies a visitor: ip, ip+ua, ja3 or ja4 (TLS fingerprints add a distinct-IPs feature)")
	fs.StringVar(&c.Secret, "identity-secret", "", fmt.Sprintf("secret that keys the visitor-id hash, at least %d bytes; visitor ids are only comparable under the same secret (required)", MinIdentityKey))
	fs.Var(&c.Fields, "fields", "JSON field map of request events: a preset (logpush, ecs, nginx) and/or name=key pairs, e.g. \"ecs,site=labels.site\"")
	fs.DurationVar(&c.RescoreInterval, "rescore-interval", DefaultRescoreInterval, "re-score a visitor at most once per this much event time; 0 re-scores on every request")
}

// Validate reports the first unusable setting.
func (c *Config) Validate() error {
	if err := c.Window.Validate(); err != nil {
		return err
	}
	if len(c.Secret) < MinIdentityKey {
		return fmt.Errorf("%w: -identity-secret has %d bytes, want at least %d", ErrIdentityKey, len(c.Secret), MinIdentityKey)
	}
	if c.RescoreInterval < 0 {
		return errors.New("-rescore-interval must not be negative")
	}
	return c.Fields.Validate()
}
