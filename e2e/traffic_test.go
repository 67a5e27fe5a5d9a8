package e2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/internal/replay"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// vkey is a visitor as the pipeline knows it: its site and its keyed id
// under the stack's identity secret.
type vkey struct {
	site    string
	visitor uint64
}

func (k vkey) String() string { return k.site + "|" + records.VisitorID(k.visitor) }

// detectionKey is the visitor of a detection or score record.
func detectionKey(site, visitor string) (vkey, error) {
	v, err := records.ParseVisitorID(visitor)
	if err != nil {
		return vkey{}, err
	}
	return vkey{site, v}, nil
}

// visitorOf is the visitor of a request event under the tests' identity.
func visitorOf(tb testing.TB, event []byte) vkey {
	tb.Helper()
	dec, err := features.NewDecoder(features.DefaultFieldMap())
	if err != nil {
		tb.Fatal(err)
	}
	var ev features.Event
	if err := dec.Decode(event, &ev); err != nil {
		tb.Fatal(err)
	}
	id, err := identity.Visitor(&ev)
	if err != nil {
		tb.Fatal(err)
	}
	return vkey{ev.Site, id}
}

// visitorInfo is what a batch sent for one visitor.
type visitorInfo struct {
	label   string
	mixed   bool     // requests of more than one label share the visitor id
	buckets []uint32 // window bucket of each request, in order
}

// batch is generated traffic as the requests topic gets it, JSON lines
// with labels, and what the tests check against.
type batch struct {
	name        string
	lines       []byte
	events      int64
	first, last time.Time
	visitors    map[vkey]*visitorInfo // nil unless asked for
}

// generate generates cfg's traffic as a batch. keep, if set, drops the
// requests it refuses. With track, the batch knows each request's visitor
// under id, which decodes the line as the services do.
func generate(name string, cfg traffic.Config, id *features.Identity, track bool, keep func(*traffic.Request) bool) (*batch, error) {
	g, err := traffic.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("generating %s: %w", name, err)
	}
	dec, err := features.NewDecoder(features.DefaultFieldMap())
	if err != nil {
		return nil, err
	}
	w := features.DefaultWindow()
	b := &batch{name: name}
	if track {
		b.visitors = make(map[vkey]*visitorInfo)
	}
	var ev features.Event
	for r, ok := g.Next(); ok; r, ok = g.Next() {
		if keep != nil && !keep(&r) {
			continue
		}
		line, err := r.LabelledJSON()
		if err != nil {
			return nil, fmt.Errorf("generating %s: %w", name, err)
		}
		if b.events == 0 {
			b.first = r.Time
		}
		b.last = r.Time
		b.events++
		b.lines = append(append(b.lines, line...), '\n')
		if !track {
			continue
		}
		if err := dec.Decode(line, &ev); err != nil {
			return nil, fmt.Errorf("generating %s: request %d does not decode: %w", name, b.events, err)
		}
		v, err := id.Visitor(&ev)
		if err != nil {
			return nil, fmt.Errorf("generating %s: request %d: %w", name, b.events, err)
		}
		k := vkey{ev.Site, v}
		info := b.visitors[k]
		if info == nil {
			info = &visitorInfo{label: r.Label}
			b.visitors[k] = info
		} else if info.label != r.Label {
			info.mixed = true
		}
		info.buckets = append(info.buckets, w.Bucket(ev.Time))
	}
	if b.events == 0 {
		return nil, fmt.Errorf("generating %s: no requests", name)
	}
	return b, nil
}

// labels counts the batch's visitors by label.
func (b *batch) labels() map[string]int {
	n := make(map[string]int)
	for _, info := range b.visitors {
		n[info.label]++
	}
	return n
}

// send produces the batch to the requests topic with replay's Sender, at
// most rate events per second (0: as fast as the broker takes them), and
// fails unless every line was sent.
func send(ctx context.Context, brokers []string, b *batch, rate float64) (replay.Stats, error) {
	cfg := replay.DefaultConfig()
	cfg.Rate, cfg.Progress = rate, 0
	w := replay.NewKafkaWriter(brokers, pipeline.TopicRequests, cfg.Batch)
	st, err := replay.Send(ctx, cfg, bytes.NewReader(b.lines), w)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return st, fmt.Errorf("sending %s: %w", b.name, err)
	}
	if st.Events != b.events || st.Malformed != 0 {
		return st, fmt.Errorf("sending %s: %v, want %d events and none malformed", b.name, st, b.events)
	}
	return st, nil
}

// quality is detection quality per visitor: who was detected among the
// visitors of a batch, by label.
type quality struct {
	visitors map[string]int // by label
	detected map[string]int // by label; visitors with at least one detection
	unknown  int            // detected visitors that are not in the batch
	mixed    int            // visitors whose id carries more than one label
	fps      []string       // detected humans, for the log
}

// evaluate counts the detected visitors of b, per label.
func evaluate(b *batch, dets []records.Detection) (quality, error) {
	q := quality{visitors: b.labels(), detected: make(map[string]int)}
	seen := make(map[vkey]bool)
	for _, d := range dets {
		k, err := detectionKey(d.Site, d.Visitor)
		if err != nil {
			return q, fmt.Errorf("detection of %s|%s: %w", d.Site, d.Visitor, err)
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		info := b.visitors[k]
		switch {
		case info == nil:
			q.unknown++
		default:
			q.detected[info.label]++
			if info.label == traffic.HumanLabel {
				q.fps = append(q.fps, fmt.Sprintf("%s (%d requests, score %.2f over %.2f)", k, len(info.buckets), d.Score, d.Threshold))
			}
		}
	}
	for _, info := range b.visitors {
		if info.mixed {
			q.mixed++
		}
	}
	slices.Sort(q.fps)
	return q, nil
}

// precision is the share of detected visitors that are bots; visitors the
// batch does not know count against it.
func (q quality) precision() float64 {
	var bots, all int
	for l, n := range q.detected {
		all += n
		if l != traffic.HumanLabel {
			bots += n
		}
	}
	all += q.unknown
	if all == 0 {
		return 0
	}
	return float64(bots) / float64(all)
}

// recall is the share of bot visitors detected.
func (q quality) recall() float64 {
	var found, all int
	for l, n := range q.visitors {
		if l != traffic.HumanLabel {
			all += n
			found += q.detected[l]
		}
	}
	if all == 0 {
		return 0
	}
	return float64(found) / float64(all)
}

func ratio(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

func (q quality) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "precision %.3f, recall %.3f;", q.precision(), q.recall())
	for _, l := range slices.Sorted(maps.Keys(q.visitors)) {
		kind := "recall"
		if l == traffic.HumanLabel {
			kind = "false positive rate"
		}
		fmt.Fprintf(&s, " %s %d/%d detected (%s %.3f);", l, q.detected[l], q.visitors[l], kind, ratio(q.detected[l], q.visitors[l]))
	}
	if q.unknown > 0 {
		fmt.Fprintf(&s, " %d detected visitors not in the traffic;", q.unknown)
	}
	if q.mixed > 0 {
		fmt.Fprintf(&s, " %d visitor ids carry two labels;", q.mixed)
	}
	return strings.TrimSuffix(s.String(), ";")
}
