package features

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/anomalyd/anomalyd/internal/jsonread"
)

// Sentinel errors of event decoding and visitor identity. Test for them with
// errors.Is.
var (
	// ErrMalformed is an event that cannot be used: invalid JSON, a missing
	// required field, a value of the wrong type or out of range. Every such
	// error is a *FieldError.
	ErrMalformed = errors.New("malformed event")
	// ErrFieldMap is an unusable field map or field-map flag value.
	ErrFieldMap = errors.New("invalid field map")
	// ErrIdentityMode is an unknown identity mode name.
	ErrIdentityMode = errors.New("unknown identity mode")
	// ErrIdentityKey is a visitor-id secret shorter than MinIdentityKey.
	ErrIdentityKey = errors.New("identity key too short")
	// ErrNoClientIP is an event without a valid client IP under an IP-based
	// identity mode.
	ErrNoClientIP = errors.New("event has no client IP for the visitor identity")
	// ErrNoFingerprint is an event without the TLS fingerprint that the JA3
	// or JA4 identity mode needs (a plain-HTTP request has none).
	ErrNoFingerprint = errors.New("event has no TLS fingerprint for the visitor identity")
)

// Event is one HTTP request, decoded by a [Decoder]. The comments name the
// Cloudflare Logpush http_requests field of each (see [FieldMap] for other
// log shapes).
//
// The byte-slice fields alias the Decoder's buffer: they are valid until the
// next Decode call on the same Decoder, which overwrites them. Copy what you
// keep beyond that (string(ev.Path), bytes.Clone). Site, ClientIP, Time and
// the numbers are values and stay valid.
type Event struct {
	Time      time.Time  // EdgeStartTimestamp, in UTC; required
	Site      string     // ZoneName, else ClientRequestHost; ASCII lower-cased; required
	ClientIP  netip.Addr // ClientIP; IPv4-mapped IPv6 unmapped, zone dropped; required
	Method    []byte     // ClientRequestMethod, as given
	Path      []byte     // ClientRequestPath
	URI       []byte     // ClientRequestURI: path and query, see AppendQueryShape
	UserAgent []byte     // ClientRequestUserAgent
	Referer   []byte     // ClientRequestReferer
	Status    uint16     // EdgeResponseStatus, 0 to 999
	ASN       uint32     // ClientASN
	Country   []byte     // ClientCountry
	JA3       []byte     // JA3Hash
	JA4       []byte     // JA4
	RayID     []byte     // RayID
}

// FieldError says why an event is malformed and which field is at fault. It
// matches ErrMalformed with errors.Is. The detector sends the event to the
// dead-letter topic with Error() as the reason.
type FieldError struct {
	Field  string // the JSON key as mapped (e.g. "ClientIP", "source.ip"); "" for the whole document
	Reason string // e.g. "missing", "want a number, got string"
}

// Error returns the reason with its field, e.g. `malformed event: field
// "ClientIP": missing`.
func (e *FieldError) Error() string {
	if e.Field == "" {
		return "malformed event: " + e.Reason
	}
	return fmt.Sprintf("malformed event: field %q: %s", e.Field, e.Reason)
}

// Unwrap returns ErrMalformed.
func (e *FieldError) Unwrap() error { return ErrMalformed }

// FieldMap names the JSON key that feeds each field of an [Event], so that
// logs of other shapes decode without code changes. An empty key leaves the
// field at its zero value. Its flag syntax (see [ParseFieldMap]) names the
// fields as follows; the defaults are Logpush's:
//
//	flag     Event field  Logpush key (default)   JSON type
//	-------  -----------  ----------------------  -----------------------------------------------
//	time     Time         EdgeStartTimestamp      RFC 3339, or Unix s, ms, µs or ns (number or digits); required
//	site     Site         ZoneName                string; required unless host is set
//	host     Site         ClientRequestHost       string; used when site is absent
//	ip       ClientIP     ClientIP                string, IPv4 or IPv6; required
//	method   Method       ClientRequestMethod     string
//	path     Path         ClientRequestPath       string
//	uri      URI          ClientRequestURI        string
//	ua       UserAgent    ClientRequestUserAgent  string
//	referer  Referer      ClientRequestReferer    string
//	status   Status       EdgeResponseStatus      integer 0 to 999
//	asn      ASN          ClientASN               integer 0 to 4294967295
//	country  Country      ClientCountry           string
//	ja3      JA3          JA3Hash                 string
//	ja4      JA4          JA4                     string
//	ray      RayID        RayID                   string
//
// A key with dots is a path into nested objects: "source.ip" finds
// {"source":{"ip":"..."}}, {"source.ip":"..."} (a literal key wins) and
// mixes such as {"source":{"as.number":1}} for "source.as.number". Of
// duplicate keys in one object the first counts (unless they are spelled
// with different escapes, when either may). JSON null is the same as an
// absent key, and so is an empty string for the required fields.
type FieldMap struct {
	Time, Site, Host, IP, Method, Path, URI, UserAgent, Referer string
	Status, ASN, Country, JA3, JA4, RayID                       string
}

