package features

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/anomalyd/anomalyd/internal/testenv"
)

// logpushEvent is a realistic Logpush http_requests event with the 14
// fields a job for the detector would send (timestamp_format unixnano).
const logpushEvent = `{"EdgeStartTimestamp":1763721059123456789,"ZoneName":"shop.example.com",` +
	`"ClientRequestHost":"www.shop.example.com","ClientIP":"203.0.113.77","ClientRequestMethod":"GET",` +
	`"ClientRequestPath":"/products/espresso-machine",` +
	`"ClientRequestURI":"/products/espresso-machine?color=red&utm_source=newsletter&page=2",` +
	`"ClientRequestUserAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",` +
	`"ClientRequestReferer":"https://www.google.com/","EdgeResponseStatus":200,"ClientASN":64496,` +
	`"ClientCountry":"de","JA3Hash":"cd08e31494f9531f560d64c695473da9","RayID":"8e6a1c2b3d4f5a6b"}`

// ecsEvent is an nginx access log as the Elastic Agent nginx integration
// indexes it (ECS, nested objects), with a JA4 added by a TLS terminator.
const ecsEvent = `{
  "@timestamp": "2025-11-21T10:30:59.123Z",
  "agent": {"type": "filebeat", "version": "8.15.0"},
  "ecs": {"version": "8.11.0"},
  "event": {"category": ["web"], "dataset": "nginx.access", "kind": "event", "outcome": "success"},
  "http": {"request": {"method": "POST", "referrer": "https://shop.example.com/cart", "id": "a1b2c3"},
           "response": {"status_code": 302, "body": {"bytes": 0}}, "version": "1.1"},
  "source": {"address": "2001:db8::7", "ip": "2001:db8::7",
             "as": {"number": 64500, "organization": {"name": "Example Net"}},
             "geo": {"country_iso_code": "FR", "city_name": "Paris"}},
  "tls": {"client": {"ja3": "773906b0efdefa24a7f2b8eb6985bf37", "ja4": "t13d1516h2_8daaf6152771_b186095e22b6"}},
  "url": {"domain": "Shop.Example.com", "path": "/checkout", "original": "/checkout?step=2&coupon="},
  "user_agent": {"original": "curl/8.5.0", "name": "curl"}
}`

// ecsLoggingEvent is an ECS document with dotted keys at the top level, as
// the ecs-logging libraries write them.
const ecsLoggingEvent = `{"@timestamp":"2025-11-21T10:30:59Z","log.level":"info","source.ip":"198.51.100.9",` +
	`"url.domain":"api.example.com","http.request.method":"GET","url.path":"/v1/items",` +
	`"http":{"response":{"status_code":404}},"user_agent.original":"python-requests/2.31"}`

// nginxEvent is a line written by NginxFieldMap's log_format.
const nginxEvent = `{"time_iso8601":"2025-11-21T11:30:59+01:00","host":"blog.example.org","remote_addr":"192.0.2.10",` +
	`"request_method":"GET","uri":"/posts/42","request_uri":"/posts/42?ref=rss","status":200,` +
	`"http_user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",` +
	`"http_referer":"","request_id":"5f0c8e3d9a7b4c21"}`

