// Package keys encodes the Redis keys that hold anomalyd's per-visitor state
// as compact, fixed-size binary strings, and decodes them for debugging.
//
// The feature store keeps one Redis string per (site, visitor, window bucket)
// that holds all of that bucket's counters and HyperLogLog sketches as one
// encoded value; this package names that string. The recency register lives
// in the detector process, not in Redis, so it has no key.
//
// # Why binary keys
//
// The reference system (Cloudflare's anomaly detection platform) cut Redis
// memory by about 30% and saved CPU by replacing human-readable keys with
// binary ones. A readable scheme needs one key per feature per bucket, such
// as
//
//	ad:{shop.example.com:203.0.113.77}:distinct_paths:29384000
//
// which is 58 bytes and grows with the host name; seven of them (four
// sketches, three counters) take 398 bytes of key per visitor and bucket.
// The binary scheme has one key per bucket holding all features, always 25
// bytes, and every Redis key costs memory beyond its own bytes.
//
// Measured with MEMORY USAGE on Redis 7.0.15: a counter takes 104 bytes
// under the 58-byte readable key and 72 under a key of 20, 22, 25 or 30
// bytes alike (88 from 31 bytes), so the version, kind and tag bytes of the
// 25-byte key cost no memory. The seven readable keys of one visitor and bucket, holding four
// one-element HyperLogLogs and three counters, take 968 bytes together; one
// binary key holding a 108-byte value (the size of those sketches and
// counters side by side) takes 184. Over 65536 visitor-buckets used_memory
// grew by 1037 and 200 bytes per visitor-bucket respectively.
//
// A shorter key is also cheaper to hash, compare and send, and it never holds
// a raw IP: the visitor id is a keyed hash computed by the caller.
//
// # Byte layout (version 1)
//
// Every key is [Size] = 25 bytes. Integers are big-endian, so the keys of one
// (site, visitor) sort by window bucket.
//
//	offset size field    value
//	------ ---- -------- ---------------------------------------------------
//	     0    1 version  [Version] = 0x01; a future layout gets a new value
//	     1    1 kind     [KindBucket] = 0x01
//	     2    1 '{'      0x7B, opens the Redis Cluster hash tag
//	     3    1 tag      0x80 | 7 bits mixed from site and visitor (see below)
//	     4    8 site     site id, uint64 big-endian (see [SiteID])
//	    12    8 visitor  visitor id, uint64 big-endian (keyed hash, computed elsewhere)
//	    20    1 '}'      0x7D, closes the hash tag
//	    21    4 bucket   window bucket, uint32 big-endian: window start unix
//	                     seconds / bucket width
//
// There is one kind today; the kind byte stays so that a future kind can
// share the layout. Every site, visitor and bucket value is valid, so
// [Decode] checks only the version, length, kind and hash tag. One fixed
// length keeps Append and Decode simple and lets callers use a [Size]-byte
// buffer.
//
// # Redis Cluster hash tag
//
// Redis Cluster hashes only the bytes between the first '{' and the first '}'
// after it, if that span is not empty. All keys of one (site, visitor) must
// share a slot so that multi-key reads of a visitor's window (MGET of its
// buckets), MULTI and per-visitor pipelines work. The layout guarantees it:
//
//   - Bytes 0 and 1 are never 0x7B (no version or kind uses that value), so
//     the first '{' is always byte 2.
//   - Byte 3 has its high bit set, so it is never '}' and the tag is never
//     empty.
//   - Site and visitor are binary and may contain 0x7D, which ends the tag
//     early. The tag is then a shorter prefix of the same bytes, which is still
//     the same for every kind and bucket of that (site, visitor).
//
// Byte 3 is not a constant because of that early end: if site byte 0 is 0x7D,
// the tag is byte 3 alone. A constant there would put every visitor of such a
// site (1 site in 256) in one slot; mixing in the visitor spreads them over
// 128 slots. [Decode] checks the byte, which also catches most corrupt keys.
//
// # Stability
//
// The layout, the tag byte mix and [SiteID] are part of the stored data:
// changing any of them orphans every key in Redis. A new layout must use a
// new [Version] value (never 0x7B) so that old and new keys can coexist while
// the old ones expire.
package keys