// DefaultFieldMap maps the Cloudflare Logpush http_requests field names.
// Every Logpush timestamp_format decodes: unixnano (the default), unix and
// rfc3339.
func DefaultFieldMap() FieldMap {
	return FieldMap{
		Time: "EdgeStartTimestamp", Site: "ZoneName", Host: "ClientRequestHost", IP: "ClientIP",
		Method: "ClientRequestMethod", Path: "ClientRequestPath", URI: "ClientRequestURI",
		UserAgent: "ClientRequestUserAgent", Referer: "ClientRequestReferer",
		Status: "EdgeResponseStatus", ASN: "ClientASN", Country: "ClientCountry",
		JA3: "JA3Hash", JA4: "JA4", RayID: "RayID",
	}
}

// ECSFieldMap maps Elastic Common Schema documents (Filebeat, Elastic Agent,
// ecs-logging), nested or with dotted keys. The site is url.domain, which
// the nginx and Apache integrations fill from the Host header.
func ECSFieldMap() FieldMap {
	return FieldMap{
		Time: "@timestamp", Site: "url.domain", IP: "source.ip",
		Method: "http.request.method", Path: "url.path", URI: "url.original",
		UserAgent: "user_agent.original", Referer: "http.request.referrer",
		Status: "http.response.status_code", ASN: "source.as.number",
		Country: "source.geo.country_iso_code", JA3: "tls.client.ja3", JA4: "tls.client.ja4",
		RayID: "http.request.id",
	}
}

// NginxFieldMap maps nginx JSON access logs whose keys are the nginx variable
// names, from a log_format such as
//
//	log_format detector escape=json '{"time_iso8601":"$time_iso8601",'
//	    '"host":"$host","remote_addr":"$remote_addr",'
//	    '"request_method":"$request_method","uri":"$uri",'
//	    '"request_uri":"$request_uri","status":$status,'
//	    '"http_user_agent":"$http_user_agent",'
//	    '"http_referer":"$http_referer","request_id":"$request_id"}';
//
// $status must be unquoted: a quoted status is a string, not a number.
func NginxFieldMap() FieldMap {
	return FieldMap{
		Time: "time_iso8601", Site: "host", IP: "remote_addr",
		Method: "request_method", Path: "uri", URI: "request_uri",
		UserAgent: "http_user_agent", Referer: "http_referer",
		Status: "status", RayID: "request_id",
	}
}

// presetFieldMap returns the preset called name in flag values.
func presetFieldMap(name string) (FieldMap, bool) {
	switch name {
	case "logpush":
		return DefaultFieldMap(), true
	case "ecs":
		return ECSFieldMap(), true
	case "nginx":
		return NginxFieldMap(), true
	}
	return FieldMap{}, false
}

// numFields is the number of fields of a FieldMap.
const numFields = 15

// namedKey is a FieldMap field with its flag name.
type namedKey struct {
	name string
	key  *string
}

// named returns m's fields with their flag names, in documentation order.
func (m *FieldMap) named() [numFields]namedKey {
	return [numFields]namedKey{
		{"time", &m.Time}, {"site", &m.Site}, {"host", &m.Host}, {"ip", &m.IP},
		{"method", &m.Method}, {"path", &m.Path}, {"uri", &m.URI}, {"ua", &m.UserAgent},
		{"referer", &m.Referer}, {"status", &m.Status}, {"asn", &m.ASN},
		{"country", &m.Country}, {"ja3", &m.JA3}, {"ja4", &m.JA4}, {"ray", &m.RayID},
	}
}