func newDecoder(t testing.TB, m FieldMap) *Decoder {
	t.Helper()
	d, err := NewDecoder(m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// eventText is ev with its byte slices as strings, for comparisons and
// readable failures.
type eventText struct {
	Time                                                            time.Time
	Site                                                            string
	ClientIP                                                        netip.Addr
	Method, Path, URI, UserAgent, Referer, Country, JA3, JA4, RayID string
	Status                                                          uint16
	ASN                                                             uint32
}

func textOf(ev *Event) eventText {
	return eventText{
		Time: ev.Time, Site: ev.Site, ClientIP: ev.ClientIP,
		Method: string(ev.Method), Path: string(ev.Path), URI: string(ev.URI),
		UserAgent: string(ev.UserAgent), Referer: string(ev.Referer), Country: string(ev.Country),
		JA3: string(ev.JA3), JA4: string(ev.JA4), RayID: string(ev.RayID),
		Status: ev.Status, ASN: ev.ASN,
	}
}

func TestDecodeShapes(t *testing.T) {
	tests := []struct {
		name   string
		fields FieldMap
		input  string
		want   eventText
	}{
		{"logpush", DefaultFieldMap(), logpushEvent, eventText{
			Time:     time.Unix(0, 1763721059123456789).UTC(),
			Site:     "shop.example.com",
			ClientIP: netip.MustParseAddr("203.0.113.77"),
			Method:   "GET", Path: "/products/espresso-machine",
			URI:       "/products/espresso-machine?color=red&utm_source=newsletter&page=2",
			UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
			Referer:   "https://www.google.com/", Country: "de", JA3: "cd08e31494f9531f560d64c695473da9",
			RayID: "8e6a1c2b3d4f5a6b", Status: 200, ASN: 64496,
		}},
		{"ecs nested", ECSFieldMap(), ecsEvent, eventText{
			Time:     time.Date(2025, 11, 21, 10, 30, 59, 123e6, time.UTC),
			Site:     "shop.example.com",
			ClientIP: netip.MustParseAddr("2001:db8::7"),
			Method:   "POST", Path: "/checkout", URI: "/checkout?step=2&coupon=",
			UserAgent: "curl/8.5.0", Referer: "https://shop.example.com/cart", Country: "FR",
			JA3: "773906b0efdefa24a7f2b8eb6985bf37", JA4: "t13d1516h2_8daaf6152771_b186095e22b6",
			RayID: "a1b2c3", Status: 302, ASN: 64500,
		}},
		{"ecs dotted keys", ECSFieldMap(), ecsLoggingEvent, eventText{
			Time:     time.Date(2025, 11, 21, 10, 30, 59, 0, time.UTC),
			Site:     "api.example.com",
			ClientIP: netip.MustParseAddr("198.51.100.9"),
			Method:   "GET", Path: "/v1/items", UserAgent: "python-requests/2.31", Status: 404,
		}},
		{"nginx", NginxFieldMap(), nginxEvent, eventText{
			Time:     time.Date(2025, 11, 21, 10, 30, 59, 0, time.UTC),
			Site:     "blog.example.org",
			ClientIP: netip.MustParseAddr("192.0.2.10"),
			Method:   "GET", Path: "/posts/42", URI: "/posts/42?ref=rss",
			UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
			RayID:     "5f0c8e3d9a7b4c21", Status: 200,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDecoder(t, tc.fields)
			var ev Event
			if err := d.Decode([]byte(tc.input), &ev); err != nil {
				t.Fatal(err)
			}
			if got := textOf(&ev); got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if ev.Time.Location() != time.UTC {
				t.Errorf("time zone %v, want UTC", ev.Time.Location())
			}
		})
	}
}

// TestDecodeValues covers the accepted forms of each field, one change to
// a minimal event at a time.
func TestDecodeValues(t *testing.T) {
	ts := time.Date(2025, 11, 21, 10, 30, 59, 0, time.UTC)
	base := eventText{Time: ts, Site: "a.example", ClientIP: netip.MustParseAddr("192.0.2.1")}
	with := func(f func(*eventText)) eventText { e := base; f(&e); return e }
	tests := []struct {
		name  string
		input string // fields added to the minimal event, or replacing its ones
		want  eventText
	}{
		{"minimal", ``, base},
		{"unix ns as digits", `"EdgeStartTimestamp":"1763721059000000000"`, base},
		{"unix seconds (Logpush unix)", `"EdgeStartTimestamp":1763721059`, base},
		{"unix seconds as digits", `"EdgeStartTimestamp":"1763721059"`, base},
		{"unix seconds from 2000", `"EdgeStartTimestamp":946684800`, with(func(e *eventText) { e.Time = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) })},
		{"unix seconds up to 5138", `"EdgeStartTimestamp":99999999999`, with(func(e *eventText) { e.Time = time.Unix(99999999999, 0).UTC() })},
		{"unix ms", `"EdgeStartTimestamp":1763721059123`, with(func(e *eventText) { e.Time = ts.Add(123 * time.Millisecond) })},
		{"unix µs", `"EdgeStartTimestamp":1763721059123456`, with(func(e *eventText) { e.Time = ts.Add(123456 * time.Microsecond) })},
		{"unix fractional seconds", `"EdgeStartTimestamp":1763721059.25`, with(func(e *eventText) { e.Time = ts.Add(250 * time.Millisecond) })},
		{"unix fractional seconds as text (nginx $msec)", `"EdgeStartTimestamp":"1763721059.250"`, with(func(e *eventText) { e.Time = ts.Add(250 * time.Millisecond) })},
		{"unix seconds in exponent form", `"EdgeStartTimestamp":1.763721059e9`, base},
		{"rfc3339 nanos", `"EdgeStartTimestamp":"2025-11-21T10:30:59.000000001Z"`, with(func(e *eventText) { e.Time = ts.Add(1) })},
		{"rfc3339 offset", `"EdgeStartTimestamp":"2025-11-21T12:30:59+02:00"`, base},
		{"site lower-cased", `"ZoneName":"A.Example"`, base},
		{"non-ASCII site kept", `"ZoneName":"ÄB.example"`, with(func(e *eventText) { e.Site = "Äb.example" })},
		{"host when no zone", `"ZoneName":null,"ClientRequestHost":"WWW.a.example"`, with(func(e *eventText) { e.Site = "www.a.example" })},
		{"host when empty zone", `"ZoneName":"","ClientRequestHost":"www.a.example"`, with(func(e *eventText) { e.Site = "www.a.example" })},
		{"zone wins over host", `"ClientRequestHost":"www.a.example"`, base},
		{"ipv4-mapped unmapped", `"ClientIP":"::ffff:192.0.2.1"`, base},
		{"zone dropped", `"ClientIP":"fe80::1%eth0"`, with(func(e *eventText) { e.ClientIP = netip.MustParseAddr("fe80::1") })},
		{"escaped strings", `"ClientRequestPath":"/a\"b\\c\u00e9\/"`, with(func(e *eventText) { e.Path = `/a"b\cé/` })},
		{"escaped key", `"ClientRequest\u004dethod":"GET"`, with(func(e *eventText) { e.Method = "GET" })},
		{"unknown fields ignored", `"Extra":{"x":[1,2,{"y":null}]},"Flag":true`, base},
		{"null optional fields", `"ClientRequestMethod":null,"EdgeResponseStatus":null,"JA3Hash":null`, base},
		{"limits", `"EdgeResponseStatus":999,"ClientASN":4294967295`, with(func(e *eventText) { e.Status, e.ASN = 999, 1<<32-1 })},
		{"zeros", `"EdgeResponseStatus":0,"ClientASN":0`, base},
		{"first duplicate wins", `"ClientRequestMethod":"GET","ClientRequestMethod":"POST"`, with(func(e *eventText) { e.Method = "GET" })},
	}
	d := newDecoder(t, DefaultFieldMap())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ev Event
			if err := d.Decode(minimal(tc.input), &ev); err != nil {
				t.Fatal(err)
			}
			if got := textOf(&ev); got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// minimal returns the smallest valid Logpush event with extra appended.
// Of duplicate keys the first counts, so extra goes first to replace a
// field of the minimal event.
func minimal(extra string) []byte {
	if extra != "" {
		extra += ","
	}
	return []byte(`{` + extra + `"EdgeStartTimestamp":1763721059000000000,"ZoneName":"a.example","ClientIP":"192.0.2.1"}`)
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string // Error() without the "malformed event: " prefix
	}{
		{"empty", ``, `invalid JSON at byte 0: empty document`},
		{"spaces only", " \n\t", `invalid JSON at byte 3: empty document`},
		{"truncated", `{"ZoneName":"a"`, `invalid JSON at byte 15: unexpected end, want ',' or '}'`},
		{"trailing garbage", string(minimal("")) + `x`, `invalid JSON at byte 88: data after the value`},
		{"unterminated string", `{"ZoneName":"a\"}`, `invalid JSON at byte 12: unterminated string`},
		{"no colon", `{"ZoneName" "a"}`, `invalid JSON at byte 12: unexpected '"', want ':'`},
		{"unquoted key", `{ZoneName:"a"}`, `invalid JSON at byte 1: unexpected 'Z', want a key`},
		{"trailing comma", `{"ZoneName":"a",}`, `invalid JSON at byte 16: unexpected '}', want a key`},
		{"bad literal", string(minimal(`"Flag":nul`)), `invalid JSON at byte 8: want null`},
		{"no value", `{"ZoneName":}`, `invalid JSON at byte 12: unexpected '}', want a value`},
		{"error in an unmapped value", string(minimal(`"Extra":{"x":[1,,2]}`)), `invalid JSON at byte 17: unexpected ',', want a value`},
		{"unclosed array in an unmapped value", `{"Extra":[1,2}`, `invalid JSON at byte 13: unexpected '}', want ',' or ']'`},
		{"array", `[1]`, `want a JSON object, got array`},
		{"string", `"x"`, `want a JSON object, got string`},
		{"no time", `{"ZoneName":"a","ClientIP":"192.0.2.1"}`, `field "EdgeStartTimestamp": missing`},
		{"null time", `{"EdgeStartTimestamp":null,"ZoneName":"a","ClientIP":"192.0.2.1"}`, `field "EdgeStartTimestamp": missing`},
		{"no site", `{"EdgeStartTimestamp":1763721059000000000,"ClientIP":"192.0.2.1"}`, `field "ZoneName": missing, and so is "ClientRequestHost"`},
		{"empty site", `{"EdgeStartTimestamp":1763721059000000000,"ZoneName":"","ClientRequestHost":"","ClientIP":"192.0.2.1"}`, `field "ZoneName": missing, and so is "ClientRequestHost"`},
		{"no ip", `{"EdgeStartTimestamp":1763721059000000000,"ZoneName":"a"}`, `field "ClientIP": missing`},
		{"empty ip", string(minimal(`"ClientIP":""`)), `field "ClientIP": missing`},
		{"bad ip", string(minimal(`"ClientIP":"192.0.2.300"`)), `field "ClientIP": not an IP address: "192.0.2.300"`},
		{"ip with port", string(minimal(`"ClientIP":"192.0.2.1:443"`)), `field "ClientIP": not an IP address: "192.0.2.1:443"`},
		{"ip number", string(minimal(`"ClientIP":3221225985`)), `field "ClientIP": want a string, got number`},
		{"time object", string(minimal(`"EdgeStartTimestamp":{}`)), `field "EdgeStartTimestamp": want an RFC 3339 string or a Unix time, got object`},
		{"time float beyond seconds", string(minimal(`"EdgeStartTimestamp":1.7637210590e18`)), `field "EdgeStartTimestamp": want a Unix time in seconds, milliseconds, microseconds or nanoseconds, got "1.7637210590e18"`},
		{"time negative float", string(minimal(`"EdgeStartTimestamp":-1.5`)), `field "EdgeStartTimestamp": want a Unix time in seconds, milliseconds, microseconds or nanoseconds, got "-1.5"`},
		{"time text", string(minimal(`"EdgeStartTimestamp":"yesterday"`)), `field "EdgeStartTimestamp": want an RFC 3339 time or a Unix time, got "yesterday"`},
		{"time digits overflow", string(minimal(`"EdgeStartTimestamp":"99999999999999999999"`)), `field "EdgeStartTimestamp": want an RFC 3339 time or a Unix time, got "99999999999999999999"`},
		{"time decimal beyond seconds", string(minimal(`"EdgeStartTimestamp":"176372105900.5"`)), `field "EdgeStartTimestamp": want an RFC 3339 time or a Unix time, got "176372105900.5"`},
		{"time before 2000 in seconds", string(minimal(`"EdgeStartTimestamp":946684799`)), `field "EdgeStartTimestamp": 1999-12-31T23:59:59Z is before 2000`},
		{"time negative", string(minimal(`"EdgeStartTimestamp":-1763721059`)), `field "EdgeStartTimestamp": 1914-02-10T13:29:01Z is before 2000`},
		{"time zero", string(minimal(`"EdgeStartTimestamp":"0001-01-01T00:00:00Z"`)), `field "EdgeStartTimestamp": 0001-01-01T00:00:00Z is before 2000`},
		{"site number", string(minimal(`"ZoneName":1`)), `field "ZoneName": want a string, got number`},
		{"site too long", string(minimal(`"ZoneName":"` + strings.Repeat("a", 256) + `"`)), `field "ZoneName": 256 bytes, want at most 255`},
		{"status string", string(minimal(`"EdgeResponseStatus":"200"`)), `field "EdgeResponseStatus": want a number, got string`},
		{"status object", string(minimal(`"EdgeResponseStatus":{"code":200}`)), `field "EdgeResponseStatus": want a number, got object`},
		{"status boolean", string(minimal(`"EdgeResponseStatus":true`)), `field "EdgeResponseStatus": want a number, got boolean`},
		{"status fraction", string(minimal(`"EdgeResponseStatus":200.5`)), `field "EdgeResponseStatus": want an integer from 0 to 999, got "200.5"`},
		{"status negative", string(minimal(`"EdgeResponseStatus":-1`)), `field "EdgeResponseStatus": want an integer from 0 to 999, got "-1"`},
		{"status too big", string(minimal(`"EdgeResponseStatus":1000`)), `field "EdgeResponseStatus": want an integer from 0 to 999, got "1000"`},
		{"asn too big", string(minimal(`"ClientASN":4294967296`)), `field "ClientASN": want an integer from 0 to 4294967295, got "4294967296"`},
		{"ua array", string(minimal(`"ClientRequestUserAgent":["x"]`)), `field "ClientRequestUserAgent": want a string, got array`},
		{"long value cut", string(minimal(`"ClientIP":"` + strings.Repeat("9", 100) + `"`)), `field "ClientIP": not an IP address: "` + strings.Repeat("9", 64) + `"...`},
	}
	d := newDecoder(t, DefaultFieldMap())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ev Event
			err := d.Decode([]byte(tc.input), &ev)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want ErrMalformed", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T, want *FieldError", err)
			}
			if got := strings.TrimPrefix(err.Error(), "malformed event: "); got != tc.want {
				t.Errorf("error\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestDecodeNested(t *testing.T) {
	m := DefaultFieldMap()
	m.IP, m.ASN, m.Site = "client.ip", "client.as.number", "site"
	tests := []struct {
		name, input string
		wantIP      string // "" for an error
		wantASN     uint32
	}{
		{"nested", `{"client":{"ip":"192.0.2.1","as":{"number":7}}}`, "192.0.2.1", 7},
		{"dotted", `{"client.ip":"192.0.2.1","client.as.number":7}`, "192.0.2.1", 7},
		{"mixed", `{"client":{"ip":"192.0.2.1","as.number":7}}`, "192.0.2.1", 7},
		{"literal wins", `{"client.ip":"192.0.2.1","client":{"ip":"192.0.2.2"}}`, "192.0.2.1", 0},
		{"nested after a non-object", `{"client.as":1,"client":{"ip":"192.0.2.1","as":{"number":7}}}`, "192.0.2.1", 7},
		{"not an object", `{"client":"192.0.2.1"}`, "", 0},
		{"too shallow", `{"client":{"as":7,"ip":"192.0.2.1"}}`, "192.0.2.1", 0},
	}
	d := newDecoder(t, m)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			input := `{"EdgeStartTimestamp":1763721059000000000,"site":"a",` + tc.input[1:]
			var ev Event
			err := d.Decode([]byte(input), &ev)
			if tc.wantIP == "" {
				if err == nil || !strings.Contains(err.Error(), `field "client.ip": missing`) {
					t.Fatalf("error %v, want client.ip missing", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.ClientIP.String() != tc.wantIP || ev.ASN != tc.wantASN {
				t.Errorf("ip %v asn %d, want %s %d", ev.ClientIP, ev.ASN, tc.wantIP, tc.wantASN)
			}
		})
	}
}

// TestDecoderReuse checks the lifetime rules: Decode copies its input, and
// the next Decode replaces every field.
func TestDecoderReuse(t *testing.T) {
	d := newDecoder(t, DefaultFieldMap())
	data := []byte(logpushEvent)
	var ev Event
	if err := d.Decode(data, &ev); err != nil {
		t.Fatal(err)
	}
	want := textOf(&ev)
	for i := range data {
		data[i] = ' ' // the caller reuses its buffer
	}
	if got := textOf(&ev); got != want {
		t.Fatalf("event changed with the input buffer:\n got %+v\nwant %+v", got, want)
	}
	if err := d.Decode(minimal(""), &ev); err != nil {
		t.Fatal(err)
	}
	if got := textOf(&ev); got.UserAgent != "" || got.Status != 0 || got.JA3 != "" {
		t.Errorf("fields of the previous event remain: %+v", got)
	}
	if err := d.Decode([]byte(`{}`), &ev); err == nil {
		t.Fatal("no error for an empty object")
	}
	if err := d.Decode([]byte(logpushEvent), &ev); err != nil {
		t.Fatalf("after an error: %v", err)
	}
}

func TestDecodeAllocs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields FieldMap
		input  string
	}{
		{"logpush", DefaultFieldMap(), logpushEvent},
		{"ecs", ECSFieldMap(), ecsEvent},
		{"nginx", NginxFieldMap(), nginxEvent},
	} {
		d := newDecoder(t, tc.fields)
		data := []byte(tc.input)
		var ev Event
		if n := testing.AllocsPerRun(100, func() {
			if err := d.Decode(data, &ev); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: Decode allocates %v times", tc.name, n)
		}
	}
}

