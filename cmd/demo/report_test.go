package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/replay"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/records"
)

func det(site, visitor string, score float64) records.Detection {
	return records.Detection{Site: site, Visitor: visitor, Score: score, Threshold: 1}
}

func TestEvaluateWithLabels(t *testing.T) {
	labels := map[string]string{
		"a|01": "human", "a|02": "human", "a|03": "human", "b|01": "human",
		"a|10": "scraper", "a|11": "scraper", "b|10": "scraper", "b|11": "scraper",
		"a|20": "low-and-slow", "b|20": "low-and-slow",
	}
	dets := []records.Detection{
		det("a", "01", 3),                    // a false positive
		det("a", "10", 5), det("a", "10", 9), // one visitor, twice
		det("b", "10", 4), det("b", "11", 2), // scrapers
		det("b", "20", 7),                      // low-and-slow
		det("c", "99", 1),                      // not in the labels
		det("b", "01", 0.5), det("b", "01", 1), // another human, twice
	}
	var r Report
	r.evaluate(dets, labels)

	if r.Detections != 9 || r.DetectedVisitors != 7 {
		t.Errorf("detections %d of %d visitors, want 9 of 7", r.Detections, r.DetectedVisitors)
	}
	if *r.Humans != 4 || *r.FalsePositives != 2 || *r.Unlabelled != 1 {
		t.Errorf("humans %d, false positives %d, unlabelled %d; want 4, 2, 1", *r.Humans, *r.FalsePositives, *r.Unlabelled)
	}
	// 4 of 6 bots detected; 4 true of 6 labelled detections.
	if *r.Precision != 4.0/6 || *r.Recall != 4.0/6 {
		t.Errorf("precision %v, recall %v; want 4/6 both", *r.Precision, *r.Recall)
	}
	want := map[string]ScenarioReport{
		"scraper":      {Visitors: 4, Detected: 3, Recall: 0.75},
		"low-and-slow": {Visitors: 2, Detected: 1, Recall: 0.5},
	}
	if len(r.Scenarios) != len(want) {
		t.Errorf("scenarios %v, want %v", r.Scenarios, want)
	}
	for name, w := range want {
		if got := r.Scenarios[name]; got != w {
			t.Errorf("scenario %s: %+v, want %+v", name, got, w)
		}
	}
	// Top: best detection per visitor, by score.
	var top []string
	for _, d := range r.Top {
		top = append(top, d.Site+"|"+d.Visitor+"="+d.Label)
	}
	if got := strings.Join(top, " "); got != "a|10=scraper b|20=low-and-slow b|10=scraper a|01=human b|11=scraper b|01=human c|99=" {
		t.Errorf("top = %s", got)
	}
	if r.Top[0].Score != 9 {
		t.Errorf("top score %v, want the visitor's best, 9", r.Top[0].Score)
	}

	js, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"events", "events_per_second", "humans", "false_positives", "precision", "recall", "scenarios", "top_detections"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON report lacks %q: %s", k, js)
		}
	}
}

func TestEvaluateEdgeCases(t *testing.T) {
	// No detections: precision and recall 0, not NaN.
	var r Report
	r.evaluate(nil, map[string]string{"a|01": "human", "a|02": "scraper"})
	if *r.Precision != 0 || *r.Recall != 0 || r.Scenarios["scraper"].Recall != 0 || len(r.Top) != 0 {
		t.Errorf("no detections: %+v", r)
	}
	if _, err := json.Marshal(&r); err != nil {
		t.Errorf("no detections: %v", err)
	}
	// Humans only: no scenarios, and every detection is a false positive.
	r = Report{}
	r.evaluate([]records.Detection{det("a", "01", 2)}, map[string]string{"a|01": "human"})
	if *r.FalsePositives != 1 || *r.Precision != 0 || len(r.Scenarios) != 0 {
		t.Errorf("humans only: %+v", r)
	}
}

