// Package features defines what the detector knows of each visitor: it
// decodes request events, derives the visitor's identity, and defines the
// features of a visitor's sliding window that pkg/hbos scores.
//
// The path of one request: a [Decoder] turns its JSON into an [Event] (with
// Logpush field names, or others through a [FieldMap]); an [Observer] turns
// the Event into a fixed-size [Observation] (site id, keyed visitor id from
// an [Identity], window bucket, flags and value hashes); a store of
// pkg/featurestore folds batches of Observations into window buckets; and
// when the [Recency] register says the visitor is due, the store returns
// the window's [Aggregate], whose [Aggregate.Vector] is scored. This
// package has no I/O: the baseline service and the publisher use its
// schema without linking Redis or HyperLogLog code.
//
// # Window
//
// A visitor's window is the newest [Window.Buckets] buckets of
// [Window.Width] each (default 10 x 1 minute), in event time: the bucket of a
// request is its EdgeStartTimestamp, in Unix seconds, divided by the width. A
// store's window ends at the newest bucket it has seen: a late request whose
// bucket is still inside it is accepted, one older is counted and dropped.
//
// # Features
//
// Each bucket of a store keeps the counters ([CounterDef]) and the
// HyperLogLog sketches ([SketchDef]) of a (site, visitor). Over a window the
// counters are summed and the sketches merged, and [Aggregate.Vector] turns the result into the scored features
// of a feature [Set] (the optional features an identity adds). One schema
// in features.go defines the counters ([CounterDef]), the sketches
// ([SketchDef]) and the features ([Schema]); the vector, the names, the
// bucket aggregation and the baseline service's SQL are derived from it.
// The baseline service computes the same features in SQL, so these
// definitions are exact and are the contract between the two. A share is
// divided by the window's requests, capped at 1, and 0 for no requests;
// log-odds of k of n requests are ln((k + 1/4) / (n - k + 1/4)):
//
//	feature                 definition over the window's requests              transform
//	----------------------  -------------------------------------------------  ---------
//	log1p_requests          number of requests                                 ln(1 + n)
//	share_new_paths         distinct non-empty ClientRequestPath values        share
//	share_new_user_agents   distinct non-empty ClientRequestUserAgent values   share
//	share_new_query_shapes  distinct non-empty query shapes (AppendQueryShape  share
//	                        of ClientRequestURI)
//	logodds_no_referer      requests with an empty ClientRequestReferer        log-odds
//	logodds_4xx             requests with EdgeResponseStatus 400..499          log-odds
//	logodds_non_get         requests whose ClientRequestMethod is not          log-odds
//	                        exactly "GET"
//	logodds_assets          requests for a static file: a ClientRequestPath    log-odds
//	                        with an extension of IsAsset (css, js, png, ...)
//	logodds_same_second     requests sent in the same second (of               log-odds
//	                        EdgeStartTimestamp) as the visitor's request
//	                        before them; for requests in time order, that
//	                        is requests minus their distinct seconds
//	log1p_distinct_ips      distinct ClientIP values; only when the identity   ln(1 + n)
//	                        is a TLS fingerprint (JA3 or JA4)
//
// A distinct count divided by requests is the share of requests that
// brought a value not seen before in the window: a scraper asks for a new
// path every time, a user-agent rotator claims a new browser every time.
// The request count is log1p'd because it is heavy-tailed and HBOS bins it
// with equal widths.
//
// Distinct counts are HyperLogLog estimates in the detector and may be
// exact counts in SQL; the difference is the sketch's error. The detector
// counts logodds_same_second in the order a visitor's requests arrive, which
// is their order in its Kafka partition, and the SQL in time order; the two
// differ only where the edge logged a visitor's requests out of order
// across a second's boundary.
//
// When the distinct counts were scored as counts, a busy address shared by
// many people (an office, a carrier's NAT) was unusual on four features at
// once, and such addresses made most of the false positives; as shares,
// they look like the people behind them. The kinds of request (no
// referer, 4xx, not GET, static files, same second) are scored as
// log-odds instead: a share says the same of one request without a static
// file as of five hundred, and HBOS, which scores each feature alone,
// could not tell a person's short visit from a crawler that never loads
// one; the log-odds of the second are far out. The prior keeps short
// windows near the middle. logodds_assets and logodds_same_second
// describe how a browser fetches: the styles, scripts and images of each
// page it shows, most within a second of the page. Referers are only
// counted when missing: distinct referers mostly repeat the distinct
// paths.
package features