// TestSiteCache checks that the site cache stays bounded and correct when
// it starts over.
func TestSiteCache(t *testing.T) {
	d := newDecoder(t, DefaultFieldMap())
	var ev Event
	for i := range maxSites + 10 {
		site := fmt.Sprintf("Site-%d.Example", i)
		if err := d.Decode(minimal(`"ZoneName":"`+site+`"`), &ev); err != nil {
			t.Fatal(err)
		}
		if want := strings.ToLower(site); ev.Site != want {
			t.Fatalf("site %q, want %q", ev.Site, want)
		}
	}
	if len(d.sites) > maxSites {
		t.Errorf("%d cached sites, want at most %d", len(d.sites), maxSites)
	}
}

func TestParseFieldMap(t *testing.T) {
	nginxSite := NginxFieldMap()
	nginxSite.Site = "server_name"
	custom := DefaultFieldMap()
	custom.Site, custom.Host, custom.IP, custom.Time, custom.JA3 = "host", "", "remote_addr", "time_iso8601", ""
	tests := []struct {
		in   string
		want FieldMap
	}{
		{"logpush", DefaultFieldMap()},
		{"ecs", ECSFieldMap()},
		{"nginx", NginxFieldMap()},
		{"nginx,site=server_name", nginxSite},
		{"site=host,host=,ip=remote_addr,time=time_iso8601,ja3=", custom},
	}
	for _, tc := range tests {
		got, err := ParseFieldMap(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
		// String is a flag value that parses back to the same map.
		if back, err := ParseFieldMap(got.String()); err != nil || back != got {
			t.Errorf("%q: String %q parses to %+v, %v", tc.in, got.String(), back, err)
		}
	}
	errs := []struct{ in, want string }{
		{"", `invalid field map: "": want name=key (or a preset, logpush, ecs or nginx, as the first item)`},
		{"site=host,remote_addr", `invalid field map: "remote_addr": want name=key (or a preset, logpush, ecs or nginx, as the first item)`},
		{"site=host,ecs", `invalid field map: "ecs": want name=key (or a preset, logpush, ecs or nginx, as the first item)`},
		{"useragent=ua", `invalid field map: unknown field "useragent" in "useragent=ua" (fields: time, site, host, ip, method, path, uri, ua, referer, status, asn, country, ja3, ja4, ray)`},
		{"site=a,site=b", `invalid field map: field "site" named twice`},
		{"ip=", `invalid field map: required field ip has no key`},
		{"ecs,time=", `invalid field map: required field time has no key`},
		{"site=,host=", `invalid field map: required field site has no key`},
	}
	for _, tc := range errs {
		_, err := ParseFieldMap(tc.in)
		if !errors.Is(err, ErrFieldMap) || err.Error() != tc.want {
			t.Errorf("%q: error\n got %v\nwant %s", tc.in, err, tc.want)
		}
	}
	if _, err := NewDecoder(FieldMap{Site: "s", IP: "i"}); !errors.Is(err, ErrFieldMap) {
		t.Errorf("NewDecoder without a time key: %v, want ErrFieldMap", err)
	}
}

func TestFieldMapFlag(t *testing.T) {
	fields := DefaultFieldMap()
	fs := flag.NewFlagSet("detector", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	fs.Var(&fields, "event-fields", "JSON keys of the event fields")
	if err := fs.Parse([]string{"-event-fields", "ecs,ray=trace.id"}); err != nil {
		t.Fatal(err)
	}
	want := ECSFieldMap()
	want.RayID = "trace.id"
	if fields != want {
		t.Errorf("got %+v, want %+v", fields, want)
	}
	if got := fs.Lookup("event-fields").DefValue; got != "logpush" {
		t.Errorf("default shown as %q, want logpush", got)
	}
	if err := fs.Parse([]string{"-event-fields", "nope=x"}); err == nil {
		t.Error("no error for an unknown field")
	}
}

// queryShapeCases are request URIs and their query shapes, one per rule of
// the AppendQueryShape doc.
func queryShapeCases() []struct{ uri, want string } {
	return []struct{ uri, want string }{
		{"/a?b=1&a=2&b=3", "a&b"},
		{"/a", ""},
		{"/a?", ""},
		{"", ""},
		{"?x", "x"},
		{"/a?&&=1&=&", ""},
		{"/a?flag&x=1", "flag&x"},
		{"/a?a=1;b=2", "a"},
		{"/a?a;b=2&c", "a;b&c"},
		{"/a?x=1=2", "x"},
		{"/a?a%5B%5D=1&a[]=2&A=3", "A&a%5B%5D&a[]"},
		{"/a?q=x+y&q+r=1", "q&q+r"},
		{"/a?b=1?c=2&c", "b&c"},
		{"/a?x=1#frag&y", "x&y"},
		{"https://h.example/p?utm_source=n&page=2&color=red", "color&page&utm_source"},
		{"/a?é=1&z=2", "z&é"},
	}
}

func TestAppendQueryShape(t *testing.T) {
	for _, tc := range queryShapeCases() {
		if got := string(AppendQueryShape(nil, []byte(tc.uri))); got != tc.want {
			t.Errorf("AppendQueryShape(%q) = %q, want %q", tc.uri, got, tc.want)
		}
	}
	if got := string(AppendQueryShape([]byte("x:"), []byte("/?b&a"))); got != "x:a&b" {
		t.Errorf("appends to dst: got %q", got)
	}
	uri := []byte("/search?q=espresso&sort=price&page=2&utm_source=newsletter&utm_medium=email&q=again")
	buf := make([]byte, 0, 128)
	if n := testing.AllocsPerRun(100, func() { buf = AppendQueryShape(buf[:0], uri) }); n != 0 {
		t.Errorf("AppendQueryShape allocates %v times", n)
	}
	many := []byte("/?" + strings.Repeat("p=1&", 100) + "z")
	if got := string(AppendQueryShape(nil, many)); got != "p&z" {
		t.Errorf("101 parameters: got %q", got)
	}
}

// queryShapeSQL is the ClickHouse expression of the AppendQueryShape doc,
// with the query taken from a URI bound as the parameter.
const queryShapeSQL = `SELECT arrayStringConcat(arraySort(arrayDistinct(arrayFilter(n -> n != '',
	arrayMap(p -> splitByChar('=', p)[1], splitByChar('&',
	if(position(uri, '?') > 0, substring(uri, position(uri, '?') + 1), '')))))), '&')
	FROM (SELECT ? AS uri)`

// TestQueryShapeClickHouse checks that the SQL in the AppendQueryShape doc
// computes the same shapes on ClickHouse 18.16, so that the baseline
// service and the detector agree.
func TestQueryShapeClickHouse(t *testing.T) {
	_, conn := testenv.ClickHouseConn(t)
	for _, tc := range queryShapeCases() {
		var got string
		if err := conn.QueryRow(t.Context(), queryShapeSQL, tc.uri).Scan(&got); err != nil {
			t.Fatalf("%q: %v", tc.uri, err)
		}
		if want := string(AppendQueryShape(nil, []byte(tc.uri))); got != want {
			t.Errorf("%q: ClickHouse %q, AppendQueryShape %q", tc.uri, got, want)
		}
	}
}

// FuzzDecode: Decode never panics, fails only with a *FieldError, and a
// decoded event has what the detector relies on.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		logpushEvent, ecsEvent, ecsLoggingEvent, nginxEvent, string(minimal("")),
		`{"EdgeStartTimestamp":"2025-11-21T10:30:59+02:00","ClientRequestHost":"A","ClientIP":"::ffff:1.2.3.4"}`,
		`{"EdgeStartTimestamp":"1763721059000000000","ZoneName":"a","ClientIP":"fe80::1%eth0","EdgeResponseStatus":999}`,
		`{"source":{"ip":"1.2.3.4"},"@timestamp":"2025-11-21T10:30:59Z","url.domain":"x"}`,
		`{"a":[`, `[]`, `null`, `{"ZoneName":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	decoders := []*Decoder{newDecoder(f, DefaultFieldMap()), newDecoder(f, ECSFieldMap()), newDecoder(f, NginxFieldMap())}
	var p fastjson.Parser
	f.Fuzz(func(t *testing.T, data []byte) {
		for i, d := range decoders {
			var ev Event
			err := d.Decode(data, &ev)
			if err != nil {
				var fe *FieldError
				if !errors.As(err, &fe) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v (%T) is not a *FieldError", err, err)
				}
				if strings.Contains(err.Error(), "invalid JSON") && !strings.Contains(err.Error(), "nested deeper") && json.Valid(data) {
					t.Fatalf("valid JSON refused: %v", err)
				}
				continue
			}
			if i == 0 {
				sameAsFastjson(t, &p, data, &ev)
			}
			switch {
			case ev.Site == "" || len(ev.Site) > maxSiteLen:
				t.Fatalf("site %q", ev.Site)
			case ev.Site != lowerASCII([]byte(ev.Site)):
				t.Fatalf("site %q is not lower-case", ev.Site)
			case !ev.ClientIP.IsValid() || ev.ClientIP.Is4In6() || ev.ClientIP.Zone() != "":
				t.Fatalf("client IP %v", ev.ClientIP)
			case ev.Time.IsZero() || ev.Time.Unix() < minEventUnix || ev.Time.Location() != time.UTC:
				t.Fatalf("time %v", ev.Time)
			case ev.Status > 999:
				t.Fatalf("status %d", ev.Status)
			}
			_ = AppendQueryShape(nil, ev.URI)
		}
	})
}

// sameAsFastjson checks an event that the Logpush decoder accepted against
// fastjson, the general parser it replaced: the document parses, and the
// string fields have fastjson's values (the first of duplicate keys,
// escapes decoded alike).
func sameAsFastjson(t *testing.T, p *fastjson.Parser, data []byte, ev *Event) {
	t.Helper()
	v, err := p.ParseBytes(data)
	if err != nil {
		t.Fatalf("accepted, but fastjson refuses it: %v", err)
	}
	m := DefaultFieldMap()
	for _, f := range []struct {
		key string
		got []byte
	}{
		{m.Method, ev.Method}, {m.Path, ev.Path}, {m.URI, ev.URI}, {m.UserAgent, ev.UserAgent},
		{m.Referer, ev.Referer}, {m.Country, ev.Country}, {m.JA3, ev.JA3}, {m.JA4, ev.JA4}, {m.RayID, ev.RayID},
	} {
		var want []byte
		if fv := v.Get(f.key); fv != nil && fv.Type() == fastjson.TypeString {
			want, _ = fv.StringBytes()
		}
		if !bytes.Equal(f.got, want) {
			t.Fatalf("%s = %q, fastjson has %q", f.key, f.got, want)
		}
	}
}

// TestDecodeRefusesDeepNesting: an event nested deeper than jsonread.MaxDepth is
// refused as soon as the decoder reaches that depth, with a short reason;
// brackets inside strings and a wide but shallow event are no nesting.
func TestDecodeRefusesDeepNesting(t *testing.T) {
	d, err := NewDecoder(DefaultFieldMap())
	if err != nil {
		t.Fatal(err)
	}
	const ok = `"EdgeStartTimestamp":1767225600,"ZoneName":"a.example","ClientIP":"192.0.2.1"`
	tests := []struct {
		name    string
		data    string
		refused bool
	}{
		{"nested 65 deep", `{` + ok + `,"x":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`, true},
		{"nested 5000 deep", `{` + ok + `,"x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, true},
		{"nested 64 deep", `{` + ok + `,"x":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}`, false},
		{"brackets in a string", `{` + ok + `,"ClientRequestPath":"/` + strings.Repeat("[{", 500) + `"}`, false},
		{"escaped quote, then brackets in the string", `{` + ok + `,"ClientRequestPath":"\"` + strings.Repeat("[", 500) + `"}`, false},
		{"many shallow arrays", `{` + ok + strings.Repeat(`,"x":[1]`, 500) + `}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev Event
			err := d.Decode([]byte(tt.data), &ev)
			if got := err != nil; got != tt.refused {
				t.Fatalf("Decode: %v, want refused %v", err, tt.refused)
			}
			if tt.refused && (!errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "nested deeper than 64") || len(err.Error()) > 100) {
				t.Errorf("reason %.200q, want a short one naming the nesting", err)
			}
		})
	}
}

// TestParseIPv4 checks the fast path against netip.ParseAddr: the same
// address when it takes the input, and nothing netip would refuse.
func TestParseIPv4(t *testing.T) {
	for _, s := range []string{
		"0.0.0.0", "1.2.3.4", "203.0.113.77", "255.255.255.255", "10.0.0.1",
		"256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1.2.3.4 ", "1..3.4", "1.2.3.0004",
		"1.2.3.-4", "a.b.c.d", "::1", "1.2.3.4%eth0", "", "1.2.3.400", "1.2.3.04",
	} {
		ip, ok := parseIPv4([]byte(s))
		want, err := netip.ParseAddr(s)
		switch {
		case ok && (err != nil || ip != want):
			t.Errorf("parseIPv4(%q) = %v, netip.ParseAddr: %v, %v", s, ip, want, err)
		case !ok && err == nil && want.Is4() && want.Zone() == "":
			t.Errorf("parseIPv4(%q) left the plain IPv4 address %v to netip", s, want)
		}
	}
}
