package features

import (
	"fmt"
	"math"
)

// Counter is a per-bucket count kept for each visitor.
type Counter uint8

// The counters, in the order of the stored bucket encoding: never renumber.
const (
	CountRequests  Counter = iota // every accepted request
	Count4xx                      // responses with status 400 to 499
	CountNonGET                   // requests whose method is not GET
	CountNoReferer                // requests without a referer
	CountAssets                   // requests for static files (IsAsset)
	// CountSameSecond counts requests sent in the same second as the
	// visitor's request before them in the bucket.
	CountSameSecond
	NumCounters = iota
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

func (c Counter) String() string {
	switch c {
	case CountRequests:
		return "requests"
	case Count4xx:
		return "4xx"
	case CountNonGET:
		return "non_get"
	case CountNoReferer:
		return "no_referer"
	case CountAssets:
		return "assets"
	case CountSameSecond:
		return "same_second"
	}
	return fmt.Sprintf("counter(%d)", uint8(c))
}

func (s Sketch) String() string {
	switch s {
	case SketchPaths:
		return "paths"
	case SketchUserAgents:
		return "user_agents"
	case SketchQueryShapes:
		return "query_shapes"
	case SketchIPs:
		return "ips"
	}
	return fmt.Sprintf("sketch(%d)", uint8(s))
}

// Aggregate is a visitor's behaviour over one window: the counters summed
// over its buckets and the distinct counts of the sketches merged over them.
type Aggregate struct {
	Counts   [NumCounters]uint64
	Distinct [NumSketches]uint64
}

// FeatureNames returns the names of the scored features in Vector order,
// with distinct IPs last when ips is true (fingerprint identities).
func FeatureNames(ips bool) []string {
	names := []string{
		"log1p_requests",
		"share_new_paths",
		"share_new_user_agents",
		"share_new_query_shapes",
		"share_no_referer",
		"share_4xx",
		"share_non_get",
		"share_assets",
		"share_same_second",
	}
	if ips {
		names = append(names, "log1p_distinct_ips")
	}
	return names
}

// Vector appends the scored features of a (see the package doc for their
// definitions) to dst[:0] and returns it; it does not allocate when dst has
// room for them.
func (a *Aggregate) Vector(dst []float64, ips bool) []float64 {
	req := a.Counts[CountRequests]
	dst = append(dst[:0],
		math.Log1p(float64(req)),
		share(a.Distinct[SketchPaths], req),
		share(a.Distinct[SketchUserAgents], req),
		share(a.Distinct[SketchQueryShapes], req),
		share(a.Counts[CountNoReferer], req),
		share(a.Counts[Count4xx], req),
		share(a.Counts[CountNonGET], req),
		share(a.Counts[CountAssets], req),
		share(a.Counts[CountSameSecond], req),
	)
	if ips {
		dst = append(dst, math.Log1p(float64(a.Distinct[SketchIPs])))
	}
	return dst
}

// share is part/total, at most 1 (a distinct-count estimate can exceed the
// requests it counts), and 0 for an empty window.
func share(part, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return float64(min(part, total)) / float64(total)
}
