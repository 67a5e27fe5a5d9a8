// Package records defines the JSON records that anomalyd's services
// exchange through Kafka, field by field: a Score (detector to publisher,
// the scores topic) and a Detection (publisher to the edge, the detections
// topic). Both carry "v", the record version; a consumer rejects versions it
// does not know. Field names are a contract: add fields, never rename them.
//
// Visitor ids are the detector's keyed 64-bit hashes written as 16
// lower-case hex digits, because JSON numbers lose precision above 2^53.
// Times are RFC 3339 in UTC.
package records

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Version is the record version this package writes and reads.
const Version = 1

// Contribution is one feature's share of a score.
type Contribution struct {
	// Feature is the feature's name, as in the pkg/features table.
	Feature string `json:"feature"`
	// Value is the feature's value over the window (after its transform).
	Value float64 `json:"value"`
	// Contribution is the feature's term of the HBOS score:
	// -log2(density + alpha) of the bin Value falls in. The terms add up
	// to the score; the largest are what made the visitor unusual.
	Contribution float64 `json:"contribution"`
}

// Score is the record of one scored (site, visitor) pair, written to the
// scores topic for every scoring, detection or not.
type Score struct {
	V       int    `json:"v"`       // Version
	Site    string `json:"site"`    // the site, lower case
	Visitor string `json:"visitor"` // keyed visitor id, 16 hex digits
	// Class is the traffic class of the window, whose baseline scored it:
	// browser or api (empty in records of versions before classes).
	Class string `json:"class,omitempty"`
	// Returning is set when the site's history knows the visitor: it had
	// requests in the baseline's period, and the fit did not leave it out
	// as a bot.
	Returning bool `json:"returning,omitempty"`
	// Score is the HBOS score of the visitor's window; higher is more
	// anomalous. Threshold is the site baseline's (or the operator's
	// override): the score is an outlier when above it.
	Score     float64 `json:"score"`
	Threshold float64 `json:"threshold"`
	// Features are all the scored features in the baseline's order.
	Features []Contribution `json:"features"`
	// WindowStart and WindowEnd bound the window scored, in event time:
	// [WindowStart, WindowEnd).
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	// BaselineVersion is the ETag of the baseline that scored it.
	BaselineVersion string `json:"baseline_version"`
	// ScoredAt is the event time of the request that triggered the scoring.
	ScoredAt time.Time `json:"scored_at"`
}

// Detection is the record of a visitor found anomalous, for the edge.
type Detection struct {
	V               int     `json:"v"`
	Site            string  `json:"site"`
	Visitor         string  `json:"visitor"`
	Class           string  `json:"class,omitempty"` // the traffic class of the score detected
	Score           float64 `json:"score"`
	Threshold       float64 `json:"threshold"`
	BaselineVersion string  `json:"baseline_version"`
	// Top are the largest contributions, largest first: why.
	Top []Contribution `json:"top"`
	// Group names the coordinated attack the visitor was found in, and
	// GroupSize how many visitors it had then; empty for a visitor found
	// on its own evidence.
	Group     string `json:"group,omitempty"`
	GroupSize int    `json:"group_size,omitempty"`
	// DetectedAt is when the detection was made (the score's ScoredAt);
	// the edge acts on it until ExpiresAt.
	DetectedAt time.Time `json:"detected_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// VisitorID formats a visitor id for a record.
func VisitorID(v uint64) string {
	return fmt.Sprintf("%016x", v)
}

// ParseVisitorID parses a record's visitor id.
func ParseVisitorID(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("visitor id %q: want 16 hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("visitor id %q: want 16 hex digits", s)
	}
	return v, nil
}

// Key is the Kafka message key of a record about (site, visitor): the
// same partitioning as the requests topic.
func Key(site, visitor string) []byte { return []byte(site + "|" + visitor) }

// ErrInvalid is a record that decodes but cannot be used.
var ErrInvalid = errors.New("invalid record")

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: field %q: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

// Validate reports the first field of s that a consumer cannot use.
func (s *Score) Validate() error {
	if err := common(s.V, s.Site, s.Visitor, s.Score, s.Threshold); err != nil {
		return err
	}
	if len(s.Features) == 0 {
		return invalid("features", "empty")
	}
	if err := contributions("features", s.Features); err != nil {
		return err
	}
	if s.WindowStart.IsZero() || !s.WindowEnd.After(s.WindowStart) {
		return invalid("window_end", "must be after window_start")
	}
	if s.ScoredAt.IsZero() {
		return invalid("scored_at", "missing")
	}
	return nil
}

// Validate reports the first field of d that a consumer cannot use.
func (d *Detection) Validate() error {
	if err := common(d.V, d.Site, d.Visitor, d.Score, d.Threshold); err != nil {
		return err
	}
	if err := contributions("top", d.Top); err != nil {
		return err
	}
	if d.DetectedAt.IsZero() || !d.ExpiresAt.After(d.DetectedAt) {
		return invalid("expires_at", "must be after detected_at")
	}
	return nil
}

func common(v int, site, visitor string, score, threshold float64) error {
	switch {
	case v != Version:
		return invalid("v", "version %d, this build reads %d", v, Version)
	case site == "":
		return invalid("site", "missing")
	case !finite(score):
		return invalid("score", "%v is not a finite number", score)
	case !finite(threshold):
		return invalid("threshold", "%v is not a finite number", threshold)
	}
	if _, err := ParseVisitorID(visitor); err != nil {
		return invalid("visitor", "%v", err)
	}
	return nil
}

func contributions(field string, cs []Contribution) error {
	for i, c := range cs {
		if c.Feature == "" || !finite(c.Value) || !finite(c.Contribution) {
			return invalid(field, "entry %d needs a feature name and finite value and contribution", i)
		}
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