func TestEvaluateWithoutLabels(t *testing.T) {
	var r Report
	r.evaluate([]records.Detection{det("a", "01", 2), det("a", "01", 3), det("a", "02", 1)}, nil)
	if r.Detections != 3 || r.DetectedVisitors != 2 || len(r.Top) != 2 {
		t.Errorf("detections %d of %d visitors, top %d; want 3 of 2, 2", r.Detections, r.DetectedVisitors, len(r.Top))
	}
	js, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"humans", "false_positives", "precision", "recall", "scenarios", "unlabelled_detected_visitors"} {
		if bytes.Contains(js, []byte(`"`+k+`"`)) {
			t.Errorf("JSON report without labels has %q: %s", k, js)
		}
	}
	var text bytes.Buffer
	r.writeText(&text)
	if !strings.Contains(text.String(), "no precision or recall") || strings.Contains(text.String(), "precision 0") {
		t.Errorf("text report without labels:\n%s", text.String())
	}
}

// TestScanFile checks that labels are keyed by the visitor ids the services
// compute, so that they join the detections' site|visitor.
func TestScanFile(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reqs := []traffic.Request{
		{Time: start, Site: "a.example", ClientIP: "192.0.2.1", Method: "GET", Path: "/", Status: 200, Label: "human"},
		{Time: start.Add(time.Second), Site: "a.example", ClientIP: "192.0.2.2", Method: "GET", Path: "/x", Status: 200, Label: "scraper"},
		{Time: start.Add(2 * time.Second), Site: "a.example", ClientIP: "192.0.2.2", Method: "GET", Path: "/y", Status: 200, Label: "human"},
		{Time: start.Add(3 * time.Second), Site: "b.example", ClientIP: "192.0.2.1", Method: "GET", Path: "/", Status: 200, Label: "human"},
	}
	var buf bytes.Buffer
	if err := traffic.WriteJSONL(&buf, reqs, true); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("{not json\n\n")
	path := filepath.Join(t.TempDir(), "live.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := features.NewIdentity(features.IdentityIP, []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := scanFile(t.Context(), path, replay.DefaultConfig(), id)
	if err != nil {
		t.Fatal(err)
	}
	if s.events != 5 || !s.first.Equal(start) || !s.last.Equal(start.Add(3*time.Second)) {
		t.Errorf("events %d from %v to %v", s.events, s.first, s.last)
	}
	key := func(site, ip string) string {
		var ev features.Event
		dec, _ := features.NewDecoder(replay.DefaultConfig().Fields)
		if err := dec.Decode([]byte(`{"EdgeStartTimestamp":"2026-01-01T00:00:00Z","ZoneName":"`+site+`","ClientIP":"`+ip+`"}`), &ev); err != nil {
			t.Fatal(err)
		}
		v, err := id.Visitor(&ev)
		if err != nil {
			t.Fatal(err)
		}
		return site + "|" + records.VisitorID(v)
	}
	want := map[string]string{
		key("a.example", "192.0.2.1"): "human",
		key("a.example", "192.0.2.2"): "scraper", // a bot label wins over human
		key("b.example", "192.0.2.1"): "human",
	}
	if len(s.labels) != len(want) {
		t.Errorf("labels %v, want %v", s.labels, want)
	}
	for k, w := range want {
		if s.labels[k] != w {
			t.Errorf("label of %s = %q, want %q", k, s.labels[k], w)
		}
	}

	// Without label fields there are no labels at all.
	buf.Reset()
	if err := traffic.WriteJSONL(&buf, reqs, false); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err = scanFile(t.Context(), path, replay.DefaultConfig(), id); err != nil || s.labels != nil {
		t.Errorf("unlabelled traffic: labels %v, %v; want nil", s.labels, err)
	}
}

func TestFlags(t *testing.T) {
	var out bytes.Buffer
	if code := run(t.Context(), []string{"-h"}, &out, &out); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	for _, f := range []string{"-duration", "-report-json", "-history", "-traffic", "-kafka", "-sites", "-visitors", "-events", "-bots", "-seed", "-keep-logs", "-baseline-flags", "-detector-flags", "-publisher-flags"} {
		if !strings.Contains(out.String(), "  "+f+" ") && !strings.Contains(out.String(), "  "+f+"\n") {
			t.Errorf("-h does not explain %s", f)
		}
	}
	for _, args := range [][]string{{"-duration", "-1s"}, {"extra"}, {"-bots", "robot=1"}} {
		out.Reset()
		if code := run(t.Context(), args, &out, &out); code != 2 {
			t.Errorf("%q: exit %d, want 2\n%s", args, code, out.String())
		}
	}
}

func TestNum(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := num(n); got != want {
			t.Errorf("num(%d) = %q, want %q", n, got, want)
		}
	}
}
