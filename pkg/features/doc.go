// Package features is the detector's memory of each visitor: it decodes
// request events, derives the visitor's identity, and aggregates the
// visitor's requests over a sliding window into the feature vector that
// pkg/hbos scores.
//
// The path of one request: a [Decoder] turns its JSON into an [Event] (with
// Logpush field names, or others through a [FieldMap]); an [Observer] turns
// the Event into a fixed-size [Observation] (site id, keyed visitor id from
// an [Identity], window bucket, flags and value hashes); a [Store] folds
// batches of Observations into window buckets; and when the [Recency]
// register says the visitor is due, [Store.Window] returns its [Aggregate],
// whose [Aggregate.Vector] is scored.
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
// Each bucket keeps four counters and up to five HyperLogLog sketches per
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
//	share_no_referer              requests with an empty ClientRequestReferer,    none
//	                              divided by requests
//	log1p_distinct_query_shapes   distinct non-empty query shapes                 ln(1 + n)
//	                              (AppendQueryShape of ClientRequestURI)
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
// are already in [0, 1]. Referers are scored as a share rather than a
// distinct count: a visitor that never sends one stands out whatever its
// volume, while distinct referers mostly repeat the distinct paths. The
// referer sketch is still kept, for analysis.
//
// # Store
//
// [RedisStore] keeps each (site, visitor, bucket) as one Redis string under
// a pkg/keys key, holding the bucket's counters and its sketches
// (github.com/axiomhq/hyperloglog, precision 12, sparse while small). It
// pre-aggregates in memory: Add folds a batch into the open buckets and
// Flush writes each changed bucket once, in one pipeline, so Redis sees a
// few commands per visitor per flush instead of several per request.
// Windows are merged client-side with axiomhq rather than by multi-key
// PFCOUNT over Redis's own HyperLogLogs, because BenchmarkFeatureStore in
// bench/ shows it better on every count. Its design=pfcount row keeps a
// Redis HLL per sketch per bucket (PFADD per changed sketch per batch,
// compact keys, the same recency register) and reads windows with one
// PFCOUNT per sketch; against it this store used 0.35x the Redis memory,
// 0.23-0.42x the Redis CPU and half the commands per event, and ran 1.5-2.2x
// more events per second. A window read here is one pipelined GET of the
// buckets the store does not remember, and the recency register makes
// reads rare. Redis never runs PFMERGE.
//
// [MemoryStore] is the same without Redis, for tests and single-process use.
package features
