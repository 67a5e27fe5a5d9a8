package publisher

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/anomalyd/anomalyd/pkg/records"
)

// decodeInputs are records and near-records for comparing scoreDecoder
// with encoding/json.
func decodeInputs(t testing.TB) map[string]string {
	valid := testScore("a.example", 0xfedcba9876543210, 0, 12.5)
	js, err := json.Marshal(valid)
	if err != nil {
		t.Fatal(err)
	}
	rec := string(js)
	return map[string]string{
		"valid":                rec,
		"unknown fields":       strings.Replace(rec, `{`, `{"extra":{"a":[1,{"b":null}]},"more":"x",`, 1),
		"nulls are absent":     `{"v":1,"site":null,"features":[null,{"feature":"x","value":null,"contribution":1}],"scored_at":null}`,
		"escapes":              `{"site":"a\u002eexample","baseline_version":"\"v\\1\"","features":[{"feature":"p\u00e4ths","value":1,"contribution":2}]}`,
		"time zones":           `{"scored_at":"2025-06-01T14:00:00.123456789+02:00","window_start":"2025-06-01T12:00:00Z","window_end":"2025-06-01T11:59:59-00:30"}`,
		"duplicate keys":       `{"site":"a.example","site":"b.example","score":1,"score":2}`,
		"numbers":              `{"v":1,"score":-1.5e3,"threshold":0,"features":[{"value":1E-2,"contribution":-0}]}`,
		"empty object":         `{}`,
		"empty features":       `{"features":[]}`,
		"not an object":        `[1,2]`,
		"a string":             `"score"`,
		"truncated":            rec[:len(rec)/2],
		"trailing data":        rec + ` {}`,
		"v not a number":       `{"v":"1"}`,
		"v fractional":         `{"v":1.5}`,
		"score a string":       `{"score":"12"}`,
		"features an object":   `{"features":{"feature":"x"}}`,
		"feature not a string": `{"features":[{"feature":1}]}`,
		"feature entry number": `{"features":[1]}`,
		"time not RFC 3339":    `{"scored_at":"2025-06-01 12:00:00"}`,
		"time a number":        `{"scored_at":1717243200}`,
		"visitor a number":     `{"visitor":1}`,
		"early":                `{"early":true,"returning":false}`,
		"early not a bool":     `{"early":1}`,
		"model":                `{"model":"bins-20","class":"api"}`,
		"model not a string":   `{"model":7}`,
		"allowed":              `{"allowed":true,"features":null}`,
	}
}

// TestDecodeMatchesEncodingJSON checks that the fast decoder accepts and
// rejects what encoding/json does, and decodes the same values.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	d := newScoreDecoder()
	for name, in := range decodeInputs(t) {
		t.Run(name, func(t *testing.T) {
			var want, got records.Score
			wantErr := json.Unmarshal([]byte(in), &want)
			d.reset(1)
			gotErr := d.decode([]byte(in), &got)
			if (wantErr == nil) != (gotErr == nil) {
				t.Fatalf("encoding/json: %v; scoreDecoder: %v", wantErr, gotErr)
			}
			if gotErr == nil && !sameScore(got, want) {
				t.Errorf("decoded\n %+v\nencoding/json\n %+v", got, want)
			}
		})
	}
}

