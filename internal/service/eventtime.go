package service

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Sentinel errors of EventTimeConfig.Check.
var (
	// ErrFuture is an event time too far ahead of the service's clock.
	ErrFuture = errors.New("event time too far ahead of the clock")
	// ErrTooOld is an event time older than the service keeps or uses.
	ErrTooOld = errors.New("event time too far behind the clock")
)

// Event-time defaults: a few minutes of clock skew between the edge and the
// services, and eight days back, the baseline service's default retention
// (its baseline period and a day).
const (
	DefaultMaxEventAhead = 5 * time.Minute
	DefaultMaxEventAge   = 8 * 24 * time.Hour
)

// EventTimeConfig bounds the event times a service accepts, measured
// against its own clock. Event time drives retention, baseline periods,
// visitor windows and detection expiry; one event from decades ahead would
// otherwise drop stored history or freeze a window, so events outside the
// bounds are dead-lettered, never stored. Replaying old history on purpose
// takes a MaxAge that covers it, or 0.
type EventTimeConfig struct {
	// MaxAhead is how far ahead of the clock an event may be: the edge's
	// clock skew. Positive.
	MaxAhead time.Duration
	// MaxAge is how far behind the clock an event may be; 0 accepts any
	// age, for replays of old history.
	MaxAge time.Duration
}

// DefaultEventTimeConfig is DefaultMaxEventAhead and DefaultMaxEventAge.
func DefaultEventTimeConfig() EventTimeConfig {
	return EventTimeConfig{MaxAhead: DefaultMaxEventAhead, MaxAge: DefaultMaxEventAge}
}

// RegisterFlags registers -max-event-ahead and -max-event-age, with c's
// values as defaults. what names the time checked, for the help text.
func (c *EventTimeConfig) RegisterFlags(fs *flag.FlagSet, what string) {
	fs.DurationVar(&c.MaxAhead, "max-event-ahead", c.MaxAhead, fmt.Sprintf("%s more than this ahead of this machine's clock are dead-lettered (reason %s): the edge's clock skew", what, ReasonFuture))
	fs.DurationVar(&c.MaxAge, "max-event-age", c.MaxAge, fmt.Sprintf("%s more than this behind this machine's clock are dead-lettered (reason %s); 0 accepts any age, to replay old history on purpose", what, ReasonTooOld))
}

// Validate reports the first unusable setting, naming its flag.
func (c *EventTimeConfig) Validate() error {
	switch {
	case c.MaxAhead <= 0:
		return fmt.Errorf("-max-event-ahead must be positive, got %v", c.MaxAhead)
	case c.MaxAge < 0:
		return fmt.Errorf("-max-event-age must be 0 (any age) or positive, got %v", c.MaxAge)
	}
	return nil
}

// Check returns nil when t is within the bounds around now, else an error
// matching ErrFuture or ErrTooOld that says by how much, with the
// dead-letter reason.
func (c *EventTimeConfig) Check(t, now time.Time) (reason string, err error) {
	if limit := now.Add(c.MaxAhead); t.After(limit) {
		return ReasonFuture, fmt.Errorf("%w: %s is %v ahead, more than -max-event-ahead %v",
			ErrFuture, t.UTC().Format(time.RFC3339Nano), t.Sub(now).Round(time.Second), c.MaxAhead)
	}
	if c.MaxAge > 0 {
		if limit := now.Add(-c.MaxAge); t.Before(limit) {
			return ReasonTooOld, fmt.Errorf("%w: %s is %v behind, more than -max-event-age %v (0 accepts any age)",
				ErrTooOld, t.UTC().Format(time.RFC3339Nano), now.Sub(t).Round(time.Second), c.MaxAge)
		}
	}
	return "", nil
}

// Newest is the newest event time the service accepts at now. Anything
// anchored on the newest stored time (retention, baseline periods) takes
// at most this, so that rows stored before the bounds existed cannot move
// it.
func (c *EventTimeConfig) Newest(now time.Time) time.Time { return now.Add(c.MaxAhead) }
