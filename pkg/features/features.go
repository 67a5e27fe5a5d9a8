package features

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// The feature schema: what a bucket counts and sketches, and the features
// scored from a window of buckets. It is the one definition of each of
// them: the detector's vector, the feature names, the bucket aggregation
// and the SQL that the baseline service runs over its history
// (internal/chstore) are all derived from the tables below. Adding a
// feature is one Feature entry, and for a new kind of request a Flag,
// where Observer.Observe sets it, and a Counter; the Go/SQL parity test of
// internal/baseline checks the rest.

// Counter is a per-bucket count kept for each visitor.
type Counter uint8

// The counters, in the order of the stored bucket encoding: never renumber.
const (
	CountRequests   Counter = iota // every accepted request
	Count4xx                       // responses with status 400 to 499
	CountNonGET                    // requests whose method is not GET
	CountNoReferer                 // requests without a referer
	CountAssets                    // requests for static files (IsAsset)
	CountSameSecond                // requests in the same second as the visitor's request before them
	CountAPI                       // API requests (Classifier.API): what decides a window's Class
	NumCounters     = iota
)

// Sketch is a per-bucket HyperLogLog of distinct values kept for each
// visitor.
type Sketch uint8

// The sketches, in the order of the stored bucket encoding: never renumber.
const (
	SketchPaths       Sketch = iota // ClientRequestPath
	SketchUserAgents                // ClientRequestUserAgent
	SketchQueryShapes               // the query-string shape of ClientRequestURI
	SketchIPs                       // ClientIP, kept only for fingerprint identities
	NumSketches       = iota
)

// CounterKind is how a counter counts.
type CounterKind uint8

const (
	// EveryRequest counts every request.
	EveryRequest CounterKind = iota
	// FlaggedRequests counts the requests whose Observation has the
	// counter's Flag: in SQL, bitAnd(flags, Flag) != 0.
	FlaggedRequests
	// RepeatedSeconds counts the requests sent in the same second as the
	// visitor's request before them: for requests in time order, the
	// requests less their distinct seconds, which is how SQL counts them.
	RepeatedSeconds
)

// CounterDef defines a counter.
type CounterDef struct {
	Name string // its name in SQL and in debugging output
	Kind CounterKind
	Flag uint8 // the Observation flag it counts, for FlaggedRequests
}

// SketchDef defines a sketch.
type SketchDef struct {
	Name string
	// Column is the requests table's column of the 64-bit hashes of the
	// values (HashValue), 0 where a request has none; distinct counts in
	// SQL count its non-zero values.
	Column string
	// Set is the feature set that keeps it; 0 for every set.
	Set Set
}

var counterDefs = [NumCounters]CounterDef{
	CountRequests:   {Name: "requests", Kind: EveryRequest},
	Count4xx:        {Name: "n4xx", Kind: FlaggedRequests, Flag: Flag4xx},
	CountNonGET:     {Name: "non_get", Kind: FlaggedRequests, Flag: FlagNonGET},
	CountNoReferer:  {Name: "no_referer", Kind: FlaggedRequests, Flag: FlagNoReferer},
	CountAssets:     {Name: "assets", Kind: FlaggedRequests, Flag: FlagAsset},
	CountSameSecond: {Name: "same_second", Kind: RepeatedSeconds},
	CountAPI:        {Name: "api", Kind: FlaggedRequests, Flag: FlagAPI},
}

var sketchDefs = [NumSketches]SketchDef{
	SketchPaths:       {Name: "paths", Column: "path_hash"},
	SketchUserAgents:  {Name: "user_agents", Column: "ua_hash"},
	SketchQueryShapes: {Name: "query_shapes", Column: "shape_hash"},
	SketchIPs:         {Name: "ips", Column: "ip_hash", Set: SetFingerprint},
}

// Def returns the counter's definition.
func (c Counter) Def() CounterDef { return counterDefs[c] }

// Def returns the sketch's definition.
func (s Sketch) Def() SketchDef { return sketchDefs[s] }

func (c Counter) String() string {
	if int(c) < NumCounters {
		return counterDefs[c].Name
	}
	return fmt.Sprintf("counter(%d)", uint8(c))
}

func (s Sketch) String() string {
	if int(s) < NumSketches {
		return sketchDefs[s].Name
	}
	return fmt.Sprintf("sketch(%d)", uint8(s))
}

// Transform turns what a feature counts into the value scored.
type Transform uint8

const (
	// Log1p is ln(1 + n): for counts that are heavy-tailed, which HBOS's
	// equal-width bins would otherwise crowd into the first bin.
	Log1p Transform = iota
	// Share is n divided by the window's requests, capped at 1 (a
	// distinct-count estimate can exceed the requests it counts), and 0
	// for an empty window.
	Share
	// LogOdds is ln((n + 1/4) / (requests - n + 1/4)), n capped at the
	// requests: the share of requests with a trait as log-odds, with a
	// Jeffreys prior of half a request split between having it and not.
	// Its magnitude grows with the evidence: none of 5 requests is -3.0,
	// none of 500 is -7.6, where a share is 0 for both; so a visitor that
	// never loads a static file over hundreds of requests stands out from
	// people who did not in a short visit.
	LogOdds
)

// Source is what a feature counts: one of a window's counters or the
// distinct count of one of its sketches.
type Source struct {
	sketch bool
	index  uint8
}

// OfCounter is the source of counter c's sum over the window.
func OfCounter(c Counter) Source { return Source{index: uint8(c)} }