// TestDecodeForm checks that the records the detector writes, with every
// optional field on and off, are read by decodeForm, to what decodeAny
// reads; and that decodeForm declines, leaving the arena as it was, at any
// difference from that form, where decodeAny still reads the record.
func TestDecodeForm(t *testing.T) {
	d := newScoreDecoder()
	base := testScore("a.example", 0xfedcba9876543210, 0, 12.5)
	base.ScoredAt = base.ScoredAt.Add(123456789)
	variants := map[string]func(*records.Score){
		"plain": func(*records.Score) {},
		"optional": func(s *records.Score) {
			s.Class, s.Returning, s.Allowed, s.Model, s.Early = "api", true, true, "bins-20", true
		},
		"visit":       func(s *records.Score) { s.Page, s.Shape, s.ShapeShare = "00000000000000ff", "0123456789abcdef", 0.0625 },
		"no features": func(s *records.Score) { s.Features = nil },
		"empty":       func(s *records.Score) { s.Features = []records.Contribution{} },
		"numbers":     func(s *records.Score) { s.Score, s.Threshold, s.Features[0].Value = -1.25e-9, 1e21, 2.833213344056216 },
		"raw bytes":   func(*records.Score) {}, // and then control and invalid bytes in its site, which JSON takes as written
	}
	for name, change := range variants {
		t.Run(name, func(t *testing.T) {
			s := *base
			s.Features = append([]records.Contribution(nil), base.Features...)
			change(&s)
			js, err := s.AppendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			if name == "raw bytes" {
				js = []byte(strings.Replace(string(js), `"a.example"`, "\"a\x01\xff.example\"", 1))
			}
			var form, general records.Score
			d.reset(1)
			if !d.decodeForm(js, &form) {
				t.Fatalf("decodeForm declined %s", js)
			}
			if err := d.decodeAny(js, &general); err != nil {
				t.Fatal(err)
			}
			if !sameScore(form, general) || (form.Features == nil) != (general.Features == nil) {
				t.Errorf("decodeForm\n %+v\ndecodeAny\n %+v", form, general)
			}
			// Every other difference from the form: spaces, escapes,
			// other orders, times in other zones, extra or null fields.
			for _, other := range []string{
				strings.Replace(string(js), `,"score"`, ` ,"score"`, 1),
				strings.Replace(string(js), `"site":"a`, `"site":"\u0061`, 1),
				strings.Replace(string(js), `{"v":1,`, `{"v":1,"extra":2,`, 1),
				strings.Replace(string(js), `"scored_at":"`+s.ScoredAt.Format(time.RFC3339Nano)+`"`, `"scored_at":"`+s.ScoredAt.In(time.FixedZone("", 3600)).Format(time.RFC3339Nano)+`"`, 1),
				strings.Replace(string(js), `,"visitor":`, `,"class":null,"visitor":`, 1),
				`{"v":1}` + string(js)[len(`{"v":1`):],
				string(js) + " ",
			} {
				d.reset(1)
				d.contribs = append(d.contribs, records.Contribution{Feature: "before"})
				var got records.Score
				if d.decodeForm([]byte(other), &got) {
					t.Errorf("decodeForm read %s", other)
				}
				d.contribs = d.contribs[:1] // as decode does after a decline
				if err := d.decode([]byte(other), &got); err == nil && len(d.contribs) != 1+len(got.Features) {
					t.Errorf("%s: arena of %d after %d features", other, len(d.contribs), len(got.Features))
				}
			}
		})
	}
}

// sameScore compares records, times by instant and offset, and treats nil
// and empty feature lists alike.
func sameScore(a, b records.Score) bool {
	sameTime := func(x, y time.Time) bool {
		_, ox := x.Zone()
		_, oy := y.Zone()
		return x.Equal(y) && ox == oy
	}
	if !sameTime(a.ScoredAt, b.ScoredAt) || !sameTime(a.WindowStart, b.WindowStart) || !sameTime(a.WindowEnd, b.WindowEnd) {
		return false
	}
	if len(a.Features) != len(b.Features) || (len(a.Features) > 0 && !reflect.DeepEqual(a.Features, b.Features)) {
		return false
	}
	a.ScoredAt, a.WindowStart, a.WindowEnd, a.Features = time.Time{}, time.Time{}, time.Time{}, nil
	b.ScoredAt, b.WindowStart, b.WindowEnd, b.Features = time.Time{}, time.Time{}, time.Time{}, nil
	return reflect.DeepEqual(a, b)
}