// ParseFieldMap parses a flag value: comma-separated name=key pairs, for
// example "site=host,ip=remote_addr,time=time_iso8601", optionally after a
// preset (logpush, ecs or nginx) as the first item: "ecs,site=labels.site".
// Fields not named keep the preset's key (Logpush's without a preset);
// "ja3=" with nothing after '=' unmaps a field. Keys cannot contain ','.
func ParseFieldMap(s string) (FieldMap, error) {
	items := strings.Split(s, ",")
	m, ok := presetFieldMap(items[0])
	if ok {
		items = items[1:]
	} else {
		m = DefaultFieldMap()
	}
	fields := m.named()
	var seen [numFields]bool
	for _, item := range items {
		name, key, ok := strings.Cut(item, "=")
		if !ok {
			return FieldMap{}, fmt.Errorf("%w: %q: want name=key (or a preset, logpush, ecs or nginx, as the first item)", ErrFieldMap, item)
		}
		i := slices.IndexFunc(fields[:], func(f namedKey) bool { return f.name == name })
		switch {
		case i < 0:
			return FieldMap{}, fmt.Errorf("%w: unknown field %q in %q (fields: %s)", ErrFieldMap, name, item, fieldNames())
		case seen[i]:
			return FieldMap{}, fmt.Errorf("%w: field %q named twice", ErrFieldMap, name)
		}
		seen[i] = true
		*fields[i].key = key
	}
	if err := m.Validate(); err != nil {
		return FieldMap{}, err
	}
	return m, nil
}

// fieldNames lists the flag names of the fields, for error messages.
func fieldNames() string {
	var m FieldMap
	var names []string
	for _, f := range m.named() {
		names = append(names, f.name)
	}
	return strings.Join(names, ", ")
}

// Validate reports a map that cannot decode any event: one without a key
// for a required field.
func (m FieldMap) Validate() error {
	// The site needs a key of its own or a host key.
	for _, f := range []struct{ name, key string }{{"time", m.Time}, {"site", m.Site + m.Host}, {"ip", m.IP}} {
		if f.key == "" {
			return fmt.Errorf("%w: required field %s has no key", ErrFieldMap, f.name)
		}
	}
	return nil
}

// String returns the flag value of m: a preset name when m is one, else
// every field as name=key.
func (m FieldMap) String() string {
	for _, name := range []string{"logpush", "ecs", "nginx"} {
		if p, _ := presetFieldMap(name); m == p {
			return name
		}
	}
	var b strings.Builder
	for i, f := range m.named() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f.name + "=" + *f.key)
	}
	return b.String()
}

// Set parses a flag value with ParseFieldMap, so that *FieldMap is a
// flag.Value.
func (m *FieldMap) Set(s string) error {
	p, err := ParseFieldMap(s)
	if err != nil {
		return err
	}
	*m = p
	return nil
}

// maxSites bounds a Decoder's cache of site names; beyond it the cache
// starts over. maxSiteLen is the longest site accepted (a DNS name has at
// most 253 bytes), which also bounds the cache's memory.
const (
	maxSites   = 4096
	maxSiteLen = 255
)

// minEventUnix is the earliest timestamp accepted, 2000-01-01T00:00:00Z in
// Unix seconds: anything older is a broken clock or field. The services
// bound event times more tightly against their own clocks.
const minEventUnix = 946684800

// Decoder decodes JSON request events. It keeps its buffers between calls
// so that decoding does not allocate; it is not safe for concurrent use, so
// use one per goroutine.
//
// It reads the JSON with internal/jsonread rather than a general parser:
// the structure of the whole document is checked, but only the values of
// the mapped fields are decoded. BenchmarkDecode compares it with the parsers
// that can look keys up at run time, which the field map needs.
type Decoder struct {
	fields FieldMap
	keys   [numFields]string          // fields' keys, in the order of FieldMap.named
	first  [256]int8                  // by keyHash, the first field with that hash; -1 for none
	next   [numFields]int8            // the next field with the same hash; -1 for none
	dotted bool                       // some key is a path into nested objects
	buf    []byte                     // the event being decoded, which Event's slices alias
	out    []byte                     // unescaped values, which Event's slices alias too
	names  []byte                     // unescaped keys
	vals   [numFields]jsonread.Member // each field's member in the event, where found says
	found  uint16                     // bit f: field f is in the event and not null
	tape   []jsonread.Member          // the members of the event's object, and theirs
	sites  map[string]string          // raw site name -> lower-cased, so Site costs no allocation
}

