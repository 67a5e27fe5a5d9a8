// Package features is the detector's memory of each visitor: it decodes
// request events, derives the visitor's identity, and aggregates the
// visitor's requests over a sliding window into the feature vector that
// pkg/hbos scores.
//
// # Window
//
// A visitor's window is the newest [Window.Buckets] buckets of
// [Window.Width] each (default 10 x 1 minute), in event time: the bucket of a
// request is its EdgeStartTimestamp, in Unix seconds, divided by the width. A
// late request whose bucket is still in the window is accepted; one older
// than the window is counted and dropped.
//
// # Features
//
// Each bucket keeps three counters and up to five HyperLogLog sketches per
// (site, visitor). Over a window the counters are summed and the sketches
// merged, and [Aggregate.Vector] turns the result into the scored features.
// The baseline service computes the same features in SQL, so these
// definitions are exact and are the contract between the two:
//
//	feature                       definition over the window's requests           transform
//	----------------------------  ----------------------------------------------  ---------
//	log1p_requests                number of requests                              ln(1 + n)
//	log1p_distinct_paths          distinct non-empty ClientRequestPath values     ln(1 + n)
//	log1p_distinct_user_agents    distinct non-empty ClientRequestUserAgent       ln(1 + n)
//	log1p_distinct_referers       distinct non-empty ClientRequestReferer         ln(1 + n)
//	log1p_distinct_query_shapes   distinct non-empty query shapes (QueryShape)    ln(1 + n)
//	share_4xx                     requests with EdgeResponseStatus 400..499,      none
//	                              divided by requests (0 for no requests)
//	share_non_get                 requests whose ClientRequestMethod is not       none
//	                              exactly "GET", divided by requests
//	log1p_distinct_ips            distinct ClientIP values; only when the         ln(1 + n)
//	                              identity is a TLS fingerprint (JA3 or JA4)
//
// Distinct counts are HyperLogLog estimates in the detector and may be exact
// counts in SQL; the difference is the sketch's error. Counts are log1p'd
// because they are heavy-tailed and HBOS bins them with equal widths; shares
// are already in [0, 1].
package features
