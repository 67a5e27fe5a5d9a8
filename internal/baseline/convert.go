package baseline

import (
	"fmt"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// Converter turns request events, as read from the requests topic, into
// rows of the requests table, with exactly the decoding, visitor identity
// and hashing the detectors use. It is not safe for concurrent use.
type Converter struct {
	dec     *features.Decoder
	ob      *features.Observer
	ev      features.Event
	timeKey string // the event field of the time, for errors
	// policy and classes give the observer the traffic-class rules of
	// the policy in force, as the detectors have them; nil: c's alone.
	policy  func() *policy.Policy
	classes *policy.Classes
}

// NewConverter returns a Converter for events shaped as fields says, under
// window w, visitor identity id and traffic classes c.
func NewConverter(fields features.FieldMap, w features.Window, id *features.Identity, c *features.Classifier) (*Converter, error) {
	dec, err := features.NewDecoder(fields)
	if err != nil {
		return nil, err
	}
	return &Converter{dec: dec, ob: features.NewObserver(w, id, c), timeKey: fields.Time}, nil
}

// SetPolicy makes the Converter classify requests with base, the
// services' -api-paths, and the API paths of the policy source gives.
func (c *Converter) SetPolicy(source func() *policy.Policy, base features.ClassRules) {
	c.policy, c.classes = source, policy.NewClasses(base)
}

// Row converts the event in value, read at (topic, partition, offset). A
// malformed event is an error matching features.ErrMalformed; an event
// without what the identity needs matches features.ErrNoClientIP or
// features.ErrNoFingerprint.
func (c *Converter) Row(value []byte, topic string, partition int32, offset int64) (chstore.Request, error) {
	r := chstore.Request{Topic: topic, Partition: partition, Offset: offset}
	if c.policy != nil {
		c.ob.SetClassifier(c.classes.Of(c.policy()))
	}
	if err := c.dec.Decode(value, &c.ev); err != nil {
		return r, err
	}
	if err := c.ob.Observe(&c.ev, &r.Obs); err != nil {
		return r, fmt.Errorf("visitor identity: %w", err)
	}
	r.Time, r.Site = c.ev.Time, c.ev.Site
	return r, nil
}
