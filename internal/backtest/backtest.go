// Package backtest runs the services' own code on JSONL request logs,
// without servers and in event time: the baseline service's build (from a
// baseline.MemoryHistory, which computes exactly what its SQL does), the
// detector's Processor (over in-memory feature stores) and the publisher's
// Selector. replay backtest is its command: operators try settings on
// their own logs before the services run them, and the quality tests
// measure detection with it.
//
// A run is what make demo does with the same files: the history is read
// by the baseline service and the detector alike, with no baseline yet;
// every site's baseline is built from it; then the live traffic is scored,
// and its scores selected into detections.
package backtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/baseline"
	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/detector"
	"github.com/anomalyd/anomalyd/internal/publisher"
	"github.com/anomalyd/anomalyd/internal/replay"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
	"github.com/anomalyd/anomalyd/pkg/model"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// Config is the services' settings a backtest uses, each registered with
// the services' own flags.
type Config struct {
	Features features.Config
	Build    baseline.BuildConfig
	Scoring  detector.ScoringConfig
	Select   publisher.SelectConfig
}

// DefaultConfig is the services' defaults, with an identity secret of its
// own (visitor ids are only comparable under one secret).
func DefaultConfig() Config {
	fc := features.Config{Window: features.DefaultWindow(), Fields: features.DefaultFieldMap(), MinRequests: features.DefaultMinRequests,
		Secret: DefaultSecret, Classes: features.DefaultClassRules}
	return Config{Features: fc, Build: baseline.DefaultBuildConfig(), Scoring: detector.DefaultScoringConfig(), Select: publisher.DefaultSelectConfig()}
}

// DefaultSecret keys the visitor ids of a backtest unless told otherwise.
const DefaultSecret = "replay backtest identity secret"

