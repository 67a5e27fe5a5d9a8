package evaluate

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/records"
)

func det(site, visitor string, score float64) records.Detection {
	return records.Detection{Site: site, Visitor: visitor, Score: score, Threshold: 1}
}

func TestEvaluateWithLabels(t *testing.T) {
	h := Visitor{Label: HumanLabel}
	labels := Labels{
		"a|01": h, "a|02": {Label: HumanLabel, Profile: "office"}, "a|03": h, "b|01": {Label: HumanLabel, Profile: "office"},
		"a|10": {Label: "scraper"}, "a|11": {Label: "scraper"}, "b|10": {Label: "scraper"}, "b|11": {Label: "scraper"},
		"a|20": {Label: "low-and-slow"}, "b|20": {Label: "low-and-slow"},
		"a|30": {Label: "distributed-scraper", Group: "g1"}, "a|31": {Label: "distributed-scraper", Group: "g1"},
	}
	dets := []records.Detection{
		det("a", "01", 3),                    // a false positive
		det("a", "10", 5), det("a", "10", 9), // one visitor, twice
		det("b", "10", 4), det("b", "11", 2), // scrapers
		det("b", "20", 7),                      // low-and-slow
		det("a", "30", 2),                      // one member of a group
		det("c", "99", 1),                      // not in the labels
		det("b", "01", 0.5), det("b", "01", 1), // another human, twice
	}
	q := Evaluate(dets, labels)

	if q.Detections != 10 || q.DetectedVisitors != 8 {
		t.Errorf("detections %d of %d visitors, want 10 of 8", q.Detections, q.DetectedVisitors)
	}
	if *q.Humans != 4 || *q.FalsePositives != 2 || *q.Unlabelled != 1 || *q.HumanFalsePositiveRate != 0.5 {
		t.Errorf("humans %d, false positives %d (rate %v), unlabelled %d; want 4, 2 (0.5), 1", *q.Humans, *q.FalsePositives, *q.HumanFalsePositiveRate, *q.Unlabelled)
	}
	// 5 of 8 bots detected; 5 true of 7 labelled detections.
	if *q.Precision != 5.0/7 || *q.Recall != 5.0/8 {
		t.Errorf("precision %v, recall %v; want 5/7, 5/8", *q.Precision, *q.Recall)
	}
	want := map[string]Recall{
		"scraper":             {Visitors: 4, Detected: 3, Recall: 0.75},
		"low-and-slow":        {Visitors: 2, Detected: 1, Recall: 0.5},
		"distributed-scraper": {Visitors: 2, Detected: 1, Recall: 0.5},
	}
	if len(q.Scenarios) != len(want) {
		t.Errorf("scenarios %v, want %v", q.Scenarios, want)
	}
	for name, w := range want {
		if got := q.Scenarios[name]; got != w {
			t.Errorf("scenario %s: %+v, want %+v", name, got, w)
		}
	}
	if *q.Coordinated != (Recall{Visitors: 2, Detected: 1, Recall: 0.5}) || *q.Individual != (Recall{Visitors: 6, Detected: 4, Recall: 4.0 / 6}) {
		t.Errorf("coordinated %+v, individual %+v", *q.Coordinated, *q.Individual)
	}
	if q.Profiles["office"] != (Recall{Visitors: 2, Detected: 1, Recall: 0.5}) || len(q.Profiles) != 1 {
		t.Errorf("profiles %+v", q.Profiles)
	}
	// Top: best detection per visitor, by score.
	var top []string
	for _, d := range q.Top {
		top = append(top, d.Site+"|"+d.Visitor+"="+d.Label)
	}
	if got := strings.Join(top, " "); got != "a|10=scraper b|20=low-and-slow b|10=scraper a|01=human a|30=distributed-scraper b|11=scraper b|01=human c|99=" {
		t.Errorf("top = %s", got)
	}
	if q.Top[0].Score != 9 {
		t.Errorf("top score %v, want the visitor's best, 9", q.Top[0].Score)
	}

	js, err := json.Marshal(&q)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"humans", "false_positives", "human_false_positive_rate", "precision", "recall", "scenarios", "coordinated", "individual", "profiles", "top_detections"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, js)
		}
	}
	var text bytes.Buffer
	q.WriteText(&text)
	for _, want := range []string{"precision 0.714, recall 0.625", "4 human visitors, 2 false positives", "1 of 2 members of coordinated attacks", "office"} {
		if !strings.Contains(strings.Join(strings.Fields(text.String()), " "), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

func TestEvaluateEdgeCases(t *testing.T) {
	// No detections: precision and recall 0, not NaN.
	q := Evaluate(nil, Labels{"a|01": {Label: HumanLabel}, "a|02": {Label: "scraper"}})
	if *q.Precision != 0 || *q.Recall != 0 || q.Scenarios["scraper"].Recall != 0 || len(q.Top) != 0 || q.Coordinated != nil {
		t.Errorf("no detections: %+v", q)
	}
	if _, err := json.Marshal(&q); err != nil {
		t.Errorf("no detections: %v", err)
	}
	// Humans only: no scenarios, and every detection is a false positive.
	q = Evaluate([]records.Detection{det("a", "01", 2)}, Labels{"a|01": {Label: HumanLabel}})
	if *q.FalsePositives != 1 || *q.Precision != 0 || len(q.Scenarios) != 0 {
		t.Errorf("humans only: %+v", q)
	}
}

func TestEvaluateWithoutLabels(t *testing.T) {
	q := Evaluate([]records.Detection{det("a", "01", 2), det("a", "01", 3), det("a", "02", 1)}, nil)
	if q.Detections != 3 || q.DetectedVisitors != 2 || len(q.Top) != 2 {
		t.Errorf("detections %d of %d visitors, top %d; want 3 of 2, 2", q.Detections, q.DetectedVisitors, len(q.Top))
	}
	js, err := json.Marshal(&q)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"humans", "false_positives", "precision", "recall", "scenarios", "unlabelled_detected_visitors"} {
		if bytes.Contains(js, []byte(`"`+k+`"`)) {
			t.Errorf("JSON without labels has %q: %s", k, js)
		}
	}
	var text bytes.Buffer
	q.WriteText(&text)
	if !strings.Contains(text.String(), "no precision or recall") || strings.Contains(text.String(), "precision 0") {
		t.Errorf("text without labels:\n%s", text.String())
	}
}

// TestScanLines checks that labels are keyed by the visitor ids the
// services compute, so that they join the detections' site|visitor.
func TestScanLines(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reqs := []traffic.Request{
		{Time: start, Site: "a.example", ClientIP: "192.0.2.1", Method: "GET", Path: "/", Status: 200, Label: "human"},
		{Time: start.Add(time.Second), Site: "a.example", ClientIP: "192.0.2.2", Method: "GET", Path: "/x", Status: 200, Label: "scraper"},
		{Time: start.Add(2 * time.Second), Site: "a.example", ClientIP: "192.0.2.2", Method: "GET", Path: "/y", Status: 200, Label: "human"},
		{Time: start.Add(3 * time.Second), Site: "b.example", ClientIP: "192.0.2.1", Method: "GET", Path: "/api/items", Status: 200, Label: "human"},
	}
	var buf bytes.Buffer
	if err := traffic.WriteJSONL(&buf, reqs, true); err != nil {
		t.Fatal(err)
	}
	buf.WriteString(`{"EdgeStartTimestamp":"2026-01-01T00:00:04Z","ZoneName":"a.example","ClientIP":"192.0.2.3","label":"distributed-scraper","group":"c1","profile":"residential-proxy"}` + "\n")
	buf.WriteString("{not json\n\n")
	id, err := features.NewIdentity(features.IdentityIP, []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ScanLines(t.Context(), bytes.NewReader(buf.Bytes()), features.DefaultFieldMap(), id, features.DefaultClassifier())
	if err != nil {
		t.Fatal(err)
	}
	if s.Events != 6 || !s.First.Equal(start) || !s.Last.Equal(start.Add(4*time.Second)) {
		t.Errorf("events %d from %v to %v", s.Events, s.First, s.Last)
	}
	key := func(site, ip string) string {
		var ev features.Event
		dec, _ := features.NewDecoder(features.DefaultFieldMap())
		if err := dec.Decode([]byte(`{"EdgeStartTimestamp":"2026-01-01T00:00:00Z","ZoneName":"`+site+`","ClientIP":"`+ip+`"}`), &ev); err != nil {
			t.Fatal(err)
		}
		v, err := id.Visitor(&ev)
		if err != nil {
			t.Fatal(err)
		}
		return Key(site, records.VisitorID(v))
	}
	want := Labels{
		key("a.example", "192.0.2.1"): {Label: "human", Class: "browser"},   // no user agent: a tool, asking for a page
		key("a.example", "192.0.2.2"): {Label: "scraper", Class: "browser"}, // a bot label wins over human
		key("b.example", "192.0.2.1"): {Label: "human", Class: "api"},       // a tool's API call
		key("a.example", "192.0.2.3"): {Label: "distributed-scraper", Group: "c1", Profile: "residential-proxy", Class: "browser"},
	}
	if len(s.Labels) != len(want) {
		t.Errorf("labels %v, want %v", s.Labels, want)
	}
	for k, w := range want {
		if s.Labels[k] != w {
			t.Errorf("label of %s = %+v, want %+v", k, s.Labels[k], w)
		}
	}

	// Without label fields there are no labels at all.
	buf.Reset()
	if err := traffic.WriteJSONL(&buf, reqs, false); err != nil {
		t.Fatal(err)
	}
	if s, err = ScanLines(t.Context(), &buf, features.DefaultFieldMap(), id, features.DefaultClassifier()); err != nil || s.Labels != nil {
		t.Errorf("unlabelled traffic: labels %v, %v; want nil", s.Labels, err)
	}
}

func TestNum(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := Num(n); got != want {
			t.Errorf("Num(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestEvaluateClasses(t *testing.T) {
	labels := Labels{
		"a|01": {Label: HumanLabel, Class: "browser"}, "a|02": {Label: HumanLabel, Class: "browser"},
		"a|03": {Label: HumanLabel, Class: "api", Profile: "app-poller"}, "a|10": {Label: "scraper", Class: "api"},
		"a|11": {Label: "scraper", Class: "browser"},
	}
	q := Evaluate([]records.Detection{det("a", "03", 2), det("a", "10", 5)}, labels)
	want := map[string]ClassQuality{
		"browser": {Humans: 2, Bots: 1},
		"api":     {Humans: 1, FalsePositives: 1, HumanFalsePositiveRate: 1, Bots: 1, Detected: 1, Recall: 1},
	}
	if len(q.Classes) != len(want) || q.Classes["browser"] != want["browser"] || q.Classes["api"] != want["api"] {
		t.Errorf("classes %+v, want %+v", q.Classes, want)
	}
	var text bytes.Buffer
	q.WriteText(&text)
	if !strings.Contains(text.String(), "class     api") {
		t.Errorf("text lacks the class lines:\n%s", text.String())
	}
}

func TestEvaluateGroups(t *testing.T) {
	g := func(visitor, group string) records.Detection {
		d := det("a", visitor, 2)
		d.Group = group
		return d
	}
	labels := Labels{"a|01": {Label: "stuffing", Group: "c1"}, "a|02": {Label: "stuffing", Group: "c1"}, "a|03": {Label: HumanLabel}}
	q := Evaluate([]records.Detection{g("01", "g-1"), g("02", "g-1"), g("02", "g-1"), g("03", "g-2"), det("a", "04", 1)}, labels)
	want := []Group{
		{ID: "g-1", Site: "a", Members: 2, Labels: map[string]int{"stuffing": 2}},
		{ID: "g-2", Site: "a", Members: 1, Labels: map[string]int{HumanLabel: 1}},
	}
	if !reflect.DeepEqual(q.Groups, want) {
		t.Errorf("groups %+v, want %+v", q.Groups, want)
	}
	var text bytes.Buffer
	q.WriteText(&text)
	if !strings.Contains(text.String(), "group     g-1 a: 2 visitors (stuffing 2)") {
		t.Errorf("text lacks the group lines:\n%s", text.String())
	}
}
