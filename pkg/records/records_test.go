package records

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 10, 30, 0, 0, time.UTC)

func validScore() Score {
	return Score{
		V: Version, Site: "shop.example", Visitor: VisitorID(0x00c0ffee00d15ea5),
		Score: 21.5, Threshold: 18.25,
		Features:    []Contribution{{Feature: "log1p_requests", Value: 4.2, Contribution: 3.3}},
		WindowStart: t0.Add(-10 * time.Minute), WindowEnd: t0,
		BaselineVersion: "0123456789abcdef", ScoredAt: t0,
	}
}

func validDetection() Detection {
	return Detection{
		V: Version, Site: "shop.example", Visitor: VisitorID(1), Score: 21.5, Threshold: 18.25,
		BaselineVersion: "0123456789abcdef", Top: []Contribution{{Feature: "share_4xx", Value: 0.9, Contribution: 6.6}},
		DetectedAt: t0, ExpiresAt: t0.Add(time.Hour),
	}
}

// TestScoreJSON pins the field names: they are a contract with consumers.
func TestScoreJSON(t *testing.T) {
	b, err := json.Marshal(validScore())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"site":"shop.example","visitor":"00c0ffee00d15ea5","score":21.5,"threshold":18.25,` +
		`"features":[{"feature":"log1p_requests","value":4.2,"contribution":3.3}],` +
		`"window_start":"2026-11-21T10:20:00Z","window_end":"2026-11-21T10:30:00Z",` +
		`"baseline_version":"0123456789abcdef","scored_at":"2026-11-21T10:30:00Z"}`
	if string(b) != want {
		t.Errorf("Score JSON =\n%s\nwant\n%s", b, want)
	}
	var back Score
	if err := json.Unmarshal(b, &back); err != nil || back.Validate() != nil {
		t.Errorf("round trip: %v, %v", err, back.Validate())
	}
}

func TestDetectionJSON(t *testing.T) {
	b, err := json.Marshal(validDetection())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"site":"shop.example","visitor":"0000000000000001","score":21.5,"threshold":18.25,` +
		`"baseline_version":"0123456789abcdef","top":[{"feature":"share_4xx","value":0.9,"contribution":6.6}],` +
		`"detected_at":"2026-11-21T10:30:00Z","expires_at":"2026-11-21T11:30:00Z"}`
	if string(b) != want {
		t.Errorf("Detection JSON =\n%s\nwant\n%s", b, want)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Score)
		field string
	}{
		{"future version", func(s *Score) { s.V = 2 }, "v"},
		{"no site", func(s *Score) { s.Site = "" }, "site"},
		{"short visitor", func(s *Score) { s.Visitor = "abc" }, "visitor"},
		{"non-hex visitor", func(s *Score) { s.Visitor = "zzzzzzzzzzzzzzzz" }, "visitor"},
		{"NaN score", func(s *Score) { s.Score = math.NaN() }, "score"},
		{"infinite threshold", func(s *Score) { s.Threshold = math.Inf(1) }, "threshold"},
		{"no features", func(s *Score) { s.Features = nil }, "features"},
		{"unnamed feature", func(s *Score) { s.Features[0].Feature = "" }, "features"},
		{"empty window", func(s *Score) { s.WindowEnd = s.WindowStart }, "window_end"},
		{"no scored_at", func(s *Score) { s.ScoredAt = time.Time{} }, "scored_at"},
		{"shape share above 1", func(s *Score) { s.ShapeShare = 1.5 }, "shape_share"},
		{"shape share NaN", func(s *Score) { s.ShapeShare = math.NaN() }, "shape_share"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validScore()
			tc.edit(&s)
			err := s.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"`+tc.field+`"`) {
				t.Errorf("Validate = %v, want ErrInvalid naming %q", err, tc.field)
			}
		})
	}
	d := validDetection()
	d.ExpiresAt = d.DetectedAt
	if err := d.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("detection expiring when detected: %v", err)
	}
	if d := validDetection(); d.Validate() != nil {
		t.Errorf("valid detection: %v", d.Validate())
	}
}

func TestVisitorID(t *testing.T) {
	for _, v := range []uint64{0, 1, 1 << 53, math.MaxUint64} {
		got, err := ParseVisitorID(VisitorID(v))
		if err != nil || got != v {
			t.Errorf("round trip of %d: %d, %v", v, got, err)
		}
	}
	if string(Key("a.example", "00000000000000ff")) != "a.example|00000000000000ff" {
		t.Error("Key")
	}
}

// TestScoreAppendJSON: AppendJSON writes exactly what json.Marshal does,
// for strings that need escaping, numbers of every magnitude, times with
// and without fractions, and features nil, empty or many; but for the
// features' numbers, which read back as their values to
// ExplanationDigits significant digits.
// roundDigits is f to ExplanationDigits significant digits, below 1e308.
func roundDigits(f float64) float64 {
	if math.Abs(f) >= 1e308 {
		return f
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(f, 'e', ExplanationDigits-1, 64), 64)
	if err != nil {
		panic(err)
	}
	return r
}

func TestScoreAppendJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	strs := []string{"", "shop.example", `"b1"`, "a<b>&c", "tab\there", "nl\n\r\b\f", "\x00\x1f\x7f", "é ü 漢字", "\u2028\u2029", "bad \xff\xfe utf8", "emoji 😀", `back\slash`}
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99e-7, 1e-7, 123456.789, 1e20, 1e21, 1.5e300, -2.5e-10, 13.287712379549449, math.SmallestNonzeroFloat64, math.MaxFloat64}
	times := []time.Time{{}, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), time.Date(2026, 3, 2, 10, 0, 0, 123456789, time.UTC), time.Date(2026, 3, 2, 10, 0, 0, 120000000, time.UTC), time.Unix(1_767_225_600, 1).UTC()}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	for i := range 2000 {
		s := Score{
			V: rng.IntN(3), Site: pick(strs), Visitor: pick(strs), Class: pick(strs), Returning: rng.IntN(2) == 0, Allowed: rng.IntN(2) == 0, Model: pick(strs), Early: rng.IntN(2) == 0, Page: pick(strs), Shape: pick(strs), ShapeShare: rng.Float64(),
			Score: floats[rng.IntN(len(floats))] * float64(1-2*rng.IntN(2)), Threshold: rng.NormFloat64() * 1e3,
			WindowStart: times[rng.IntN(len(times))], WindowEnd: times[rng.IntN(len(times))], ScoredAt: times[rng.IntN(len(times))],
			BaselineVersion: pick(strs),
		}
		switch i % 3 {
		case 0:
		case 1:
			s.Features = []Contribution{}
		default:
			for range 1 + rng.IntN(10) {
				s.Features = append(s.Features, Contribution{Feature: pick(strs), Value: floats[rng.IntN(len(floats))], Contribution: rng.ExpFloat64() * math.Pow(10, float64(rng.IntN(40)-20))})
			}
		}
		want, err := json.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Features) == 0 {
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendJSON of %+v:\n got %s\nwant %s", s, got, want)
			}
			continue
		}
		rounded := s
		rounded.Features = nil
		for _, c := range s.Features {
			rounded.Features = append(rounded.Features, Contribution{Feature: c.Feature, Value: roundDigits(c.Value), Contribution: roundDigits(c.Contribution)})
		}
		if want, err = json.Marshal(&rounded); err != nil {
			t.Fatal(err)
		}
		var g, w Score
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("AppendJSON of %+v: %v in %s", s, err, got)
		}
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, w) || !bytes.Equal(got[:bytes.Index(got, []byte(`"features"`))], want[:bytes.Index(want, []byte(`"features"`))]) {
			t.Fatalf("AppendJSON of %+v:\n got %s\nwant %s (features to %d digits)", s, got, want, ExplanationDigits)
		}
	}
	for _, bad := range []Score{{Score: math.NaN()}, {Threshold: math.Inf(1)}, {Features: []Contribution{{Value: math.Inf(-1)}}}, {ScoredAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}} {
		if _, err := bad.AppendJSON(nil); err == nil {
			t.Errorf("AppendJSON of %+v: no error, want one as json.Marshal gives", bad)
		}
	}
}

// BenchmarkScoreAppendJSON measures encoding a score record of the
// detector's 9 features, as it writes one for every scoring.
func BenchmarkScoreAppendJSON(b *testing.B) {
	s := validScore()
	s.Score, s.Threshold, s.ShapeShare = 14.236516408318353, 23.104975066346544, 0.0123
	s.Features = nil
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 9 {
		s.Features = append(s.Features, Contribution{Feature: fmt.Sprintf("feature_%d", i), Value: rng.NormFloat64() * 3, Contribution: rng.Float64() * 13})
	}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = s.AppendJSON(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf)), "bytes/record")
}