// The fields in the order of FieldMap.named.
const (
	fTime = iota
	fSite
	fHost
	fIP
	fMethod
	fPath
	fURI
	fUserAgent
	fReferer
	fStatus
	fASN
	fCountry
	fJA3
	fJA4
	fRayID
)

// keyHash spreads keys over the Decoder's table by length and ends.
func keyHash(k []byte) uint8 {
	return uint8(len(k)*131 + int(k[0]) + 7*int(k[len(k)-1]))
}

// NewDecoder returns a Decoder for events shaped as m describes.
func NewDecoder(m FieldMap) (*Decoder, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	d := &Decoder{fields: m, sites: make(map[string]string)}
	for h := range d.first {
		d.first[h] = -1
	}
	for i, f := range m.named() {
		d.keys[i], d.next[i] = *f.key, -1
		if k := *f.key; k != "" {
			h := keyHash([]byte(k))
			d.next[i], d.first[h] = d.first[h], int8(i)
			d.dotted = d.dotted || strings.Contains(k, ".")
		}
	}
	return d, nil
}

// Decode decodes one JSON event from data into *ev, overwriting all of it.
// A malformed event is a *FieldError that matches ErrMalformed, and leaves
// *ev unspecified. Decode copies data, so the caller may reuse data at
// once; ev's byte slices alias the Decoder until the next Decode (see
// [Event]). Unknown keys are ignored. Decode does not allocate on success,
// except for a site name not in its cache of the last few thousand.
func (d *Decoder) Decode(data []byte, ev *Event) error {
	*ev = Event{}
	if err := d.values(data); err != nil {
		return err
	}
	m := &d.fields
	var err error
	if ev.Time, err = timeField(d, d.val(fTime), m.Time); err != nil {
		return err
	}
	if ev.Site, err = d.siteField(d.val(fSite), d.val(fHost)); err != nil {
		return err
	}
	if ev.ClientIP, err = ipField(d, d.val(fIP), m.IP); err != nil {
		return err
	}
	for _, f := range [...]struct {
		field int
		dst   *[]byte
	}{
		{fMethod, &ev.Method}, {fPath, &ev.Path}, {fURI, &ev.URI},
		{fUserAgent, &ev.UserAgent}, {fReferer, &ev.Referer}, {fCountry, &ev.Country},
		{fJA3, &ev.JA3}, {fJA4, &ev.JA4}, {fRayID, &ev.RayID},
	} {
		if *f.dst, err = d.stringField(d.val(f.field), d.keys[f.field]); err != nil {
			return err
		}
	}
	status, err := uintField(d, d.val(fStatus), m.Status, 999)
	if err != nil {
		return err
	}
	asn, err := uintField(d, d.val(fASN), m.ASN, 1<<32-1)
	if err != nil {
		return err
	}
	ev.Status, ev.ASN = uint16(status), uint32(asn)
	return nil
}

// values reads the event's object into d.vals, the member of each field
// that is in it and not null (d.found). A dotted key is looked up as
// lookup says.
func (d *Decoder) values(data []byte) error {
	d.found = 0
	d.buf = append(d.buf[:0], data...)
	d.out, d.names = d.out[:0], d.names[:0]
	b := d.buf
	var start, end int
	var jerr *jsonread.Error
	if d.tape, start, end, jerr = jsonread.Read(d.tape[:0], &d.names, b); jerr != nil {
		return &FieldError{Reason: jerr.Error()}
	}
	if b[start] != '{' {
		return &FieldError{Reason: "want a JSON object, got " + jsonread.Value(b[start:end]).TypeName()}
	}
	// Each member named after a field is that field's, unless an earlier
	// one was; a null one is the field's too, and reads as absent.
	var named uint16
	for k := 0; k < len(d.tape); k = int(d.tape[k].Next) {
		m := &d.tape[k]
		key := d.key(m)
		if len(key) == 0 {
			continue
		}
		for f := d.first[keyHash(key)]; f >= 0; f = d.next[f] {
			if named&(1<<f) == 0 && string(key) == d.keys[f] {
				named |= 1 << f
				d.vals[f] = *m
			}
		}
	}
	if d.dotted {
		for f, key := range d.keys {
			if named&(1<<f) != 0 || !strings.Contains(key, ".") {
				continue
			}
			if m := d.lookup(0, len(d.tape), key, true); m != nil {
				named |= 1 << f
				d.vals[f] = *m
			}
		}
	}
	for f := range d.vals {
		if named&(1<<f) != 0 && d.buf[d.vals[f].ValStart] != 'n' {
			d.found |= 1 << f
		}
	}
	return nil
}

