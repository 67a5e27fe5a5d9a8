// Package evaluate measures detections against the labels of labelled
// traffic: who was detected among the people and among the bots of each
// scenario, counted per visitor (site and keyed visitor id, as records name
// them). make demo and replay backtest report with it, so that their
// figures mean the same.
//
// A labelled JSONL line has, beside its request fields, "label" (human, or
// the bot scenario), and optionally "group" (the campaign of a coordinated
// attack its bot belongs to) and "profile" (the kind of visitor). The
// pipeline ignores these fields.
package evaluate

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/anomalyd/anomalyd/pkg/records"
)

// HumanLabel is the label of legitimate visitors, people and the
// automation their sites want alike; every other label is a bot scenario.
const HumanLabel = "human"

// Visitor is what the labels say of one visitor, and its traffic class.
type Visitor struct {
	Label   string // HumanLabel or a bot scenario
	Group   string // the coordinated attack it belongs to; "" for none
	Profile string // the kind of visitor, when the traffic says
	// Class is the traffic class of most of its requests, as the
	// services classify them (features.Classifier).
	Class string
}

// Bot reports whether the visitor is labelled a bot.
func (v Visitor) Bot() bool { return v.Label != HumanLabel }

// Labels maps Key(site, visitor) to what the traffic says of the visitor.
type Labels map[string]Visitor

// Key joins labels and detections: site, '|', visitor id (16 hex digits),
// as records.Key writes a record's key.
func Key(site, visitor string) string { return site + "|" + visitor }

// add records what a request says of its visitor. A visitor whose requests
// carry several labels takes the first bot label seen: a bot behind a
// person's address is still a bot to find.
func (l Labels) add(key string, v Visitor) {
	if old, ok := l[key]; !ok || (!old.Bot() && v.Bot()) {
		v.Class = old.Class
		l[key] = v
	}
}

// Quality is what the detections found among labelled visitors. The label
// fields are nil without labels.
type Quality struct {
	// Detections are the detection records, of DetectedVisitors distinct
	// visitors.
	Detections       int64 `json:"detections"`
	DetectedVisitors int   `json:"detected_visitors"`
	// Humans is the number of human visitors, FalsePositives how many of
	// them were detected, HumanFalsePositiveRate their ratio. Precision
	// is detected bots over detected labelled visitors (0 when none was
	// detected), Recall detected bots over bots.
	Humans                 *int     `json:"humans,omitempty"`
	FalsePositives         *int     `json:"false_positives,omitempty"`
	HumanFalsePositiveRate *float64 `json:"human_false_positive_rate,omitempty"`
	Precision              *float64 `json:"precision,omitempty"`
	Recall                 *float64 `json:"recall,omitempty"`
	// Scenarios break the bots down by label. Coordinated is the recall
	// over the members of coordinated attacks (bots with a group), and
	// Individual over the other bots.
	Scenarios   map[string]Recall `json:"scenarios,omitempty"`
	Coordinated *Recall           `json:"coordinated,omitempty"`
	Individual  *Recall           `json:"individual,omitempty"`
	// Profiles break the humans down by profile, where the traffic names
	// them: how many of each kind of visitor were detected.
	Profiles map[string]Recall `json:"profiles,omitempty"`
	// Classes break people and bots down by traffic class.
	Classes map[string]ClassQuality `json:"classes,omitempty"`
	// Unlabelled counts detected visitors that are not in the labelled
	// traffic.
	Unlabelled *int `json:"unlabelled_detected_visitors,omitempty"`
	// Groups are the coordinated attacks the detections name, largest
	// first.
	Groups []Group `json:"groups,omitempty"`
	// Top are the highest-scoring detected visitors, at most 10, each with
	// its highest-scoring detection.
	Top []TopDetection `json:"top_detections"`
}

// Recall is how many visitors of a kind there were and how many of them
// were detected.
type Recall struct {
	Visitors int     `json:"visitors"`
	Detected int     `json:"detected"`
	Recall   float64 `json:"recall"`
}

func (r *Recall) count(detected bool) {
	r.Visitors++
	if detected {
		r.Detected++
	}
	r.Recall = ratio(r.Detected, r.Visitors)
}

// Group is one coordinated attack the detections name: its members, and
// with labels, how many of them each label has.
type Group struct {
	ID      string         `json:"id"`
	Site    string         `json:"site"`
	Members int            `json:"members"`
	Labels  map[string]int `json:"labels,omitempty"`
}

