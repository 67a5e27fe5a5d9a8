package evaluate

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/valyala/fastjson"

	"github.com/anomalyd/anomalyd/internal/replay"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// Scan is what reading a JSONL traffic file tells: its span and the
// labels of its visitors.
type Scan struct {
	Events      int64     // non-empty lines
	First, Last time.Time // event times; zero without decodable events
	// Labels maps Key(site, visitor id under the identity) to what the
	// labels say of the visitor; nil when no line has a "label" field.
	Labels Labels
}

// ScanLines reads JSONL traffic from r as the services decode it (fields
// maps the events' keys), and computes each labelled event's visitor id
// with the services' identity and secret, so that labels join detections,
// and its traffic class with classes. Lines that do not decode are counted
// and belong to no visitor: the services dead-letter them.
func ScanLines(ctx context.Context, r io.Reader, fields features.FieldMap, id *features.Identity, classes *features.Classifier) (Scan, error) {
	var s Scan
	dec, err := features.NewDecoder(fields)
	if err != nil {
		return s, err
	}
	var (
		ev     features.Event
		parser fastjson.Parser
		api    = make(map[string][2]int) // requests of each visitor: all, API
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), replay.MaxLine)
	for sc.Scan() {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		s.Events++
		if s.Events%8192 == 0 {
			if err := ctx.Err(); err != nil {
				return s, err
			}
		}
		if dec.Decode(b, &ev) != nil {
			continue
		}
		if s.First.IsZero() || ev.Time.Before(s.First) {
			s.First = ev.Time
		}
		if ev.Time.After(s.Last) {
			s.Last = ev.Time
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
		if s.Labels == nil {
			s.Labels = make(Labels)
		}
		k := Key(ev.Site, records.VisitorID(vid))
		s.Labels.add(k, Visitor{
			Label: label, Group: string(v.GetStringBytes("group")), Profile: string(v.GetStringBytes("profile")),
		})
		n := api[k]
		n[0]++
		if classes.API(&ev) {
			n[1]++
		}
		api[k] = n
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	for k, n := range api {
		v := s.Labels[k]
		v.Class = features.ClassBrowser.String()
		if 2*n[1] > n[0] {
			v.Class = features.ClassAPI.String()
		}
		s.Labels[k] = v
	}
	return s, nil
}

// ScanFile is ScanLines of a file, gunzipped if it is gzipped ("-" is
// stdin).
func ScanFile(ctx context.Context, path string, stdin io.Reader, fields features.FieldMap, id *features.Identity, classes *features.Classifier) (Scan, error) {
	f, err := replay.Open(path, stdin)
	if err != nil {
		return Scan{}, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	s, err := ScanLines(ctx, f, fields, id, classes)
	if err != nil {
		return s, fmt.Errorf("reading %s: %w", path, err)
	}
	return s, nil
}