// Validate reports the first unusable setting, naming its flag.
func (c *Config) Validate() error {
	if err := c.Features.Validate(); err != nil {
		return err
	}
	c.syncBuild()
	for _, v := range []interface{ Validate() error }{&c.Build, &c.Scoring, &c.Select} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// syncBuild gives the build what it shares with the detector, as
// cmd/baseline does.
func (c *Config) syncBuild() {
	c.Build.Window, c.Build.Set, c.Build.MinRequests = c.Features.Window, c.Features.Set(), c.Features.MinRequests
}

// Site is one site's baselines, as the baseline service would have built
// them from the history; baseline.Pooled is the baselines pooled over every
// site. The top-level fields are of the browser class.
type Site struct {
	Site      string      `json:"site"`
	Status    string      `json:"status"` // ok, too-few, error
	Windows   int         `json:"windows,omitempty"`
	Suspects  int         `json:"suspects,omitempty"` // visitors of the history left out as bots
	Threshold float64     `json:"threshold,omitempty"`
	Error     string      `json:"error,omitempty"`
	Classes   []ClassSite `json:"classes,omitempty"`
}

// ClassSite is the baseline of one class of a site.
type ClassSite struct {
	Class     string  `json:"class"`
	Status    string  `json:"status"`
	Windows   int     `json:"windows,omitempty"`
	Suspects  int     `json:"suspects,omitempty"`
	Threshold float64 `json:"threshold,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// Result is what a backtest produced.
type Result struct {
	// HistoryEvents and Events are the lines read of each; Malformed the
	// lines of either that the services would dead-letter.
	HistoryEvents int64 `json:"history_events"`
	Events        int64 `json:"events"`
	Malformed     int64 `json:"malformed"`
	// Sites are the baselines built from the history.
	Sites []Site `json:"sites"`
	// Scores counts the live score records; Detections are the detections
	// the publisher would have published, in order.
	Scores     int64               `json:"scores"`
	Detections []records.Detection `json:"-"`
}

// batchSize is how many events go through the Processor at once; scores
// do not depend on it.
const batchSize = 4096

// Run backtests cfg, a validated config, on the history and live traffic
// read from the two readers (JSON lines, gunzipped already).
func Run(ctx context.Context, cfg Config, history, live io.Reader) (*Result, error) {
	cfg.syncBuild()
	res := &Result{}
	hist, err := newHistory(cfg.Features)
	if err != nil {
		return nil, err
	}
	var models Models
	dc := detector.DefaultConfig()
	dc.ScoringConfig = cfg.Scoring
	// Event time is the files', whatever the clock says.
	dc.EventTime = service.EventTimeConfig{MaxAhead: 100 * 365 * 24 * time.Hour}
	proc, err := detector.NewProcessor(dc, cfg.Features, func() (detector.Store, error) {
		return memoryStore{featurestore.NewMemoryStore(cfg.Features.Window)}, nil
	}, &models, detector.NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		return nil, err
	}

	// The history: into the baseline's history and through the detector,
	// which has no baseline yet and so scores nothing.
	err = eachBatch(ctx, history, func(msgs []kafka.Message) error {
		res.HistoryEvents += int64(len(msgs))
		hist.add(msgs)
		b, err := proc.Process(ctx, msgs)
		res.Malformed += int64(len(b.DeadLetters))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the history: %w", err)
	}

	// The detector had no baseline during the history; it has them now.
	models, res.Sites = buildAll(ctx, cfg.Build, hist.mem)

	sel := publisher.NewSelector(cfg.Select)
	var sc records.Score
	err = eachBatch(ctx, live, func(msgs []kafka.Message) error {
		res.Events += int64(len(msgs))
		b, err := proc.Process(ctx, msgs)
		if err != nil {
			return err
		}
		res.Malformed += int64(len(b.DeadLetters))
		for _, m := range b.Scores {
			sc = records.Score{}
			if err := json.Unmarshal(m.Value, &sc); err != nil {
				return fmt.Errorf("decoding a score record: %w", err)
			}
			if sc.Model != "" || sc.Allowed { // no policy here: neither candidates nor allow-lists
				continue
			}
			res.Scores++
			visitor, err := records.ParseVisitorID(sc.Visitor)
			if err != nil {
				return err
			}
			if d, outcome := sel.Select(&sc, visitor, nil); outcome == publisher.Published {
				res.Detections = append(res.Detections, d)
			}
			res.Detections = append(res.Detections, sel.GroupDetections()...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the live traffic: %w", err)
	}
	return res, nil
}

// eachBatch calls fn with the non-empty lines of r as messages, a batch at
// a time, in order.
func eachBatch(ctx context.Context, r io.Reader, fn func([]kafka.Message) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), replay.MaxLine)
	msgs := make([]kafka.Message, 0, batchSize)
	for line := int64(1); sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		msgs = append(msgs, kafka.Message{Value: bytes.Clone(b), Offset: line})
		if len(msgs) == batchSize {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(msgs); err != nil {
				return err
			}
			msgs = msgs[:0]
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(msgs) > 0 {
		return fn(msgs)
	}
	return nil
}

// Models are the baselines that judge every site's traffic classes, as
// the detector's BaselineSource: a class is judged as the baseline
// service judges it (baseline.Baselines.Get), by its site's baseline, else
// by the pooled one, else by its site's browser baseline, each with the
// site's known visitors.
type Models struct {
	sites map[string]*[features.NumClasses]*model.Baseline
}

// Get returns the baseline that judges class for site.
func (m Models) Get(_ context.Context, site string, class features.Class) (*model.Baseline, string, bool) {
	if s := m.sites[site]; s != nil && s[class] != nil {
		return s[class], "backtest", true
	}
	return nil, "", false
}

// Baselines builds every site's baseline from the history read from r, as
// Run does.
func Baselines(ctx context.Context, cfg Config, r io.Reader) (Models, []Site, error) {
	cfg.syncBuild()
	hist, err := newHistory(cfg.Features)
	if err != nil {
		return Models{}, nil, err
	}
	if err := eachBatch(ctx, r, func(msgs []kafka.Message) error { hist.add(msgs); return nil }); err != nil {
		return Models{}, nil, fmt.Errorf("reading the history: %w", err)
	}
	models, sites := buildAll(ctx, cfg.Build, hist.mem)
	return models, sites, nil
}

// history is what the baseline service stores of the history: each
// decodable event as its row.
type history struct {
	dec *features.Decoder
	obs *features.Observer
	mem *baseline.MemoryHistory
	ev  features.Event
	o   features.Observation
}

func newHistory(fc features.Config) (*history, error) {
	id, err := features.NewIdentity(fc.Identity, []byte(fc.Secret))
	if err != nil {
		return nil, err
	}
	dec, err := features.NewDecoder(fc.Fields)
	if err != nil {
		return nil, err
	}
	return &history{dec: dec, obs: features.NewObserver(fc.Window, id, fc.Classifier()), mem: baseline.NewMemoryHistory()}, nil
}

// add stores the events of msgs that decode, as ingest does.
func (h *history) add(msgs []kafka.Message) {
	for _, m := range msgs {
		if h.dec.Decode(m.Value, &h.ev) == nil && h.obs.Observe(&h.ev, &h.o) == nil {
			h.mem.Add(h.ev.Site, &h.o)
		}
	}
}

// buildAll builds the baselines of every site of mem and the pooled
// ones, as the baseline service does, and what judges each site's classes.
func buildAll(ctx context.Context, cfg baseline.BuildConfig, mem *baseline.MemoryHistory) (Models, []Site) {
	var sites []Site
	stats := mem.Sites()
	var newest time.Time
	for _, st := range stats {
		if st.Newest.After(newest) {
			newest = st.Newest
		}
	}
	if len(stats) > 0 {
		stats = append(stats, chstore.SiteStats{Site: baseline.Pooled, Newest: newest})
	}
	builds := make(map[string]*baseline.Built)
	for _, st := range stats {
		s := Site{Site: st.Site, Status: baseline.StatusOK}
		built, err := baseline.Build(ctx, mem, cfg, st.Site, st.Newest)
		if err != nil {
			s.Status, s.Error = baseline.StatusError, err.Error()
			sites = append(sites, s)
			continue
		}
		builds[st.Site] = built
		for c := range features.Class(features.NumClasses) {
			cs := ClassSite{Class: c.String(), Status: baseline.StatusOK}
			switch b, err := built.Baselines[c], built.Errs[c]; {
			case errors.Is(err, baseline.ErrTooFewWindows):
				cs.Status, cs.Error = baseline.StatusTooFew, err.Error()
			case err != nil:
				cs.Status, cs.Error = baseline.StatusError, err.Error()
			default:
				cs.Windows, cs.Suspects, cs.Threshold = b.Windows, b.Suspects, b.Model.Threshold()
			}
			if c == features.ClassBrowser {
				s.Status, s.Windows, s.Suspects, s.Threshold, s.Error = cs.Status, cs.Windows, cs.Suspects, cs.Threshold, cs.Error
			}
			s.Classes = append(s.Classes, cs)
		}
		sites = append(sites, s)
	}
	models := Models{sites: make(map[string]*[features.NumClasses]*model.Baseline)}
	pooled := builds[baseline.Pooled]
	for site, built := range builds {
		if site == baseline.Pooled {
			continue
		}
		served := new([features.NumClasses]*model.Baseline)
		for c := range features.Class(features.NumClasses) {
			bl := built.Baselines[c]
			if bl == nil && pooled != nil {
				bl = pooled.Baselines[c]
			}
			if bl == nil {
				bl = built.Baselines[features.ClassBrowser]
				if bl == nil && pooled != nil {
					bl = pooled.Baselines[features.ClassBrowser]
				}
			}
			if bl != nil {
				served[c] = &model.Baseline{Model: bl.Model, Known: built.Known}
				if bl.Class == c {
					served[c].Starts, served[c].Early = bl.Starts, bl.Early // as Baseline.For serves them
				}
			}
		}
		models.sites[site] = served
	}
	return models, sites
}

// memoryStore is a MemoryStore as a detector.Store: it holds everything
// the window needs, so Reset has nothing to forget.
type memoryStore struct{ *featurestore.MemoryStore }

func (memoryStore) Reset() {}
