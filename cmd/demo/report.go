package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/anomalyd/anomalyd/internal/evaluate"
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
	// Scores are the score records the detector produced.
	Scores int64 `json:"scores"`
	// Quality is what the detections found among the labelled visitors
	// (with labels), and the top detections.
	evaluate.Quality
	// Sites are the baselines built from the history.
	Sites []SiteReport `json:"sites"`
	// WallSeconds is the whole run, from start to report; LogDir where the
	// logs were kept (-keep-logs), else empty.
	WallSeconds float64 `json:"wall_seconds"`
	LogDir      string  `json:"log_dir,omitempty"`
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

// SiteReport is one site's baselines after the history's rebuild, as
// the baseline API's site status has them; the site "*" is the pool of
// every site.
type SiteReport struct {
	Site    string        `json:"site"`
	Status  string        `json:"status"`            // of the browser class: ok, too-few, error
	Windows int           `json:"windows,omitempty"` // visitor-windows it learned from
	Error   string        `json:"error,omitempty"`
	Classes []ClassReport `json:"classes,omitempty"`
}

// ClassReport is the baseline of one traffic class of a site.
type ClassReport struct {
	Class    string `json:"class"`
	Status   string `json:"status"`
	Windows  int    `json:"windows,omitempty"`
	Suspects int    `json:"suspects,omitempty"` // visitors of the history left out as bots
	ServedBy string `json:"served_by,omitempty"`
	Error    string `json:"error,omitempty"`
}

// writeText prints the report for people.
func (r *Report) writeText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n=== anomalyd demo report ===\n")
	p("history   %s events sent in %.1fs (%s/s); detector read them at %s/s\n",
		num(r.History.Events), r.History.SendSeconds, num(int64(r.History.EventsPerSecond)), num(int64(r.History.DetectorEventsPerSecond)))
	p("baselines per site and traffic class (* is the pool of every site):\n")
	for _, s := range r.Sites {
		var classes []string
		for _, c := range s.Classes {
			switch {
			case c.Status == "ok":
				classes = append(classes, fmt.Sprintf("%s %s windows (%d left out as bots)", c.Class, num(int64(c.Windows)), c.Suspects))
			case c.ServedBy != "":
				classes = append(classes, fmt.Sprintf("%s by %s", c.Class, c.ServedBy))
			default:
				classes = append(classes, c.Class+" NONE")
			}
		}
		p("          %-22s %s\n", s.Site, strings.Join(classes, ", "))
	}
	p("live      %s events in %.1fs: sent %s/s, detector processed %s/s\n",
		num(r.Events), r.DurationSeconds, num(int64(r.EventsPerSecond)), num(int64(r.DetectorEventsPerSecond)))
	p("output    %s scores, %s detections of %s visitors\n", num(r.Scores), num(r.Detections), num(int64(r.DetectedVisitors)))
	r.Quality.WriteText(w)
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
func num(n int64) string { return evaluate.Num(n) }
