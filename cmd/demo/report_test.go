package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/anomalyd/anomalyd/internal/evaluate"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// TestReportJSON checks that the report's JSON has the run's fields and
// the quality's at its top level, as -report-json has always written them.
func TestReportJSON(t *testing.T) {
	r := Report{Events: 10}
	r.Quality = evaluate.Evaluate([]records.Detection{{Site: "a", Visitor: "01", Score: 3, Threshold: 1}},
		evaluate.Labels{"a|01": {Label: "scraper"}, "a|02": {Label: evaluate.HumanLabel}})
	js, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"events", "events_per_second", "scores", "detections", "humans", "false_positives", "precision", "recall", "scenarios", "top_detections", "sites"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON report lacks %q: %s", k, js)
		}
	}
	var text bytes.Buffer
	r.writeText(&text)
	if !strings.Contains(text.String(), "precision 1.000, recall 1.000") {
		t.Errorf("text report:\n%s", text.String())
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
