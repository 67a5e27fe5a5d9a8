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
	"unicode/utf8"
)

// Version is the record version this package writes and reads.
const Version = 1

// LiveModel is how comparisons and metrics name the live model, whose
// score records have no model.
const LiveModel = "live"

// MaxModel bounds a score record's model name.
const MaxModel = 64

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
	// Allowed marks a record that is no score: the visitor's requests are
	// allowed by the policy for who it is (an allow-list entry on its
	// address, range, network, user agent or id), so the publisher
	// revokes its live detection. Score, Threshold and Features are
	// empty; the window and ScoredAt are the request's.
	Allowed bool `json:"allowed,omitempty"`
	// Model names the candidate model that scored the window (a shadow,
	// see internal/policy); empty for the live model. A candidate's
	// scores are stored and compared, never published.
	Model string `json:"model,omitempty"`
	// Early marks the record of a visit's beginning: a window of exactly
	// the requests of the baseline's early part (model.Early), fewer than
	// a score needs, scored with the early model against its threshold,
	// with its shape and share among the history's beginnings. It only
	// joins a crowd; it is never a hit.
	Early bool `json:"early,omitempty"`
	// Page is the page the visitor was on when it was scored: the path of
	// the request that triggered the scoring, or, for a static file, the
	// path of its referer, the page that loaded it; hashed as the
	// window's sketch of paths hashes paths (16 hex digits; empty in
	// records before it, or when the request had neither).
	Page string `json:"page,omitempty"`
	// Shape is the window's features.Shape (16 hex digits), and
	// ShapeShare the share of the site's visits in the baseline's
	// history that began in that shape (model.Starts.Share), when the
	// baseline knows how the class's visits begin; both empty otherwise.
	// The publisher compares crowds of new visitors whose visits begin
	// alike with it.
	Shape      string  `json:"shape,omitempty"`
	ShapeShare float64 `json:"shape_share,omitempty"`
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
	// Revoked makes the record a revocation: the visitor's live detection
	// is lifted, for this reason (RevokedSiteOff, ...). A revocation
	// expires when it is made (ExpiresAt is DetectedAt, the time of the
	// revocation), so an edge that acts on each key's latest record until
	// its ExpiresAt lifts the block without reading this field; the other
	// fields are the revoked detection's.
	Revoked string `json:"revoked,omitempty"`
}

// The reasons of revocations (Detection.Revoked).
const (
	RevokedSiteOff      = "site_off"      // the policy switched the site off
	RevokedSimulate     = "simulate"      // the policy made the site simulated
	RevokedAllowed      = "allowed"       // the policy allows the visitor
	RevokedNotAnomalous = "not_anomalous" // its scores fell below the threshold
)

// VisitorID formats a visitor id for a record.
func VisitorID(v uint64) string {
	return fmt.Sprintf("%016x", v)
}

// Page formats the hash of a page's path as a record's page; 0 is "".
func Page(pathHash uint64) string {
	if pathHash == 0 {
		return ""
	}
	return VisitorID(pathHash)
}