// val is field f's member, nil when the event has none.
func (d *Decoder) val(f int) *jsonread.Member {
	if d.found&(1<<f) == 0 {
		return nil
	}
	return &d.vals[f]
}

// lookup returns the member of key among the members [first, end) of an
// object in d.tape, nil when it is absent or null. A dotted key is tried
// whole first (unless literalDone says the caller has), then split at each
// dot in turn into an object's key and the rest of the path inside that
// object. Of duplicate keys in one object the first counts.
func (d *Decoder) lookup(first, end int, key string, literalDone bool) *jsonread.Member {
	if !literalDone {
		if k := d.firstMember(first, end, key); k >= 0 {
			if m := &d.tape[k]; d.buf[m.ValStart] != 'n' {
				return m
			}
			return nil
		}
	}
	for i := range len(key) {
		if key[i] != '.' {
			continue
		}
		k := d.firstMember(first, end, key[:i])
		if k < 0 || d.buf[d.tape[k].ValStart] != '{' {
			continue
		}
		if m := d.lookup(k+1, int(d.tape[k].Next), key[i+1:], false); m != nil {
			return m
		}
	}
	return nil
}

// firstMember is the index of the first of the members [first, end) of an
// object in d.tape named key, -1 for none.
func (d *Decoder) firstMember(first, end int, key string) int {
	for k := first; k < end; k = int(d.tape[k].Next) {
		if string(d.key(&d.tape[k])) == key {
			return k
		}
	}
	return -1
}

// key is m's key, unescaped.
func (d *Decoder) key(m *jsonread.Member) []byte {
	if m.KeyEscaped {
		return d.names[m.KeyStart:m.KeyEnd]
	}
	return d.buf[m.KeyStart:m.KeyEnd]
}

// value is m's value.
func (d *Decoder) value(m *jsonread.Member) jsonread.Value {
	return jsonread.Value(d.buf[m.ValStart:m.ValEnd:m.ValEnd])
}

// siteField returns the lower-cased site: the site key's value, else the
// host key's.
func (d *Decoder) siteField(site, host *jsonread.Member) (string, error) {
	key := d.fields.Site
	raw, err := d.stringField(site, key)
	if err == nil && len(raw) == 0 && d.fields.Host != "" {
		key = d.fields.Host
		raw, err = d.stringField(host, key)
	}
	switch {
	case err != nil:
		return "", err
	case len(raw) == 0:
		if d.fields.Site != "" && d.fields.Host != "" {
			return "", &FieldError{Field: d.fields.Site, Reason: fmt.Sprintf("missing, and so is %q", d.fields.Host)}
		}
		return "", &FieldError{Field: key, Reason: "missing"}
	case len(raw) > maxSiteLen:
		return "", &FieldError{Field: key, Reason: fmt.Sprintf("%d bytes, want at most %d", len(raw), maxSiteLen)}
	}
	if s, ok := d.sites[string(raw)]; ok {
		return s, nil
	}
	if len(d.sites) >= maxSites {
		clear(d.sites)
	}
	s := lowerASCII(raw)
	d.sites[string(raw)] = s
	return s, nil
}

// lowerASCII lower-cases ASCII letters only, as ClickHouse's lower() does,
// so that the detector and the baseline service agree on site names.
func lowerASCII(b []byte) string {
	var s strings.Builder
	s.Grow(len(b))
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		s.WriteByte(c)
	}
	return s.String()
}