// OfSketch is the source of sketch s's distinct count over the window.
func OfSketch(s Sketch) Source { return Source{sketch: true, index: uint8(s)} }

// Counter returns the counter of a counter source.
func (s Source) Counter() (Counter, bool) { return Counter(s.index), !s.sketch }

// Sketch returns the sketch of a sketch source.
func (s Source) Sketch() (Sketch, bool) { return Sketch(s.index), s.sketch }

// value is the source's value in a.
func (s Source) value(a *Aggregate) uint64 {
	if s.sketch {
		return a.Distinct[s.index]
	}
	return a.Counts[s.index]
}

// Feature is one scored feature: a transform of a source.
type Feature struct {
	Name      string
	Source    Source
	Transform Transform
	// Set is the feature set that scores it; 0 for every set.
	Set Set
}

// schema is every feature, in the order of the vectors scored (a feature
// set keeps its own subset, in this order). The package doc defines each.
var schema = []Feature{
	{Name: "log1p_requests", Source: OfCounter(CountRequests), Transform: Log1p},
	{Name: "share_new_paths", Source: OfSketch(SketchPaths), Transform: Share},
	{Name: "share_new_user_agents", Source: OfSketch(SketchUserAgents), Transform: Share},
	{Name: "share_new_query_shapes", Source: OfSketch(SketchQueryShapes), Transform: Share},
	{Name: "logodds_no_referer", Source: OfCounter(CountNoReferer), Transform: LogOdds},
	{Name: Name4xx, Source: OfCounter(Count4xx), Transform: LogOdds},
	{Name: NameNonGET, Source: OfCounter(CountNonGET), Transform: LogOdds},
	{Name: "logodds_assets", Source: OfCounter(CountAssets), Transform: LogOdds},
	{Name: "logodds_same_second", Source: OfCounter(CountSameSecond), Transform: LogOdds},
	{Name: "log1p_distinct_ips", Source: OfSketch(SketchIPs), Transform: Log1p, Set: SetFingerprint},
}

// The names of the features that the publisher reads in score records:
// a crowd whose members mostly post to a page or fail there acts on it
// (see internal/publisher's crowds).
const (
	Name4xx    = "logodds_4xx"
	NameNonGET = "logodds_non_get"
)

// Schema returns every feature of every set, in vector order.
func Schema() []Feature { return slices.Clone(schema) }

// Set is a feature set: which of the optional features are scored, as
// bits. The features without a Set are in every one.
type Set uint8

const (
	// SetFingerprint is for TLS-fingerprint identities (JA3, JA4): one
	// client behind many addresses, whose distinct IPs are a feature.
	SetFingerprint Set = 1 << iota
)

// SetOf returns the feature set of an identity mode.
func SetOf(m IdentityMode) Set {
	if m.Fingerprint() {
		return SetFingerprint
	}
	return 0
}

// Has reports whether s includes everything of t.
func (s Set) Has(t Set) bool { return s&t == t }

// Features returns the features of s, in vector order.
func (s Set) Features() []Feature {
	var out []Feature
	for _, f := range schema {
		if s.Has(f.Set) {
			out = append(out, f)
		}
	}
	return out
}

// Names returns the names of the features of s, in vector order: what a
// baseline for s is fitted on.
func (s Set) Names() []string {
	var out []string
	for _, f := range schema {
		if s.Has(f.Set) {
			out = append(out, f.Name)
		}
	}
	return out
}

// Sketches returns the sketches that s keeps.
func (s Set) Sketches() []Sketch {
	var out []Sketch
	for i, d := range sketchDefs {
		if s.Has(d.Set) {
			out = append(out, Sketch(i))
		}
	}
	return out
}

// String names the set: "base", or the optional parts joined by '+'.
func (s Set) String() string {
	if s == 0 {
		return "base"
	}
	var parts []string
	if s.Has(SetFingerprint) {
		parts = append(parts, "fingerprint")
	}
	if rest := s &^ SetFingerprint; rest != 0 {
		parts = append(parts, fmt.Sprintf("set(%#x)", uint8(rest)))
	}
	return strings.Join(parts, "+")
}

// Aggregate is a visitor's behaviour over one window: the counters summed
// over its buckets and the distinct counts of the sketches merged over them.
type Aggregate struct {
	Counts   [NumCounters]uint64
	Distinct [NumSketches]uint64
}

// Vector appends the features of set s scored from a (see the package doc
// for their definitions) to dst[:0] and returns it; it does not allocate
// when dst has room for them.
func (a *Aggregate) Vector(dst []float64, s Set) []float64 {
	dst = dst[:0]
	req := a.Counts[CountRequests]
	for i := range schema {
		f := &schema[i]
		if !s.Has(f.Set) {
			continue
		}
		n := f.Source.value(a)
		switch f.Transform {
		case Log1p:
			dst = append(dst, math.Log1p(float64(n)))
		case LogOdds:
			dst = append(dst, logOdds(n, req))
		default: // Share
			dst = append(dst, share(n, req))
		}
	}
	return dst
}

// logOdds is the LogOdds transform of part of total.
func logOdds(part, total uint64) float64 {
	part = min(part, total)
	return math.Log((float64(part) + 0.25) / (float64(total-part) + 0.25))
}

// share is part/total, at most 1, and 0 for an empty window.
func share(part, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return float64(min(part, total)) / float64(total)
}
