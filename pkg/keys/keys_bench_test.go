package keys

import (
	"fmt"
	"strconv"
	"testing"
)

// Realistic values for one visitor and window bucket.
const (
	benchSite    = "shop.example.com"
	benchIP      = "203.0.113.77"
	benchFeature = "distinct_paths"
	benchBucket  = 29384000 // unix minute
)

// textFeatures are the per-bucket features of the readable scheme, one key
// each: four HyperLogLog sketches and three counters. The binary scheme
// stores all of them under one key.
var textFeatures = []string{
	"distinct_paths", "distinct_user_agents", "distinct_referers", "distinct_query_shapes",
	"requests", "4xx", "non_get",
}

// appendText builds a human-readable key of the kind the binary one replaces,
// with the same Redis Cluster property (site and visitor inside the hash
// tag): ad:{shop.example.com:203.0.113.77}:distinct_paths:29384000.
func appendText(dst []byte, site, ip, feature string, bucket uint32) []byte {
	dst = append(dst, "ad:{"...)
	dst = append(dst, site...)
	dst = append(dst, ':')
	dst = append(dst, ip...)
	dst = append(dst, "}:"...)
	dst = append(dst, feature...)
	dst = append(dst, ':')
	return strconv.AppendUint(dst, uint64(bucket), 10)
}

// appendTextBucket appends all the readable keys of one visitor-bucket.
func appendTextBucket(dst []byte, site, ip string, bucket uint32) []byte {
	for _, f := range textFeatures {
		dst = appendText(dst, site, ip, f, bucket)
	}
	return dst
}

// BenchmarkKey compares the binary key with the readable scheme. Every row
// reports its scheme's bytes/key (one key: the binary key, or the readable
// distinct_paths key) and key-bytes/bucket (all the keys of one
// visitor-bucket: 1 binary key, or one readable key per feature).
func BenchmarkKey(b *testing.B) {
	k := Key{Kind: KindBucket, Site: SiteID(benchSite), Visitor: 0x5be0c0ffee0d15ea, Bucket: benchBucket}
	bin := k.Append(nil)
	text := appendText(nil, benchSite, benchIP, benchFeature, benchBucket)
	textBucket := appendTextBucket(nil, benchSite, benchIP, benchBucket)

	type scheme struct{ key, bucket int }
	binary := scheme{len(bin), len(bin)} // one key holds every feature
	readable := scheme{len(text), len(textBucket)}

	benchmarks := []struct {
		name   string
		scheme scheme
		fn     func(buf []byte) []byte
	}{
		{"scheme=binary/op=append", binary, func(buf []byte) []byte { return k.Append(buf[:0]) }},
		{"scheme=binary/op=decode", binary, func(buf []byte) []byte {
			if _, err := Decode(bin); err != nil {
				panic(err) // not b.Fatal: this closure runs inside a sub-benchmark
			}
			return buf
		}},
		{"scheme=binary/op=siteid+append", binary, func(buf []byte) []byte {
			k := k
			k.Site = SiteID(benchSite)
			return k.Append(buf[:0])
		}},
		{"scheme=text/op=append", readable, func(buf []byte) []byte {
			return appendText(buf[:0], benchSite, benchIP, benchFeature, benchBucket)
		}},
		{"scheme=text/op=append-bucket", readable, func(buf []byte) []byte {
			return appendTextBucket(buf[:0], benchSite, benchIP, benchBucket)
		}},
		{"scheme=text/op=sprintf", readable, func(buf []byte) []byte {
			return append(buf[:0], fmt.Sprintf("ad:{%s:%s}:%s:%d", benchSite, benchIP, benchFeature, benchBucket)...)
		}},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 512)
			for b.Loop() {
				buf = bm.fn(buf)
			}
			b.ReportMetric(float64(bm.scheme.key), "bytes/key")
			b.ReportMetric(float64(bm.scheme.bucket), "key-bytes/bucket")
		})
	}
}