// timeField reads a timestamp in any of Logpush's timestamp formats: an
// RFC 3339 string (with or without fractional seconds), or a Unix time as
// an integer or a string of digits, in seconds, milliseconds, microseconds
// or nanoseconds, told apart by magnitude (see unixTime); a number or
// string with a fraction ("1700000000.25", nginx's $msec) is seconds.
func timeField(d *Decoder, m *jsonread.Member, key string) (time.Time, error) {
	if m == nil {
		return time.Time{}, &FieldError{Field: key, Reason: "missing"}
	}
	v := d.value(m)
	var t time.Time
	switch v.Kind() {
	case '0':
		if n, ok := jsonread.ParseUint(v); ok && n <= math.MaxInt64 {
			t = unixTime(int64(n))
			break
		}
		if n, err := strconv.ParseInt(transient(v), 10, 64); err == nil { // negative
			t = unixTime(n)
			break
		}
		f, ferr := strconv.ParseFloat(transient(v), 64)
		if ferr != nil || !(f >= 0 && f < maxUnixSeconds) {
			return time.Time{}, &FieldError{Field: key, Reason: "want a Unix time in seconds, milliseconds, microseconds or nanoseconds, got " + jsonread.Quote(v)}
		}
		t = fractionalSeconds(f)
	case '"':
		b, _ := d.stringField(m, key)
		var err error
		switch {
		case len(b) > 0 && isDigits(b):
			var n int64
			if n, err = strconv.ParseInt(transient(b), 10, 64); err == nil {
				t = unixTime(n)
			}
		case isDecimal(b):
			var f float64
			if f, err = strconv.ParseFloat(transient(b), 64); err == nil && f >= maxUnixSeconds {
				err = strconv.ErrRange
			}
			t = fractionalSeconds(f)
		default:
			t, err = time.Parse(time.RFC3339, transient(b))
		}
		if err != nil { // the parsers' errors hold b: write our own
			return time.Time{}, &FieldError{Field: key, Reason: "want an RFC 3339 time or a Unix time, got " + jsonread.Quote(b)}
		}
	default:
		return time.Time{}, &FieldError{Field: key, Reason: "want an RFC 3339 string or a Unix time, got " + v.TypeName()}
	}
	if t.Unix() < minEventUnix {
		return time.Time{}, &FieldError{Field: key, Reason: t.UTC().Format(time.RFC3339Nano) + " is before 2000"}
	}
	return t.UTC(), nil
}

// maxUnixSeconds is where Unix seconds end and milliseconds begin in
// unixTime: 1e11 seconds is the year 5138, 1e11 milliseconds 1973. Each
// further unit starts three digits on, so the ranges of present-day times
// in the four units are far apart and a timestamp's unit is never in doubt.
const maxUnixSeconds = 1e11

// unixTime reads n as Unix seconds, milliseconds, microseconds or
// nanoseconds, by magnitude: below 1e11 seconds, below 1e14 milliseconds,
// below 1e17 microseconds, else nanoseconds.
func unixTime(n int64) time.Time {
	switch {
	case n < maxUnixSeconds:
		return time.Unix(n, 0)
	case n < maxUnixSeconds*1e3:
		return time.UnixMilli(n)
	case n < maxUnixSeconds*1e6:
		return time.UnixMicro(n)
	}
	return time.Unix(0, n)
}

// fractionalSeconds is f Unix seconds, to the microsecond (a float64 holds
// no more of a present-day time).
func fractionalSeconds(f float64) time.Time {
	return time.UnixMicro(int64(math.Round(f * 1e6)))
}

// isDecimal reports whether b is digits, a '.', and digits.
func isDecimal(b []byte) bool {
	i := bytes.IndexByte(b, '.')
	return i > 0 && i < len(b)-1 && isDigits(b[:i]) && isDigits(b[i+1:])
}

// ipField reads the client IP, unmapped and without a zone so that one
// client always yields the same address.
func ipField(d *Decoder, m *jsonread.Member, key string) (netip.Addr, error) {
	b, err := d.stringField(m, key)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(b) == 0 {
		return netip.Addr{}, &FieldError{Field: key, Reason: "missing"}
	}
	if ip, ok := parseIPv4(b); ok {
		return ip, nil
	}
	ip, err := netip.ParseAddr(transient(b))
	if err != nil { // the parser's error holds b: write our own
		return netip.Addr{}, &FieldError{Field: key, Reason: "not an IP address: " + jsonread.Quote(b)}
	}
	return ip.Unmap().WithZone(""), nil
}