// TestDecodeArena checks that records of one batch keep their own
// features.
func TestDecodeArena(t *testing.T) {
	d := newScoreDecoder()
	d.reset(1) // too small: the arena grows
	var scores [50]records.Score
	for i := range scores {
		s := testScore("a.example", uint64(i), 0, float64(i))
		js, _ := json.Marshal(s)
		if err := d.decode(js, &scores[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range scores {
		if c := scores[i].Features[1].Contribution; c != float64(i)*0.4 || len(scores[i].Features) != 4 || cap(scores[i].Features) != 4 {
			t.Fatalf("record %d: features %+v", i, scores[i].Features)
		}
	}
}

// TestDecodeFeatureNames checks that a record's feature names are its own
// when they differ from the record's before, in name, order or number.
func TestDecodeFeatureNames(t *testing.T) {
	d := newScoreDecoder()
	d.reset(8)
	for i, names := range [][]string{{"a", "b", "c"}, {"a", "b", "c"}, {"a", "x"}, {"b", "a", "c", "d"}, {}, {"a", "b", "c", "d", "e"}, {"a", "b"}} {
		s := testScore("a.example", uint64(i), 0, 1)
		s.Features = []records.Contribution{}
		for _, n := range names {
			s.Features = append(s.Features, records.Contribution{Feature: n, Value: 1, Contribution: 2})
		}
		js, err := s.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		var got records.Score
		if err := d.decode(js, &got); err != nil {
			t.Fatal(err)
		}
		var gotNames []string
		for _, c := range got.Features {
			gotNames = append(gotNames, c.Feature)
		}
		if !slices.Equal(gotNames, names) {
			t.Errorf("record %d: features %q, want %q", i, gotNames, names)
		}
	}
}

// FuzzDecode checks that the decoder never panics, that what decodeForm
// reads decodeAny reads the same, and that what the decoder accepts,
// re-encoded, reads back the same through encoding/json.
func FuzzDecode(f *testing.F) {
	for _, in := range decodeInputs(f) {
		f.Add([]byte(in))
	}
	d := newScoreDecoder()
	f.Fuzz(func(t *testing.T, data []byte) {
		d.reset(1)
		var s records.Score
		if d.decodeForm(data, &s) {
			var general records.Score
			if err := d.decodeAny(data, &general); err != nil || !sameScore(s, general) || (s.Features == nil) != (general.Features == nil) {
				t.Fatalf("decodeForm read %+v, decodeAny %+v (%v)", s, general, err)
			}
		}
		d.reset(1)
		if d.decode(data, &s) != nil || s.Validate() != nil {
			return
		}
		js, err := json.Marshal(&s)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", s, err)
		}
		var back records.Score
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatalf("reading back %s: %v", js, err)
		}
		// encoding/json replaces invalid UTF-8, which the decoder keeps.
		valid := utf8.ValidString(s.Site) && utf8.ValidString(s.BaselineVersion)
		for _, c := range s.Features {
			valid = valid && utf8.ValidString(c.Feature)
		}
		if valid && !sameScore(s, back) {
			t.Errorf("decoded %+v, read back %+v", s, back)
		}
	})
}

// TestParseUTC: the fast path reads what UnmarshalText reads, to the
// same time.Time, and declines the rest (other zones, fields out of
// range, other forms), which UnmarshalText then reads or refuses.
func TestParseUTC(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fast bool
	}{
		{"2025-06-01T12:00:00Z", true},
		{"2025-06-01T12:00:00.1Z", true},
		{"2025-06-01T12:00:00.123456789Z", true},
		{"2024-02-29T23:59:59.000000001Z", true},
		{"2000-02-29T00:00:00Z", true},
		{"0000-01-01T00:00:00Z", true},
		{"9999-12-31T23:59:59.999999999Z", true},
		{"2025-04-30T00:00:00Z", true},
		{"2025-02-29T00:00:00Z", false},  // not a leap year
		{"1900-02-29T00:00:00Z", false},  // nor a century not of 400
		{"2025-04-31T00:00:00Z", false},  // April has 30
		{"2025-13-01T00:00:00Z", false},  // month
		{"2025-00-01T00:00:00Z", false},  // month
		{"2025-06-00T00:00:00Z", false},  // day
		{"2025-06-01T24:00:00Z", false},  // hour
		{"2025-06-01T12:60:00Z", false},  // minute
		{"2025-06-01T12:00:60Z", false},  // second
		{"2025-06-01T12:00:00.Z", false}, // no digits
		{"2025-06-01T12:00:00.1234567890Z", false},
		{"2025-06-01T12:00:00,5Z", false},
		{"2025-06-01T12:00:00+00:00", false},
		{"2025-06-01T12:00:00.5+02:00", false},
		{"2025-06-01t12:00:00z", false},
		{"2025-06-01 12:00:00Z", false},
		{"2025-6-01T12:00:00Z", false},
		{"+025-06-01T12:00:00Z", false},
		{"2025-06-01T12:00:0xZ", false},
	} {
		got, ok := parseUTC([]byte(tc.in))
		var want time.Time
		err := want.UnmarshalText([]byte(tc.in))
		switch {
		case ok != tc.fast:
			t.Errorf("%s: read by the fast path %v, want %v", tc.in, ok, tc.fast)
		case ok && (err != nil || got != want):
			t.Errorf("%s: fast path %v, UnmarshalText %v (%v)", tc.in, got, want, err)
		}
	}
}

// FuzzParseUTC: whatever the fast path reads, UnmarshalText reads to the
// same time.Time (compared with ==: the same instant and location).
func FuzzParseUTC(f *testing.F) {
	for _, s := range []string{"2025-06-01T12:00:00Z", "2024-02-29T23:59:59.123456789Z", "2025-02-29T00:00:00Z", "1999-12-31T23:59:59.9Z"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseUTC(b)
		if !ok {
			return
		}
		var want time.Time
		if err := want.UnmarshalText(b); err != nil || got != want {
			t.Fatalf("%q: fast path %v, UnmarshalText %v (%v)", b, got, want, err)
		}
	})
}
