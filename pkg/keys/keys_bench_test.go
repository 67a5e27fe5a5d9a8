package keys

import (
	"fmt"
	"strconv"
	"testing"
)

// Realistic values for one HLL feature key.
const (
	benchSite    = "shop.example.com"
	benchIP      = "203.0.113.77"
	benchFeature = "distinct_paths"
	benchBucket  = 29384000 // unix minute
)

// appendText builds the human-readable key the binary one replaces, with the
// same Redis Cluster property (site and visitor inside the hash tag):
// ad:{shop.example.com:203.0.113.77}:distinct_paths:29384000.
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

func BenchmarkKey(b *testing.B) {
	k := Key{Kind: KindHLL, Site: SiteID(benchSite), Visitor: 0x5be0c0ffee0d15ea, Feature: 3, Bucket: benchBucket}
	bin := k.Append(nil)
	text := appendText(nil, benchSite, benchIP, benchFeature, benchBucket)

	benchmarks := []struct {
		name string
		size int
		fn   func(buf []byte) []byte
	}{
		{"scheme=binary/op=append", len(bin), func(buf []byte) []byte { return k.Append(buf[:0]) }},
		{"scheme=binary/op=decode", len(bin), func(buf []byte) []byte {
			if _, err := Decode(bin); err != nil {
				panic(err) // not b.Fatal: this closure runs inside a sub-benchmark
			}
			return buf
		}},
		{"scheme=binary/op=siteid+append", len(bin), func(buf []byte) []byte {
			k := k
			k.Site = SiteID(benchSite)
			return k.Append(buf[:0])
		}},
		{"scheme=text/op=append", len(text), func(buf []byte) []byte {
			return appendText(buf[:0], benchSite, benchIP, benchFeature, benchBucket)
		}},
		{"scheme=text/op=sprintf", len(text), func(buf []byte) []byte {
			return append(buf[:0], fmt.Sprintf("ad:{%s:%s}:%s:%d", benchSite, benchIP, benchFeature, benchBucket)...)
		}},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 64)
			for b.Loop() {
				buf = bm.fn(buf)
			}
			b.ReportMetric(float64(bm.size), "bytes/key")
		})
	}
}