// parseIPv4 is netip.ParseAddr's fast path for the dotted quads of most
// events: four decimal octets without leading zeros. Anything else is left
// to netip.ParseAddr, false.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var ip [4]byte
	k := 0
	for o := range ip {
		n, digits := 0, 0
		for k < len(b) && b[k] >= '0' && b[k] <= '9' && digits < 3 {
			n = n*10 + int(b[k]-'0')
			k++
			digits++
		}
		if digits == 0 || n > 255 || digits > 1 && b[k-digits] == '0' {
			return netip.Addr{}, false
		}
		ip[o] = byte(n)
		if o < 3 {
			if k == len(b) || b[k] != '.' {
				return netip.Addr{}, false
			}
			k++
		}
	}
	if k != len(b) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}

// stringField reads an optional string, unescaped; nil when absent.
func (d *Decoder) stringField(m *jsonread.Member, key string) ([]byte, error) {
	if m == nil {
		return nil, nil
	}
	v := d.value(m)
	if v.Kind() != '"' {
		return nil, &FieldError{Field: key, Reason: "want a string, got " + v.TypeName()}
	}
	s := v[1 : len(v)-1]
	if !m.ValEscaped {
		return s, nil
	}
	start := len(d.out)
	d.out = jsonread.Unescape(d.out, s)
	return d.out[start:len(d.out):len(d.out)], nil
}

// uintField reads an optional integer from 0 to limit; 0 when absent.
func uintField(d *Decoder, m *jsonread.Member, key string, limit uint64) (uint64, error) {
	if m == nil {
		return 0, nil
	}
	v := d.value(m)
	if v.Kind() != '0' {
		return 0, &FieldError{Field: key, Reason: "want a number, got " + v.TypeName()}
	}
	n, ok := jsonread.ParseUint(v)
	if !ok || n > limit {
		return 0, &FieldError{Field: key, Reason: fmt.Sprintf("want an integer from 0 to %d, got %s", limit, jsonread.Quote(v))}
	}
	return n, nil
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// transient returns b as a string without copying, for a parser that keeps
// no reference to its input once it succeeds (time.Parse, netip.ParseAddr,
// strconv.ParseInt). Their errors do keep it, so callers drop those errors.
// This saves two allocations per event.
func transient(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// AppendQueryShape appends the query-string shape of a request URI to dst
// and returns the extended slice. The shape is the sorted set of the
// query's parameter names, without values, joined by '&':
// "/a?b=1&a=2&b=3" has the shape "a&b". Exactly:
//
//   - The query is everything after the first '?' (none: empty shape). A '#'
//     is an ordinary byte: request URIs carry no fragment.
//   - Parameters are separated by '&' only; ';' is an ordinary byte, so
//     "a=1;b=2" is the one name "a".
//   - A name is the parameter up to its first '=', or all of it without one
//     ("flag" in "?flag&x=1"). Empty names ("?&&", "?=1") are dropped.
//   - Names are compared and kept as raw bytes: no percent-decoding, '+' is
//     not a space, case matters ("a%5B%5D" and "a[]" differ).
//   - Duplicates are removed; names are sorted bytewise (as ClickHouse sorts
//     Strings), then joined by '&' (a name cannot contain '&').
//
// In ClickHouse SQL, with q the query as above, the shape is
//
//	arrayStringConcat(arraySort(arrayDistinct(arrayFilter(n -> n != '',
//	    arrayMap(p -> splitByChar('=', p)[1], splitByChar('&', q))))), '&')
//
// AppendQueryShape does not allocate when dst has room and the query has at
// most 32 parameters.
func AppendQueryShape(dst, uri []byte) []byte {
	i := bytes.IndexByte(uri, '?')
	if i < 0 {
		return dst
	}
	names := make([][]byte, 0, 32)
	for p := range bytes.SplitSeq(uri[i+1:], []byte("&")) {
		if name, _, _ := bytes.Cut(p, []byte("=")); len(name) > 0 {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, bytes.Compare)
	for k, name := range names {
		switch {
		case k == 0:
		case bytes.Equal(name, names[k-1]):
			continue
		default:
			dst = append(dst, '&')
		}
		dst = append(dst, name...)
	}
	return dst
}
