package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/valyala/fastjson"

	"github.com/anomalyd/anomalyd/internal/replay"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// scan is what the demo learns from reading a traffic file before sending
// it: its span, and the label of each visitor.
type scan struct {
	events      int64
	first, last time.Time // event times; zero without decodable events
	// labels maps visitorKey (site|visitor id under the services' secret)
	// to its label; nil when no line has a "label" field.
	labels map[string]string
}

// scanFile reads a JSONL traffic file (gzipped or not) as the services
// decode it, and computes each labelled event's visitor id with the
// services' identity and secret, so that labels join detections. A visitor
// whose events carry several labels takes the first bot scenario seen: a
// bot behind a human's address is still a bot to find.
func scanFile(ctx context.Context, path string, cfg replay.Config, id *features.Identity) (scan, error) {
	var s scan
	f, err := replay.Open(path, os.Stdin)
	if err != nil {
		return s, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	dec, err := features.NewDecoder(cfg.Fields)
	if err != nil {
		return s, fmt.Errorf("reading %s: %w", path, err)
	}
	var (
		ev     features.Event
		parser fastjson.Parser
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), replay.MaxLine)
	for line := int64(1); sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		s.events++
		if s.events%8192 == 0 {
			if err := ctx.Err(); err != nil {
				return s, fmt.Errorf("reading %s: %w", path, err)
			}
		}
		// Lines that do not decode are dead-lettered by the services and
		// belong to no visitor.
		if dec.Decode(b, &ev) != nil {
			continue
		}
		if s.first.IsZero() || ev.Time.Before(s.first) {
			s.first = ev.Time
		}
		if ev.Time.After(s.last) {
			s.last = ev.Time
		}
		v, err := parser.ParseBytes(b)
		if err != nil {
			continue
		}
		label := string(v.GetStringBytes("label"))
		if label == "" {
			continue
		}
		vid, err := id.Visitor(&ev)
		if err != nil {
			continue
		}
		if s.labels == nil {
			s.labels = make(map[string]string)
		}
		k := visitorKey(ev.Site, records.VisitorID(vid))
		if old, ok := s.labels[k]; !ok || (old == traffic.HumanLabel && label != traffic.HumanLabel) {
			s.labels[k] = label
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("reading %s: %w", path, err)
	}
	return s, nil
}
