package traffic

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"strings"
	"time"
)

// HostileEvents is the size of the hostile corpus the services' tests
// send, a tenth of it with -short.
const HostileEvents = 1_000_000

// HostileSite is the site of the hostile events that carry one: their
// visitors are never those of other traffic.
const HostileSite = "hostile.example"

// Hostile returns the i-th event of a corpus of malformed and adversarial
// request events, the same for the same seed and i: invalid UTF-8, NUL
// bytes, JSON nested thousands deep, wrong types, duplicate keys, numbers out of
// range, truncated or empty values, random bytes, events of a thousand
// fields, timestamps decades away, and now and then (one in 20,000) a path
// or user agent of a megabyte. A service must refuse each with its reason
// or accept it as a request of HostileSite (or of no site at all), never
// crash, and never let it change the visitors of other traffic. at is the
// event time of the events that have a plausible one.
func Hostile(seed uint64, i int, at time.Time) []byte {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	ip := fmt.Sprintf("203.0.113.%d", rng.IntN(256))
	ts := at.UnixNano()
	valid := func(path, ua string) []byte {
		return fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":%q,"ClientIP":%q,"ClientRequestMethod":"GET","ClientRequestPath":%q,"ClientRequestUserAgent":%q,"EdgeResponseStatus":200}`,
			ts, HostileSite, ip, path, ua)
	}
	if i%20_000 == 19_999 { // a megabyte, in the path or the user agent
		big := strings.Repeat("A", 1<<20)
		if i%40_000 == 39_999 {
			return valid("/", big)
		}
		return valid("/"+big, "x")
	}
	switch rng.IntN(14) {
	case 0: // invalid UTF-8 in strings, raw
		return fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":"%s","ClientIP":%q,"ClientRequestPath":"/\xff\xfe\xc3(","ClientRequestUserAgent":"\xed\xa0\x80"}`, ts, HostileSite, ip)
	case 1: // NUL bytes, escaped and raw
		return fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":"%s","ClientIP":%q,"ClientRequestPath":"/a\u0000b","ClientRequestUserAgent":"x`+"\x00"+`y"}`, ts, HostileSite, ip)
	case 2: // nested deeper than decoders allow (fastjson: 300)
		depth := 301 + rng.IntN(5000)
		return []byte(`{"ZoneName":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + "}")
	case 3: // wrong types
		return [][]byte{
			fmt.Appendf(nil, `{"EdgeStartTimestamp":"yesterday","ZoneName":%q,"ClientIP":%q}`, HostileSite, ip),
			fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":%q,"ClientIP":3405803777}`, ts, HostileSite),
			fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":["%s"],"ClientIP":%q}`, ts, HostileSite, ip),
			fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":%q,"ClientIP":%q,"EdgeResponseStatus":"200","ClientRequestPath":{"a":1}}`, ts, HostileSite, ip),
			fmt.Appendf(nil, `{"EdgeStartTimestamp":true,"ZoneName":null,"ClientIP":false}`),
		}[rng.IntN(5)]
	case 4: // duplicate keys
		return fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":%q,"ZoneName":"other.example","ClientIP":%q,"ClientIP":"not an ip"}`, ts, HostileSite, ip)
	case 5: // numbers out of range
		return [][]byte{
			fmt.Appendf(nil, `{"EdgeStartTimestamp":1e400,"ZoneName":%q,"ClientIP":%q}`, HostileSite, ip),
			fmt.Appendf(nil, `{"EdgeStartTimestamp":-1,"ZoneName":%q,"ClientIP":%q}`, HostileSite, ip),
			fmt.Appendf(nil, `{"EdgeStartTimestamp":1180591620717411303424,"ZoneName":%q,"ClientIP":%q}`, HostileSite, ip),
			fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":%q,"ClientIP":%q,"EdgeResponseStatus":99999999999,"ClientASN":-5}`, ts, HostileSite, ip),
			fmt.Appendf(nil, `{"EdgeStartTimestamp":NaN,"ZoneName":%q,"ClientIP":%q}`, HostileSite, ip),
		}[rng.IntN(5)]
	case 6: // timestamps decades away
		far := at.AddDate(30*(1-2*rng.IntN(2)), 0, 0)
		return fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":%q,"ClientIP":%q,"ClientRequestPath":"/"}`, far.UnixNano(), HostileSite, ip)
	case 7: // truncated
		v := valid("/t", "truncated")
		return v[:rng.IntN(len(v))]
	case 8: // empty, blank, or not an object
		return [][]byte{nil, []byte(" \t"), []byte("null"), []byte(`[1,2,3]`), []byte(`"a string"`), []byte("42")}[rng.IntN(6)]
	case 9: // random bytes
		b := make([]byte, 1+rng.IntN(512))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		return b
	case 10: // a thousand fields
		return fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":%q,"ClientIP":%q%s}`, ts, HostileSite, ip,
			strings.Repeat(`,"f0":0,"f1":[1],"f2":{"a":2},"f3":"3","f4":null,"f5":true,"f6":-6e6,"f7":"","f8":"","f9":9`, 100))
	case 11: // control characters and odd escapes in every string
		return fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":"HOSTILE.example\u0007","ClientIP":%q,"ClientRequestPath":"/\ud800\udfff\\\"","ClientRequestMethod":"G\tET"}`, ts, ip)
	case 12: // an address that is not one
		return fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":%q,"ClientIP":"999.1.1.1%%eth0"}`, ts, HostileSite)
	default: // plausible, for the hostile site: accepted
		return valid(fmt.Sprintf("/%d", rng.IntN(1000)), "hostile/1.0")
	}
}

// HostileAmong yields the events of good in order, each followed by its
// share of n Hostile events of seed, dated at(i) after good[i].
func HostileAmong(good [][]byte, n int, seed uint64, at func(i int) time.Time) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		per := n / max(len(good), 1)
		for i, g := range good {
			if !yield(g) {
				return
			}
			for j := range per {
				if !yield(Hostile(seed, i*per+j, at(i))) {
					return
				}
			}
		}
	}
}