// groupsOf returns the groups of the detections, largest first.
func groupsOf(detections []records.Detection, labels Labels) []Group {
	members := make(map[string]map[string]bool)
	site := make(map[string]string)
	for _, d := range detections {
		if d.Group == "" {
			continue
		}
		if members[d.Group] == nil {
			members[d.Group] = make(map[string]bool)
		}
		members[d.Group][Key(d.Site, d.Visitor)] = true
		site[d.Group] = d.Site
	}
	var out []Group
	for id, ms := range members {
		g := Group{ID: id, Site: site[id], Members: len(ms)}
		if labels != nil {
			g.Labels = make(map[string]int)
			for k := range ms {
				g.Labels[cmp.Or(labels[k].Label, "unlabelled")]++
			}
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Group) int { return cmp.Or(cmp.Compare(b.Members, a.Members), strings.Compare(a.ID, b.ID)) })
	return out
}

// ClassQuality is what the detections found among the visitors of one
// traffic class.
type ClassQuality struct {
	Humans                 int     `json:"humans"`
	FalsePositives         int     `json:"false_positives"`
	HumanFalsePositiveRate float64 `json:"human_false_positive_rate"`
	Bots                   int     `json:"bots"`
	Detected               int     `json:"detected"`
	Recall                 float64 `json:"recall"`
}

func (c *ClassQuality) count(bot, detected bool) {
	switch {
	case bot:
		c.Bots++
		if detected {
			c.Detected++
		}
	default:
		c.Humans++
		if detected {
			c.FalsePositives++
		}
	}
	c.HumanFalsePositiveRate, c.Recall = ratio(c.FalsePositives, c.Humans), ratio(c.Detected, c.Bots)
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

// Evaluate measures detections against labels (nil: unlabelled traffic,
// only the detection counts and the top detections).
func Evaluate(detections []records.Detection, labels Labels) Quality {
	var q Quality
	best := make(map[string]records.Detection)
	for _, d := range detections {
		k := Key(d.Site, d.Visitor)
		if b, ok := best[k]; !ok || d.Score > b.Score {
			best[k] = d
		}
	}
	q.Detections = int64(len(detections))
	q.DetectedVisitors = len(best)

	keys := slices.SortedFunc(maps.Keys(best), func(a, b string) int {
		return cmp.Or(cmp.Compare(best[b].Score, best[a].Score), strings.Compare(a, b))
	})
	q.Groups = groupsOf(detections, labels)
	q.Top = []TopDetection{}
	for _, k := range keys[:min(10, len(keys))] {
		d := best[k]
		q.Top = append(q.Top, TopDetection{Site: d.Site, Visitor: d.Visitor, Label: labels[k].Label,
			Score: d.Score, Threshold: d.Threshold, Top: d.Top})
	}
	if labels == nil {
		return q
	}

	var humans, fp, bots, tp, unlabelled int
	var coordinated, individual Recall
	scenarios := make(map[string]Recall)
	profiles := make(map[string]Recall)
	classes := make(map[string]ClassQuality)
	for k, v := range labels {
		_, detected := best[k]
		if v.Class != "" {
			c := classes[v.Class]
			c.count(v.Bot(), detected)
			classes[v.Class] = c
		}
		if !v.Bot() {
			humans++
			if detected {
				fp++
			}
			if v.Profile != "" {
				p := profiles[v.Profile]
				p.count(detected)
				profiles[v.Profile] = p
			}
			continue
		}
		bots++
		if detected {
			tp++
		}
		s := scenarios[v.Label]
		s.count(detected)
		scenarios[v.Label] = s
		if v.Group != "" {
			coordinated.count(detected)
		} else {
			individual.count(detected)
		}
	}
	for k := range best {
		if _, ok := labels[k]; !ok {
			unlabelled++
		}
	}
	precision, recall, fpr := ratio(tp, tp+fp), ratio(tp, bots), ratio(fp, humans)
	q.Humans, q.FalsePositives, q.HumanFalsePositiveRate = &humans, &fp, &fpr
	q.Precision, q.Recall = &precision, &recall
	q.Scenarios, q.Unlabelled = scenarios, &unlabelled
	if coordinated.Visitors > 0 {
		q.Coordinated = &coordinated
	}
	if coordinated.Visitors > 0 && individual.Visitors > 0 {
		q.Individual = &individual
	}
	if len(profiles) > 0 {
		q.Profiles = profiles
	}
	if len(classes) > 0 {
		q.Classes = classes
	}
	return q
}

// ratio is n/d, 0 when d is 0.
func ratio(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}