// Shape formats a features.Shape as a record's shape.
func Shape(s uint64) string { return VisitorID(s) }

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
	if s.Allowed {
		if len(s.Features) > 0 || s.Model != "" || s.Early {
			return invalid("allowed", "an allowed visitor's record has no features, model or early mark")
		}
	} else if len(s.Features) == 0 {
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
	if !(s.ShapeShare >= 0 && s.ShapeShare <= 1) {
		return invalid("shape_share", "%v is not a share in [0, 1]", s.ShapeShare)
	}
	if len(s.Model) > MaxModel || s.Model == LiveModel {
		return invalid("model", "%q: at most %d bytes, and not %q (the live model's records have none)", s.Model, MaxModel, LiveModel)
	}
	if s.Model != "" && s.Early {
		return invalid("early", "a candidate model's record is never a visit's beginning")
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
	switch d.Revoked {
	case "":
		if d.DetectedAt.IsZero() || !d.ExpiresAt.After(d.DetectedAt) {
			return invalid("expires_at", "must be after detected_at")
		}
	case RevokedSiteOff, RevokedSimulate, RevokedAllowed, RevokedNotAnomalous:
		if d.DetectedAt.IsZero() || !d.ExpiresAt.Equal(d.DetectedAt) {
			return invalid("expires_at", "a revocation expires when it is made, at detected_at")
		}
	default:
		return invalid("revoked", "unknown reason %q", d.Revoked)
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

// AppendJSON appends s as json.Marshal writes it, without reflection, but
// for the features' values and contributions, which have
// ExplanationDigits: the detector writes one for every scoring. A
// non-finite number is an error, as it is for json.Marshal. The publisher
// reads this form, field by field in this order, faster than any other.
func (s *Score) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(s.V), 10)
	b = append(b, `,"site":`...)
	b = appendString(b, s.Site)
	b = append(b, `,"visitor":`...)
	b = appendString(b, s.Visitor)
	if s.Class != "" {
		b = append(b, `,"class":`...)
		b = appendString(b, s.Class)
	}
	if s.Returning {
		b = append(b, `,"returning":true`...)
	}
	if s.Allowed {
		b = append(b, `,"allowed":true`...)
	}
	if s.Model != "" {
		b = append(b, `,"model":`...)
		b = appendString(b, s.Model)
	}
	if s.Early {
		b = append(b, `,"early":true`...)
	}
	if s.Page != "" {
		b = append(b, `,"page":`...)
		b = appendString(b, s.Page)
	}
	var err error
	if s.Shape != "" {
		b = append(b, `,"shape":`...)
		b = appendString(b, s.Shape)
	}
	if s.ShapeShare != 0 {
		b = append(b, `,"shape_share":`...)
		if b, err = appendFloat(b, s.ShapeShare, "shape_share"); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"score":`...)
	if b, err = appendFloat(b, s.Score, "score"); err != nil {
		return nil, err
	}
	b = append(b, `,"threshold":`...)
	if b, err = appendFloat(b, s.Threshold, "threshold"); err != nil {
		return nil, err
	}
	if s.Features == nil {
		b = append(b, `,"features":null`...)
	} else {
		b = append(b, `,"features":[`...)
		for i := range s.Features {
			c := &s.Features[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"feature":`...)
			b = appendString(b, c.Feature)
			b = append(b, `,"value":`...)
			if b, err = appendExplanation(b, c.Value, "value"); err != nil {
				return nil, err
			}
			b = append(b, `,"contribution":`...)
			if b, err = appendExplanation(b, c.Contribution, "contribution"); err != nil {
				return nil, err
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	for _, f := range [...]struct {
		key string
		t   time.Time
	}{{`,"window_start":`, s.WindowStart}, {`,"window_end":`, s.WindowEnd}} {
		b = append(b, f.key...)
		if b, err = appendTime(b, f.t); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"baseline_version":`...)
	b = appendString(b, s.BaselineVersion)
	b = append(b, `,"scored_at":`...)
	if b, err = appendTime(b, s.ScoredAt); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendFloat appends f as encoding/json does.
func appendFloat(b []byte, f float64, field string) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("json: unsupported value: %v (field %q)", f, field)
	}
	abs, format := math.Abs(f), byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// ExplanationDigits is how many significant digits a score record's
// feature values and contributions have: what explains a score, and what
// the publisher's crowds and groups compare, needs no more. A decimal of
// up to 15 digits is read exactly by scaling its digits as an integer,
// without strconv's slower path, and 12 leave room for the zeros of
// "0.00": the shortest forms of most float64 values have 17 digits. The
// score, the threshold and the shape's share keep every digit.
const ExplanationDigits = 12

// appendExplanation appends f to ExplanationDigits significant digits, in
// the shortest form that has them (1.5, 1.2e-05); f of 1e308 or more
// whole, which rounded could overflow.
func appendExplanation(b []byte, f float64, field string) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= 1e308 {
		return appendFloat(b, f, field)
	}
	return strconv.AppendFloat(b, f, 'g', ExplanationDigits, 64), nil
}

// appendTime appends t as time.Time's MarshalJSON does.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y >= 10000 {
		return nil, errors.New("json: Time.MarshalJSON: year outside of range [0,9999]")
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// appendString appends s as a JSON string, as encoding/json escapes it
// (HTML characters included).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
