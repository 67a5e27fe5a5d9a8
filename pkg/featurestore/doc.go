// Package featurestore keeps each visitor's window buckets: the counters
// and HyperLogLog sketches of pkg/features' schema, per (site, visitor,
// bucket), from which a window's [features.Aggregate] is read.
//
// [RedisStore] keeps each (site, visitor, bucket) as one Redis string under
// a pkg/keys key, holding the bucket's counters and its sketches
// (github.com/axiomhq/hyperloglog, precision 12, sparse while small). It
// pre-aggregates in memory: Add folds a batch into the open buckets and
// Flush writes each changed bucket once, in one pipeline, so Redis sees a
// few commands per visitor per flush instead of several per request.
// Windows are merged client-side with axiomhq rather than by multi-key
// PFCOUNT over Redis's own HyperLogLogs, because BenchmarkFeatureStore in
// bench/ shows it better on every count: its design=pfcount row keeps a
// Redis HLL per sketch per bucket (PFADD per changed sketch per batch,
// compact keys, the same recency register) and reads windows with one
// PFCOUNT per sketch, and uses several times the Redis memory, CPU and
// commands per event of this store. A window read here is one pipelined
// GET of the buckets the store does not remember, and the recency
// register makes reads rare. Redis never runs PFMERGE.
//
// [MemoryStore] is the same without Redis, for tests and single-process
// use.
package featurestore
