// Package keys encodes the Redis keys that hold anomalyd's per-visitor state
// as compact, fixed-size binary strings, and decodes them for debugging.
//
// # Why binary keys
//
// The reference system (Cloudflare's anomaly detection platform) cut Redis
// memory by about 30% and saved CPU by replacing human-readable keys with
// binary ones. A readable key such as
//
//	ad:{shop.example.com:203.0.113.77}:distinct_paths:29384000
//
// is 58 bytes and grows with the host name; the binary key is always 26
// bytes. Redis 7 keeps any key of up to 30 bytes in a single 32-byte
// allocation, so the version, kind and tag bytes below cost no memory.
// MEMORY USAGE on Redis 7.0 reports 72 instead of 104 bytes for a counter
// and 120 instead of 152 for a small HyperLogLog. A shorter key is also
// cheaper to hash, compare and send, and it never holds a raw IP: the
// visitor id is a keyed hash computed by the caller.
//
// # Byte layout (version 1)
//
// Every key is [Size] = 26 bytes. Integers are big-endian, so the keys of one
// visitor, kind and feature sort by window bucket.
//
//	offset size field    value
//	------ ---- -------- ---------------------------------------------------
//	     0    1 version  [Version] = 0x01; a future layout gets a new value
//	     1    1 kind     [KindHLL] 0x01, [KindCounter] 0x02, [KindRecency] 0x03
//	     2    1 '{'      0x7B, opens the Redis Cluster hash tag
//	     3    1 tag      0x80 | 7 bits mixed from site and visitor (see below)
//	     4    8 site     site id, uint64 big-endian (see [SiteID])
//	    12    8 visitor  visitor id, uint64 big-endian (keyed hash, computed elsewhere)
//	    20    1 '}'      0x7D, closes the hash tag
//	    21    1 feature  feature id: 0..[MaxFeature] for hll and counter, 0 for recency
//	    22    4 bucket   window bucket, uint32 big-endian: window start unix
//	                     seconds / bucket width; 0 for recency
//
// The recency register has one key per (site, visitor), so its feature and
// bucket bytes are zero and [Decode] rejects non-zero ones. One fixed length
// keeps Append and Decode simple and lets callers use a [Size]-byte buffer; a
// shorter recency key would land in the same 32-byte allocation and save
// nothing.
//
// # Redis Cluster hash tag
//
// Redis Cluster hashes only the bytes between the first '{' and the first '}'
// after it, if that span is not empty. All keys of one (site, visitor) must
// share a slot so that multi-key PFCOUNT, MULTI and per-visitor pipelines work.
// The layout guarantees it:
//
//   - Bytes 0 and 1 are never 0x7B (no version or kind uses that value), so
//     the first '{' is always byte 2.
//   - Byte 3 has its high bit set, so it is never '}' and the tag is never
//     empty.
//   - Site and visitor are binary and may contain 0x7D, which ends the tag
//     early. The tag is then a shorter prefix of the same bytes, which is still
//     the same for every kind, feature and bucket of that (site, visitor).
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
