package publisher

import (
	"errors"
	"fmt"
	"time"

	"github.com/anomalyd/anomalyd/internal/jsonread"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// maxInterned bounds the strings a scoreDecoder keeps, so that records with
// ever new sites or versions cannot grow it without end.
const maxInterned = 1 << 14

// scoreDecoder decodes score records with internal/jsonread, as
// pkg/features decodes request events: decoding is most of the publisher's
// CPU (BenchmarkPrepare; the README compares it with encoding/json and
// fastjson, which decoded them before). It reads what encoding/json
// would, with two differences: field names must be exactly the contract's
// (encoding/json also matches them in other cases), and strings are taken
// as written (encoding/json replaces invalid UTF-8). Unknown fields are
// ignored, null is an absent field and of duplicate fields the last
// counts, as with encoding/json. A record as the detector writes it
// (records.Score.AppendJSON) is read field by field in that form
// (decodeForm); any other, by internal/jsonread's pass over the whole
// document (decodeAny). Site names, feature names and baseline
// versions are interned, so a record costs two allocations: its visitor id
// and its features, which come from one arena per batch. It is not safe
// for concurrent use.
type scoreDecoder struct {
	strs     map[string]string
	contribs []records.Contribution // arena of the current batch's Features
	// perRecord is the features a record had in the last batch, on
	// average, rounded up: how much arena a batch takes.
	perRecord int
	batch     int // records of the current batch
	// names are the feature names of the last record read by the form:
	// a detector's records name the same features in the same order.
	names []entryName
	// Scratch of one record: its members, and theirs, in one tape;
	// unescaped keys and strings.
	tape       []jsonread.Member
	keys, text []byte
}

func newScoreDecoder() *scoreDecoder {
	return &scoreDecoder{strs: make(map[string]string), perRecord: 10}
}

// reset starts a batch of n records: Features of the previous one stay
// valid, as the arena is replaced rather than reused. The arena is sized
// as the last batch needed, so that it seldom grows.
func (d *scoreDecoder) reset(n int) {
	if d.batch > 0 && len(d.contribs) > 0 {
		d.perRecord = (len(d.contribs) + d.batch - 1) / d.batch
	}
	d.batch = n
	d.contribs = make([]records.Contribution, 0, n*d.perRecord)
}

// decode decodes one record from data into *s, overwriting all of it.
func (d *scoreDecoder) decode(data []byte, s *records.Score) error {
	start := len(d.contribs)
	if d.decodeForm(data, s) {
		return nil
	}
	d.contribs = d.contribs[:start]
	return d.decodeAny(data, s)
}

// decodeForm decodes data into *s when it is written exactly as
// records.Score.AppendJSON writes a record, which the detector does: the
// fields in its order and nothing else, no spaces, no escaped string, and
// times in parseUTC's form. It reads each value as decodeAny does, so
// that what it accepts decodes the same either way, without Read's pass
// over the document or matching keys. It reports false at the first
// difference from that form, with *s and the arena's end not to be
// trusted; decodeAny then reads the record, or says what is wrong with it.
func (d *scoreDecoder) decodeForm(data []byte, s *records.Score) bool {
	*s = records.Score{}
	f := form{b: data}
	ok := f.lit(`{"v":`) && f.int(&s.V) && f.lit(`,"site":`) && d.formInterned(&f, &s.Site) && f.lit(`,"visitor":`) && f.str(&s.Visitor)
	if ok && f.lit(`,"class":`) {
		ok = d.formInterned(&f, &s.Class)
	}
	s.Returning = ok && f.lit(`,"returning":true`)
	s.Allowed = ok && f.lit(`,"allowed":true`)
	if ok && f.lit(`,"model":`) {
		ok = d.formInterned(&f, &s.Model)
	}
	s.Early = ok && f.lit(`,"early":true`)
	if ok && f.lit(`,"page":`) {
		ok = f.str(&s.Page)
	}
	if ok && f.lit(`,"shape":`) {
		ok = f.str(&s.Shape)
	}
	if ok && f.lit(`,"shape_share":`) {
		ok = f.float(&s.ShapeShare)
	}
	ok = ok && f.lit(`,"score":`) && f.float(&s.Score) && f.lit(`,"threshold":`) && f.float(&s.Threshold)
	switch {
	case !ok:
	case f.lit(`,"features":null`):
	case f.lit(`,"features":[`):
		ok = d.formFeatures(&f, s)
	default:
		ok = false
	}
	return ok && f.lit(`,"window_start":`) && f.time(&s.WindowStart) &&
		f.lit(`,"window_end":`) && f.time(&s.WindowEnd) &&
		f.lit(`,"baseline_version":`) && d.formInterned(&f, &s.BaselineVersion) &&
		f.lit(`,"scored_at":`) && f.time(&s.ScoredAt) && f.lit("}") && f.i == len(data)
}

// formFeatures reads the entries of the features array, after its '[',
// and the ']' that closes it, into the batch's arena.
func (d *scoreDecoder) formFeatures(f *form, s *records.Score) bool {
	start := len(d.contribs)
	if !f.lit("]") {
		for i := 0; ; i++ {
			var c records.Contribution
			if !(d.formName(f, i, &c.Feature) && f.float(&c.Value) &&
				f.lit(`,"contribution":`) && f.float(&c.Contribution) && f.lit("}")) {
				return false
			}
			d.contribs = append(d.contribs, c)
			if f.lit("]") {
				break
			}
			if !f.lit(",") {
				return false
			}
		}
	}
	s.Features = d.contribs[start:len(d.contribs):len(d.contribs)] // as features keeps them apart
	return true
}

// formName reads the start of feature i's entry, up to its value, and its
// name into *dst. A detector writes the same names in the same order, so
// the entry most often starts as the last record's feature i did, read in
// one comparison; else the name is interned and remembered for the next.
func (d *scoreDecoder) formName(f *form, i int, dst *string) bool {
	if i < len(d.names) && f.lit(d.names[i].entry) {
		*dst = d.names[i].name
		return true
	}
	from := f.i
	if !f.lit(`{"feature":`) {
		return false
	}
	v, ok := f.plain()
	if !ok || !f.lit(`,"value":`) {
		return false
	}
	*dst, _ = d.interned(v, false)
	n := entryName{name: *dst, entry: string(f.b[from:f.i])}
	switch {
	case i < len(d.names):
		d.names[i] = n
	case i < maxNames:
		d.names = append(d.names, n)
	}
	return true
}

// entryName is a feature's name and the start of its entry in the form:
// {"feature":"NAME","value":
type entryName struct{ name, entry string }

// maxNames bounds the feature names remembered: more than any feature set
// has.
const maxNames = 64

// formInterned reads a string without escapes into *dst, interned.
func (d *scoreDecoder) formInterned(f *form, dst *string) bool {
	v, ok := f.plain()
	if ok {
		*dst, _ = d.interned(v, false)
	}
	return ok
}

// form reads a document of a known form from b, from i on: each method
// reads what it is asked for at i, moves past it and reports true. lit
// leaves i where it was when it reports false, so that an optional field
// can be tried; after any other false the document is not of the form.
type form struct {
	b []byte
	i int
}

// lit reads the bytes of s.
func (f *form) lit(s string) bool {
	if len(f.b)-f.i < len(s) || string(f.b[f.i:f.i+len(s)]) != s {
		return false
	}
	f.i += len(s)
	return true
}

// float reads a number into *dst as Value.Float reads it.
func (f *form) float(dst *float64) bool { return number(f, dst, jsonread.Value.Float) }

// int reads a number into *dst as Value.Int reads it.
func (f *form) int(dst *int) bool { return number(f, dst, jsonread.Value.Int) }

// number reads a number as Read delimits it into *dst, as parse reads it.
func number[T any](f *form, dst *T, parse func(jsonread.Value) (T, error)) bool {
	end, ok := jsonread.NumberEnd(f.b, f.i)
	if !ok {
		return false
	}
	v, err := parse(jsonread.Value(f.b[f.i:end]))
	*dst, f.i = v, end
	return err == nil
}

// plain reads a string without a backslash, with its quotes.
func (f *form) plain() (jsonread.Value, bool) {
	if f.i >= len(f.b) || f.b[f.i] != '"' {
		return nil, false
	}
	end, escaped, ok := jsonread.StringEnd(f.b, f.i)
	if !ok || escaped {
		return nil, false
	}
	v := jsonread.Value(f.b[f.i:end])
	f.i = end
	return v, true
}

// str reads a string without a backslash into *dst.
func (f *form) str(dst *string) bool {
	v, ok := f.plain()
	if ok {
		*dst = string(v[1 : len(v)-1])
	}
	return ok
}

// time reads a time in parseUTC's form into *dst.
func (f *form) time(dst *time.Time) bool {
	v, ok := f.plain()
	if ok {
		*dst, ok = parseUTC(v[1 : len(v)-1])
	}
	return ok
}

// decodeAny decodes one record from data into *s, overwriting all of it,
// whatever the order and spacing of its fields.
func (d *scoreDecoder) decodeAny(data []byte, s *records.Score) error {
	*s = records.Score{}
	d.keys = d.keys[:0]
	var start, end int
	var jerr *jsonread.Error
	if d.tape, start, end, jerr = jsonread.Read(d.tape[:0], &d.keys, data); jerr != nil {
		return jerr
	}
	if data[start] != '{' {
		return fmt.Errorf("want a JSON object, got %s", jsonread.Value(data[start:end]).TypeName())
	}
	for k := 0; k < len(d.tape); k = int(d.tape[k].Next) {
		m := &d.tape[k]
		v := value(data, m)
		if v.Kind() == 'n' {
			continue
		}
		key := d.key(data, m)
		var err error
		switch string(key) {
		case "v":
			s.V, err = v.Int()
		case "site":
			s.Site, err = d.interned(v, m.ValEscaped)
		case "class":
			s.Class, err = d.interned(v, m.ValEscaped)
		case "model":
			s.Model, err = d.interned(v, m.ValEscaped)
		case "returning":
			s.Returning, err = boolValue(v)
		case "early":
			s.Early, err = boolValue(v)
		case "allowed":
			s.Allowed, err = boolValue(v)
		case "page": // one of many: not interned
			s.Page, err = d.str(v, m.ValEscaped)
		case "shape":
			s.Shape, err = d.str(v, m.ValEscaped)
		case "shape_share":
			s.ShapeShare, err = v.Float()
		case "visitor":
			s.Visitor, err = d.str(v, m.ValEscaped)
		case "score":
			s.Score, err = v.Float()
		case "threshold":
			s.Threshold, err = v.Float()
		case "features":
			s.Features, err = d.features(data, k)
		case "window_start":
			s.WindowStart, err = d.time(v, m.ValEscaped)
		case "window_end":
			s.WindowEnd, err = d.time(v, m.ValEscaped)
		case "baseline_version":
			s.BaselineVersion, err = d.interned(v, m.ValEscaped)
		case "scored_at":
			s.ScoredAt, err = d.time(v, m.ValEscaped)
		}
		if err != nil {
			return fmt.Errorf("field %q: %w", key, err)
		}
	}
	return nil
}

// features decodes the features array, member k of the record's tape,
// into the batch's arena.
func (d *scoreDecoder) features(data []byte, k int) ([]records.Contribution, error) {
	t := d.tape
	if data[t[k].ValStart] != '[' {
		return nil, fmt.Errorf("want an array, got %s", value(data, &t[k]).TypeName())
	}
	start := len(d.contribs)
	for i, e := 0, k+1; e < int(t[k].Next); i, e = i+1, int(t[e].Next) {
		var c records.Contribution
		switch data[t[e].ValStart] {
		case 'n':
		case '{':
			for f := e + 1; f < int(t[e].Next); f = int(t[f].Next) {
				m := &t[f]
				v := value(data, m)
				if v.Kind() == 'n' {
					continue
				}
				key := d.key(data, m)
				var err error
				switch string(key) {
				case "feature":
					c.Feature, err = d.interned(v, m.ValEscaped)
				case "value":
					c.Value, err = v.Float()
				case "contribution":
					c.Contribution, err = v.Float()
				}
				if err != nil {
					return nil, fmt.Errorf("entry %d: field %q: %w", i, key, err)
				}
			}
		default:
			return nil, fmt.Errorf("entry %d: want an object, got %s", i, value(data, &t[e]).TypeName())
		}
		d.contribs = append(d.contribs, c)
	}
	// The full slice expression keeps a later append to one record's
	// Features from overwriting the next record's.
	return d.contribs[start:len(d.contribs):len(d.contribs)], nil
}

// value is m's value in data.
func value(data []byte, m *jsonread.Member) jsonread.Value {
	return jsonread.Value(data[m.ValStart:m.ValEnd])
}

// key is m's key, unescaped.
func (d *scoreDecoder) key(data []byte, m *jsonread.Member) []byte {
	if m.KeyEscaped {
		return d.keys[m.KeyStart:m.KeyEnd]
	}
	return data[m.KeyStart:m.KeyEnd]
}

// textOf is the string v, unescaped if escaped says so; it aliases the
// record or the decoder's scratch until the next call.
func (d *scoreDecoder) textOf(v jsonread.Value, escaped bool) ([]byte, error) {
	if v.Kind() != '"' {
		return nil, fmt.Errorf("want a string, got %s", v.TypeName())
	}
	b := v[1 : len(v)-1]
	if !escaped {
		return b, nil
	}
	d.text = jsonread.Unescape(d.text[:0], b)
	return d.text, nil
}

// str is the string v.
func (d *scoreDecoder) str(v jsonread.Value, escaped bool) (string, error) {
	b, err := d.textOf(v, escaped)
	return string(b), err
}

// interned is the string v, interned.
func (d *scoreDecoder) interned(v jsonread.Value, escaped bool) (string, error) {
	b, err := d.textOf(v, escaped)
	if err != nil {
		return "", err
	}
	if s, ok := d.strs[string(b)]; ok {
		return s, nil
	}
	s := string(b)
	if len(d.strs) < maxInterned {
		d.strs[s] = s
	}
	return s, nil
}

// time reads an RFC 3339 time as encoding/json does: the form the
// detector writes, in UTC, by parseUTC, which costs less than
// time.Time.UnmarshalText; any other by UnmarshalText.
func (d *scoreDecoder) time(v jsonread.Value, escaped bool) (time.Time, error) {
	b, err := d.textOf(v, escaped)
	if err != nil {
		return time.Time{}, errors.New("want an RFC 3339 time string")
	}
	if t, ok := parseUTC(b); ok {
		return t, nil
	}
	var t time.Time
	err = t.UnmarshalText(b)
	return t, err
}

// parseUTC reads "2006-01-02T15:04:05Z", with a fraction of 1 to 9 digits
// after the seconds or none (time.RFC3339Nano in UTC), and every field in
// range, into what time.Time.UnmarshalText makes of it; ok is false for
// anything else, which UnmarshalText then reads or refuses.
func parseUTC(b []byte) (t time.Time, ok bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	year, ok1 := decimal(b[0:4])
	month, ok2 := decimal(b[5:7])
	day, ok3 := decimal(b[8:10])
	hour, ok4 := decimal(b[11:13])
	minute, ok5 := decimal(b[14:16])
	sec, ok6 := decimal(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	ns := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		if len(frac) < 2 || len(frac) > 10 || frac[0] != '.' {
			return time.Time{}, false
		}
		n, ok := decimal(frac[1:])
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			n *= 10
		}
		ns = n
	}
	secs := daysSinceEpoch(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	return time.Unix(secs, int64(ns)).UTC(), true
}

// daysSinceEpoch is the number of days from 1970-01-01 to a date of the
// proleptic Gregorian calendar, by Howard Hinnant's days_from_civil: in
// eras of 400 years that begin on 1 March, so that a leap day ends its
// year. It takes the place of time.Date, whose normalizing of
// out-of-range fields the checks of parseUTC make needless, and which
// was about a quarter of its cost.
func daysSinceEpoch(year, month, day int) int64 {
	if month <= 2 {
		year--
	}
	era := year / 400
	if year < 0 {
		era = (year - 399) / 400
	}
	yoe := year - era*400                     // [0, 399]
	doy := (153*((month+9)%12)+2)/5 + day - 1 // [0, 365], from 1 March
	doe := yoe*365 + yoe/4 - yoe/100 + doy    // [0, 146096]
	return int64(era*146097 + doe - 719468)
}

// decimal reads b, ASCII digits only.
func decimal(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = 10*n + int(c-'0')
	}
	return n, true
}

// daysIn is the number of days of month (1 to 12) of year.
func daysIn(month, year int) int {
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		return 29
	}
	return [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
}

func boolValue(v jsonread.Value) (bool, error) {
	switch v.Kind() {
	case 't':
		return true, nil
	case 'f':
		return false, nil
	}
	return false, fmt.Errorf("want a boolean, got %s", v.TypeName())
}
