package evaluate

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// WriteText prints the quality lines of a report for people: the labels'
// figures (or that there are none), the breakdowns, and the top
// detections.
func (q *Quality) WriteText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	if q.Humans != nil {
		bots, detected := 0, 0
		for _, s := range q.Scenarios {
			bots += s.Visitors
			detected += s.Detected
		}
		p("labels    %s human visitors, %s false positives (%.3f%% of humans); %d bots, %d detected\n",
			Num(int64(*q.Humans)), Num(int64(*q.FalsePositives)), 100**q.HumanFalsePositiveRate, bots, detected)
		p("quality   precision %.3f, recall %.3f", *q.Precision, *q.Recall)
		if *q.Unlabelled > 0 {
			p(" (%d detected visitors not in the labelled traffic)", *q.Unlabelled)
		}
		p("\n")
		for _, name := range slices.Sorted(maps.Keys(q.Scenarios)) {
			s := q.Scenarios[name]
			p("          %-22s %4d of %4d bots detected, recall %.2f\n", name, s.Detected, s.Visitors, s.Recall)
		}
		if c := q.Coordinated; c != nil {
			p("groups    %d of %d members of coordinated attacks detected, recall %.2f", c.Detected, c.Visitors, c.Recall)
			if i := q.Individual; i != nil {
				p("; other bots %d of %d, recall %.2f", i.Detected, i.Visitors, i.Recall)
			}
			p("\n")
		}
		for _, name := range slices.Sorted(maps.Keys(q.Classes)) {
			c := q.Classes[name]
			p("class     %-8s %5d humans, %d false positives (%.3f%%); %4d bots, %d detected (recall %.2f)\n",
				name, c.Humans, c.FalsePositives, 100*c.HumanFalsePositiveRate, c.Bots, c.Detected, c.Recall)
		}
		for _, name := range slices.Sorted(maps.Keys(q.Profiles)) {
			s := q.Profiles[name]
			p("people    %-22s %4d of %5d detected (%.3f%%)\n", name, s.Detected, s.Visitors, 100*s.Recall)
		}
	} else {
		p("labels    none in the traffic: no precision or recall\n")
	}
	for _, g := range q.Groups {
		var labels []string
		for _, l := range slices.Sorted(maps.Keys(g.Labels)) {
			labels = append(labels, fmt.Sprintf("%s %d", l, g.Labels[l]))
		}
		p("group     %s %s: %d visitors", g.ID, g.Site, g.Members)
		if len(labels) > 0 {
			p(" (%s)", strings.Join(labels, ", "))
		}
		p("\n")
	}
	if len(q.Top) > 0 {
		p("top detections (score > threshold: why)\n")
		for i, d := range q.Top {
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
}

// Num formats n with thousands separators.
func Num(n int64) string {
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
