package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// Report is what a demo run measured, printed as text and written as JSON
// by -report-json. Counts are of the live phase unless named otherwise.
// The label fields (humans to scenarios) are present only when the live
// traffic has "label" fields.
type Report struct {
	// Events is the number of live events sent, DurationSeconds how long
	// sending them took, and EventsPerSecond their ratio.
	Events          int64   `json:"events"`
	DurationSeconds float64 `json:"duration_seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
	// DetectorEventsPerSecond is the detector's processing rate: live
	// events over the seconds from the first one sent until the detector
	// had read them all. With pacing (-duration) it follows the send rate;
	// with -duration 0 it is the pipeline's throughput.
	DetectorEventsPerSecond float64 `json:"detector_events_per_second"`
	// History is the history phase.
	History HistoryReport `json:"history"`
	// Scores are the score records the detector produced; Detections the
	// detection records published, of DetectedVisitors distinct visitors.
	Scores           int64 `json:"scores"`
	Detections       int64 `json:"detections"`
	DetectedVisitors int   `json:"detected_visitors"`
	// Humans is the number of human visitors (site and visitor id) in the
	// live traffic, FalsePositives how many of them were detected.
	// Precision is detected bots over detected labelled visitors (0 when
	// none was detected), Recall detected bots over bots. Scenarios break
	// the bots down by scenario.
	Humans         *int                      `json:"humans,omitempty"`
	FalsePositives *int                      `json:"false_positives,omitempty"`
	Precision      *float64                  `json:"precision,omitempty"`
	Recall         *float64                  `json:"recall,omitempty"`
	Scenarios      map[string]ScenarioReport `json:"scenarios,omitempty"`
	// Unlabelled counts detected visitors that are not in the labelled
	// traffic (with labels only).
	Unlabelled *int `json:"unlabelled_detected_visitors,omitempty"`
	// Sites are the baselines built from the history.
	Sites []SiteReport `json:"sites"`
	// Top are the highest-scoring detected visitors, at most 10, each with
	// its highest-scoring detection.
	Top []TopDetection `json:"top_detections"`
	// WallSeconds is the whole run, from start to report; LogDir where the
	// logs were kept (-keep-logs), else empty.
	WallSeconds float64 `json:"wall_seconds"`
	LogDir      string  `json:"log_dir,omitempty"`
	// HistoryDetections are detections of history events, left out of
	// the figures: the detector can score the history when it asks for a
	// site's baseline while the history is still arriving, and the
	// baseline service builds one from what it has stored by then.
	HistoryDetections int `json:"history_detections,omitempty"`
	// Warnings are what went wrong without stopping the run.
	Warnings []string `json:"warnings,omitempty"`
}

// HistoryReport is the history phase: events replayed, how long sending
// took, and the rates at which they were sent and the detector read them.
type HistoryReport struct {
	Events                  int64   `json:"events"`
	SendSeconds             float64 `json:"send_seconds"`
	EventsPerSecond         float64 `json:"events_per_second"`
	DetectorEventsPerSecond float64 `json:"detector_events_per_second"`
}

// ScenarioReport is the recall of one bot scenario.
type ScenarioReport struct {
	Visitors int     `json:"visitors"`
	Detected int     `json:"detected"`
	Recall   float64 `json:"recall"`
}

// SiteReport is one site's baseline after the history's rebuild.
type SiteReport struct {
	Site    string `json:"site"`
	Status  string `json:"status"`            // ok, too-few, error
	Windows int    `json:"windows,omitempty"` // visitor-windows it learned from
	Error   string `json:"error,omitempty"`
}

// TopDetection is one detected visitor: its best detection and, when the
// traffic is labelled, its label.
type TopDetection struct {
	Site      string                 `json:"site"`
	Visitor   string                 `json:"visitor"`
	Label     string                 `json:"label,omitempty"`
	Score     float64                `json:"score"`
	Threshold float64                `json:"threshold"`
	Top       []records.Contribution `json:"top"`
}

// visitorKey joins labels and detections: site, '|', visitor id (16 hex
// digits), as records.Key writes a record's key.
func visitorKey(site, visitor string) string { return site + "|" + visitor }

// evaluate fills the report's detection figures from the live detections
// and, when labels is not nil, its label figures. labels maps visitorKey
// to traffic.HumanLabel or a scenario.
func (r *Report) evaluate(detections []records.Detection, labels map[string]string) {
	best := make(map[string]records.Detection)
	for _, d := range detections {
		k := visitorKey(d.Site, d.Visitor)
		if b, ok := best[k]; !ok || d.Score > b.Score {
			best[k] = d
		}
	}
	r.Detections = int64(len(detections))
	r.DetectedVisitors = len(best)

	keys := slices.SortedFunc(maps.Keys(best), func(a, b string) int {
		return cmp.Or(cmp.Compare(best[b].Score, best[a].Score), strings.Compare(a, b))
	})
	r.Top = []TopDetection{}
	for _, k := range keys[:min(10, len(keys))] {
		d := best[k]
		r.Top = append(r.Top, TopDetection{Site: d.Site, Visitor: d.Visitor, Label: labels[k],
			Score: d.Score, Threshold: d.Threshold, Top: d.Top})
	}

	if labels == nil {
		return
	}
	var humans, fp, bots, tp, unlabelled int
	scenarios := make(map[string]ScenarioReport)
	for k, label := range labels {
		_, detected := best[k]
		if label == traffic.HumanLabel {
			humans++
			if detected {
				fp++
			}
			continue
		}
		s := scenarios[label]
		s.Visitors++
		bots++
		if detected {
			s.Detected++
			tp++
		}
		scenarios[label] = s
	}
	for name, s := range scenarios {
		s.Recall = ratio(s.Detected, s.Visitors)
		scenarios[name] = s
	}
	for k := range best {
		if _, ok := labels[k]; !ok {
			unlabelled++
		}
	}
	precision, recall := ratio(tp, tp+fp), ratio(tp, bots)
	r.Humans, r.FalsePositives, r.Precision, r.Recall = &humans, &fp, &precision, &recall
	r.Scenarios, r.Unlabelled = scenarios, &unlabelled
}

// ratio is n/d, 0 when d is 0.
func ratio(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// writeText prints the report for people.
func (r *Report) writeText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n=== anomalyd demo report ===\n")
	p("history   %s events sent in %.1fs (%s/s); detector read them at %s/s\n",
		num(r.History.Events), r.History.SendSeconds, num(int64(r.History.EventsPerSecond)), num(int64(r.History.DetectorEventsPerSecond)))
	var ok []string
	for _, s := range r.Sites {
		if s.Status == "ok" {
			ok = append(ok, fmt.Sprintf("%s (%s windows)", s.Site, num(int64(s.Windows))))
		} else {
			ok = append(ok, fmt.Sprintf("%s (NO BASELINE: %s)", s.Site, s.Status))
		}
	}
	p("baselines %d sites: %s\n", len(r.Sites), strings.Join(ok, ", "))
	p("live      %s events in %.1fs: sent %s/s, detector processed %s/s\n",
		num(r.Events), r.DurationSeconds, num(int64(r.EventsPerSecond)), num(int64(r.DetectorEventsPerSecond)))
	p("output    %s scores, %s detections of %s visitors\n", num(r.Scores), num(r.Detections), num(int64(r.DetectedVisitors)))
	if r.Humans != nil {
		bots, detected := 0, 0
		for _, s := range r.Scenarios {
			bots += s.Visitors
			detected += s.Detected
		}
		p("labels    %s human visitors, %s false positives (%.3f%% of humans); %d bots, %d detected\n",
			num(int64(*r.Humans)), num(int64(*r.FalsePositives)), 100*ratio(*r.FalsePositives, *r.Humans), bots, detected)
		p("quality   precision %.3f, recall %.3f", *r.Precision, *r.Recall)
		if *r.Unlabelled > 0 {
			p(" (%d detected visitors not in the labelled traffic)", *r.Unlabelled)
		}
		p("\n")
		for _, name := range slices.Sorted(maps.Keys(r.Scenarios)) {
			s := r.Scenarios[name]
			p("          %-20s %3d of %3d bots detected, recall %.2f\n", name, s.Detected, s.Visitors, s.Recall)
		}
	} else {
		p("labels    none in the traffic: no precision or recall\n")
	}
	if len(r.Top) > 0 {
		p("top detections (score > threshold: why)\n")
		for i, d := range r.Top {
			var why []string
			for _, c := range d.Top {
				why = append(why, fmt.Sprintf("%s=%.3g (+%.1f)", c.Feature, c.Value, c.Contribution))
			}
			label := ""
			if d.Label != "" {
				label = " [" + d.Label + "]"
			}
			p("  %2d. %s %s%s  %.1f > %.1f: %s\n", i+1, d.Site, d.Visitor, label, d.Score, d.Threshold, strings.Join(why, ", "))
		}
	}
	if r.HistoryDetections > 0 {
		p("note      %d detections of history events (scored by a baseline built while the history arrived) are left out\n", r.HistoryDetections)
	}
	for _, warn := range r.Warnings {
		p("WARNING   %s\n", warn)
	}
	p("wall time %s", (time.Duration(r.WallSeconds * float64(time.Second))).Round(100*time.Millisecond))
	if r.LogDir != "" {
		p("; logs kept in %s", r.LogDir)
	}
	p("\n")
}

// num formats n with thousands separators.
func num(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
