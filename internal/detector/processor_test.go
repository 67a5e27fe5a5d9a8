package detector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
	"github.com/anomalyd/anomalyd/pkg/hbos"
	"github.com/anomalyd/anomalyd/pkg/model"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// memStore is a MemoryStore as a Store: it holds everything, so Reset has
// nothing to forget.
type memStore struct{ *featurestore.MemoryStore }

func (memStore) Reset() {}

type staticSource map[string]*hbos.Model

func (s staticSource) Get(_ context.Context, site string, _ features.Class) (*model.Baseline, string, bool) {
	m, ok := s[site]
	return &model.Baseline{Model: m}, "v1", ok
}

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func testFeatures() features.Config {
	return features.Config{
		Window: features.DefaultWindow(), Identity: features.IdentityIP,
		Secret: "detector test secret 0123", Fields: features.DefaultFieldMap(), MinRequests: 3,
	}
}

// testModel fits a model of the detector's features on ordinary visitors.
func testModel(t testing.TB) *hbos.Model {
	t.Helper()
	names := features.Set(0).Names()
	cols := make([][]float64, len(names))
	for i := range 500 {
		a := features.Aggregate{}
		a.Counts[features.CountRequests] = uint64(3 + i%20)
		a.Counts[features.CountNoReferer] = uint64(i % 3)
		a.Distinct[features.SketchPaths] = uint64(2 + i%9)
		a.Distinct[features.SketchUserAgents] = 1
		for j, v := range a.Vector(nil, 0) {
			cols[j] = append(cols[j], v)
		}
	}
	cfg := hbos.DefaultConfig()
	cfg.Contamination = 0.01
	m, err := hbos.FitColumns(cols, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetNames(names); err != nil {
		t.Fatal(err)
	}
	return m
}

// event is a Logpush request of ip at t0+sec on site.
func event(site, ip string, sec int, path string) kafka.Message {
	return kafka.Message{Key: []byte(site + "|" + ip), Value: fmt.Appendf(nil,
		`{"EdgeStartTimestamp":%q,"ClientRequestHost":%q,"ClientIP":%q,"ClientRequestMethod":"GET","ClientRequestPath":%q,"ClientRequestUserAgent":"Mozilla/5.0","ClientRequestReferer":"https://%s/","EdgeResponseStatus":200}`,
		t0.Add(time.Duration(sec)*time.Second).Format(time.RFC3339), site, ip, path, site)}
}

// partitionMessages is trafficMessages as read from one partition: in
// order, with offsets from 0.
func partitionMessages() []kafka.Message {
	msgs := trafficMessages()
	for i := range msgs {
		msgs[i].Partition, msgs[i].Offset = 0, int64(i)
	}
	return msgs
}

// trafficMessages is a few visitors over two sites, one without a
// baseline, and a scraper.
func trafficMessages() []kafka.Message {
	var msgs []kafka.Message
	for s := range 300 {
		for v := range 5 {
			if (s+v)%7 == 0 {
				msgs = append(msgs, event("shop.example", fmt.Sprintf("192.0.2.%d", v+1), s, fmt.Sprintf("/p/%d", s%4)))
			}
		}
		if s%3 == 0 {
			msgs = append(msgs, event("other.example", "198.51.100.7", s, "/"))
		}
		msgs = append(msgs, event("shop.example", "203.0.113.66", s, fmt.Sprintf("/products/%d", s)))
	}
	return msgs
}

func newTestProcessor(t testing.TB, cfg Config, source BaselineSource) (*Processor, *Metrics) {
	t.Helper()
	metrics := NewMetrics(prometheus.NewRegistry())
	p, err := NewProcessor(cfg, testFeatures(), func() (Store, error) {
		return memStore{featurestore.NewMemoryStore(features.DefaultWindow())}, nil
	}, source, metrics)
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return t0.Add(time.Hour) } // the test events' present
	return p, metrics
}

// runBatches processes msgs in batches of size and returns the score
// records.
func runBatches(t *testing.T, p *Processor, msgs []kafka.Message, size int) []records.Score {
	t.Helper()
	var out []records.Score
	for start := 0; start < len(msgs); start += size {
		b, err := p.Process(t.Context(), msgs[start:min(start+size, len(msgs))])
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range b.Scores {
			var s records.Score
			if err := json.Unmarshal(m.Value, &s); err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(); err != nil {
				t.Fatalf("invalid score record %s: %v", m.Value, err)
			}
			if want := string(records.Key(s.Site, s.Visitor)); string(m.Key) != want {
				t.Fatalf("key %q, want %q", m.Key, want)
			}
			out = append(out, s)
		}
	}
	return out
}

// TestScoresDoNotDependOnBatches: a score reflects exactly the requests up
// to the one that triggered it, so any batching gives the same records,
// with any number of workers.
func TestScoresDoNotDependOnBatches(t *testing.T) {
	source := staticSource{"shop.example": testModel(t)}
	msgs := trafficMessages()
	var want []records.Score
	for _, tc := range []struct{ workers, batch int }{{1, len(msgs)}, {1, 1}, {3, 7}, {2, 1000}} {
		cfg := DefaultConfig()
		cfg.Workers = tc.workers
		p, _ := newTestProcessor(t, cfg, source)
		got := runBatches(t, p, msgs, tc.batch)
		// Shards interleave visitors differently; a visitor's own records
		// keep their order.
		slices.SortStableFunc(got, func(a, b records.Score) int { return strings.Compare(a.Visitor, b.Visitor) })
		if want == nil {
			want = got
			if len(want) == 0 {
				t.Fatal("no scores")
			}
			continue
		}
		if !slices.EqualFunc(got, want, func(a, b records.Score) bool {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			return string(ja) == string(jb)
		}) {
			t.Errorf("workers %d, batches of %d: %d records differ from the first run's %d", tc.workers, tc.batch, len(got), len(want))
		}
	}
}

func TestRecencyAndMinRequests(t *testing.T) {
	source := staticSource{"shop.example": testModel(t)}
	// One visitor, a request a second for 100 s.
	var msgs []kafka.Message
	for s := range 100 {
		msgs = append(msgs, event("shop.example", "192.0.2.9", s, "/"))
	}
	tests := []struct {
		rescore time.Duration
		want    []int // seconds of the scored requests
	}{
		// Not before the third request (-min-requests 3), then every
		// request, or once per 30 s of event time.
		{0, nil},
		{30 * time.Second, []int{2, 32, 62, 92}},
	}
	for _, tc := range tests {
		cfg := DefaultConfig()
		cfg.RescoreInterval = tc.rescore
		p, m := newTestProcessor(t, cfg, source)
		got := runBatches(t, p, msgs, 16)
		var secs []int
		for _, s := range got {
			secs = append(secs, int(s.ScoredAt.Sub(t0)/time.Second))
		}
		want := tc.want
		if want == nil {
			for s := 2; s < 100; s++ {
				want = append(want, s)
			}
		}
		if !slices.Equal(secs, want) {
			t.Errorf("rescore %v: scored at %v, want %v", tc.rescore, secs, want)
		}
		if n := testutil.ToFloat64(m.Unscored.WithLabelValues("too_few_requests")); n != 2 {
			t.Errorf("rescore %v: %v too-few-requests, want 2", tc.rescore, n)
		}
		if n := testutil.ToFloat64(m.RecencySkips); n != float64(100-2-len(want)) {
			t.Errorf("rescore %v: %v recency skips, want %d", tc.rescore, n, 100-2-len(want))
		}
	}
}

// TestScoreFrom: requests before -score-from fill their visitors' windows
// but are never scored; the first one after it is due, with the whole
// window.
func TestScoreFrom(t *testing.T) {
	source := staticSource{"shop.example": testModel(t)}
	var msgs []kafka.Message
	for s := range 100 { // a request a second
		msgs = append(msgs, event("shop.example", "192.0.2.9", s, fmt.Sprintf("/p/%d", s)))
	}
	cfg := DefaultConfig() // rescored once per 30 s
	cfg.ScoreFrom = t0.Add(50 * time.Second)
	p, m := newTestProcessor(t, cfg, source)
	got := runBatches(t, p, msgs, 16)
	var secs []int
	for _, s := range got {
		secs = append(secs, int(s.ScoredAt.Sub(t0)/time.Second))
	}
	if want := []int{50, 80}; !slices.Equal(secs, want) {
		t.Fatalf("scored at %v, want %v", secs, want)
	}
	if v := got[0].Features[0]; v.Feature != "log1p_requests" || !explains(v.Value, math.Log1p(51)) {
		t.Errorf("first score's %s = %v, want log1p(51): the backfill's requests in its window", v.Feature, v.Value)
	}
	if n := testutil.ToFloat64(m.Unscored.WithLabelValues("backfill")); n != 50 {
		t.Errorf("%v requests unscored as backfill, want 50", n)
	}
}

// earlySource serves a baseline with an early part of two requests.
type earlySource struct{ bl *model.Baseline }

func (s earlySource) Get(context.Context, string, features.Class) (*model.Baseline, string, bool) {
	return s.bl, "v1", true
}

// TestEarlyRecords: a window of exactly the early part's requests is
// recorded once as a visit's beginning, scored with the early model
// against its own threshold (not -threshold), with its share among the
// history's beginnings; the scores begin at -min-requests as before.
func TestEarlyRecords(t *testing.T) {
	early := &model.Early{Requests: 2, Model: testModel(t), Starts: model.NewStarts()}
	early.Model.SetThreshold(-3) // early models' thresholds may be below 0
	var msgs []kafka.Message
	for s := range 5 {
		msgs = append(msgs, event("shop.example", "192.0.2.9", s, fmt.Sprintf("/p/%d", s)))
	}
	// Another visit of the same visitor, after the window has emptied.
	for s := 900; s < 902; s++ {
		msgs = append(msgs, event("shop.example", "192.0.2.9", s, "/"))
	}
	for _, tc := range []struct {
		name      string
		early     *model.Early
		wantEarly []int // seconds of the early records
	}{
		{"with an early part", early, []int{1, 901}},
		{"without", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Threshold = 4.5
			p, m := newTestProcessor(t, cfg, earlySource{&model.Baseline{Model: testModel(t), Early: tc.early}})
			var earlySecs, scoreSecs []int
			for _, s := range runBatches(t, p, msgs, 3) {
				sec := int(s.ScoredAt.Sub(t0) / time.Second)
				if !s.Early {
					scoreSecs = append(scoreSecs, sec)
					if s.Threshold != 4.5 {
						t.Errorf("score at %d s: threshold %v, want the override 4.5", sec, s.Threshold)
					}
					continue
				}
				earlySecs = append(earlySecs, sec)
				if s.Threshold != -3 || s.Shape == "" || s.ShapeShare != 0.5 {
					t.Errorf("early record at %d s: threshold %v, shape %q share %v; want the early model's -3, a shape, and the share of a shape never seen, 0.5", sec, s.Threshold, s.Shape, s.ShapeShare)
				}
				var sum float64
				for _, f := range s.Features {
					sum += f.Contribution
				}
				if d := sum - s.Score; d > 1e-9 || d < -1e-9 {
					t.Errorf("early record's contributions sum to %v, score %v", sum, s.Score)
				}
			}
			if !slices.Equal(earlySecs, tc.wantEarly) {
				t.Errorf("early records at %v s, want %v", earlySecs, tc.wantEarly)
			}
			if want := []int{2}; !slices.Equal(scoreSecs, want) { // -min-requests 3, then not within -rescore-interval
				t.Errorf("scores at %v s, want %v", scoreSecs, want)
			}
			if n := testutil.ToFloat64(m.Early); n != float64(len(tc.wantEarly)) {
				t.Errorf("%v early records counted, want %d", n, len(tc.wantEarly))
			}
		})
	}
}

func TestScoreRecordFields(t *testing.T) {
	model := testModel(t)
	source := staticSource{"shop.example": model}
	for _, override := range []float64{0, 4.5} {
		cfg := DefaultConfig()
		cfg.Threshold = override
		p, m := newTestProcessor(t, cfg, source)
		got := runBatches(t, p, trafficMessages(), 50)
		if len(got) == 0 {
			t.Fatal("no scores")
		}
		for _, s := range got {
			if s.Site == "other.example" {
				t.Fatalf("scored a site without a baseline: %+v", s)
			}
			want := model.Threshold()
			if override > 0 {
				want = override
			}
			if s.Threshold != want || s.BaselineVersion != "v1" || s.V != records.Version {
				t.Fatalf("record %+v: want threshold %v, version v1", s, want)
			}
			if !s.WindowEnd.After(s.ScoredAt) || s.WindowEnd.Sub(s.WindowStart) != features.DefaultWindow().Span() {
				t.Fatalf("window [%v, %v) for a request at %v", s.WindowStart, s.WindowEnd, s.ScoredAt)
			}
			var sum float64
			for j, f := range s.Features {
				if f.Feature != model.Names()[j] {
					t.Fatalf("feature %d is %q, want %q", j, f.Feature, model.Names()[j])
				}
				sum += f.Contribution
			}
			if d := sum - s.Score; d > 1e-9 || d < -1e-9 {
				t.Fatalf("contributions sum to %v, score %v", sum, s.Score)
			}
		}
		if n := testutil.ToFloat64(m.Unscored.WithLabelValues("no_baseline")); n == 0 {
			t.Error("the site without a baseline was not counted")
		}
	}
}

func TestDeadLetters(t *testing.T) {
	p, m := newTestProcessor(t, DefaultConfig(), staticSource{})
	msgs := []kafka.Message{
		{Value: []byte(`{not json`), Topic: "requests", Partition: 2, Offset: 17},
		event("shop.example", "192.0.2.1", 0, "/"),
		{Value: []byte(`{"EdgeStartTimestamp":"2026-03-02T10:00:00Z","ClientRequestHost":"a.example"}`)},
	}
	b, err := p.Process(t.Context(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.DeadLetters) != 2 {
		t.Fatalf("%d dead letters, want 2", len(b.DeadLetters))
	}
	header := func(m kafka.Message, key string) string {
		for _, h := range m.Headers {
			if h.Key == key {
				return string(h.Value)
			}
		}
		return ""
	}
	if r := header(b.DeadLetters[0], service.HeaderReason); !strings.Contains(r, "invalid JSON") {
		t.Errorf("reason %q", r)
	}
	if s := header(b.DeadLetters[0], service.HeaderSource); s != "requests/2/17" {
		t.Errorf("source %q", s)
	}
	if r := header(b.DeadLetters[1], service.HeaderReason); !strings.Contains(r, `"ClientIP": missing`) {
		t.Errorf("reason %q", r)
	}
	if string(b.DeadLetters[0].Value) != `{not json` {
		t.Error("the dead letter does not keep the original value")
	}
	if n := testutil.ToFloat64(m.DeadLetters.WithLabelValues("malformed")); n != 2 {
		t.Errorf("%v malformed counted, want 2", n)
	}
	if n := testutil.ToFloat64(m.Events); n != 3 {
		t.Errorf("%v events counted, want 3", n)
	}
}

// TestEventTimeBounds: events too far ahead of the clock or behind it are
// dead-lettered with their reason, and do not move their visitor's window
// or recency register: the visitor's real events after them are scored as
// if they had never come.
func TestEventTimeBounds(t *testing.T) {
	at := func(ip, ts string) kafka.Message {
		return kafka.Message{Key: []byte("shop.example|" + ip), Value: fmt.Appendf(nil,
			`{"EdgeStartTimestamp":%s,"ClientRequestHost":"shop.example","ClientIP":%q,"ClientRequestPath":"/"}`, ts, ip)}
	}
	const ip = "192.0.2.1"
	now := t0.Add(time.Hour) // newTestProcessor's clock
	refused := []struct {
		msg    kafka.Message
		reason string
	}{
		{at(ip, `"2056-01-01T00:00:00Z"`), service.ReasonFuture},
		{at(ip, strconv.FormatInt(now.Add(6*time.Minute).Unix(), 10)), service.ReasonFuture},
		{at(ip, `"2004-01-01T00:00:00Z"`), service.ReasonTooOld},
		{at(ip, strconv.FormatInt(now.Add(-9*24*time.Hour).UnixNano(), 10)), service.ReasonTooOld},
	}
	var clean, mixed []kafka.Message
	for sec := range 40 {
		// Every Logpush timestamp format in turn.
		ts := t0.Add(time.Duration(sec) * time.Second)
		m := at(ip, [...]string{strconv.Quote(ts.Format(time.RFC3339)), strconv.FormatInt(ts.Unix(), 10), strconv.FormatInt(ts.UnixNano(), 10)}[sec%3])
		clean, mixed = append(clean, m), append(mixed, m)
		if sec%10 == 2 {
			mixed = append(mixed, refused[sec/10].msg)
		}
	}
	source := staticSource{"shop.example": testModel(t)}
	want := runBatches(t, proc(newTestProcessor(t, DefaultConfig(), source)), clean, 7)
	p, m := newTestProcessor(t, DefaultConfig(), source)
	got := runBatches(t, p, mixed, 7)
	if len(want) == 0 || !slices.EqualFunc(got, want, func(a, b records.Score) bool { return a.ScoredAt.Equal(b.ScoredAt) && a.Score == b.Score }) {
		t.Errorf("with the refused events the visitor was scored %d times, without them %d: they must change nothing", len(got), len(want))
	}
	for _, r := range []string{service.ReasonFuture, service.ReasonTooOld} {
		if n := testutil.ToFloat64(m.DeadLetters.WithLabelValues(r)); n != 2 {
			t.Errorf("%v dead letters counted as %s, want 2", n, r)
		}
	}
	b, err := p.Process(t.Context(), []kafka.Message{refused[0].msg})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.DeadLetters) != 1 {
		t.Fatalf("%d dead letters, want 1", len(b.DeadLetters))
	}
	reason := ""
	for _, h := range b.DeadLetters[0].Headers {
		if h.Key == service.HeaderReason {
			reason = string(h.Value)
		}
	}
	if want := `field "EdgeStartTimestamp": event time too far ahead of the clock: 2056-01-01T00:00:00Z`; !strings.HasPrefix(reason, want) {
		t.Errorf("reason %q, want it to start %q", reason, want)
	}
}

// proc returns the processor of newTestProcessor.
func proc(p *Processor, _ *Metrics) *Processor { return p }

// fakeReader serves msgs once, then blocks, and records commits.
type fakeReader struct {
	mu        sync.Mutex
	msgs      []kafka.Message
	committed []kafka.Message
}

func (r *fakeReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	r.mu.Lock()
	if len(r.msgs) > 0 {
		m := r.msgs[0]
		r.msgs = r.msgs[1:]
		r.mu.Unlock()
		return m, nil
	}
	r.mu.Unlock()
	<-ctx.Done()
	return kafka.Message{}, ctx.Err()
}

func (r *fakeReader) CommitMessages(_ context.Context, msgs ...kafka.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.committed = append(r.committed, msgs...)
	return nil
}

func (r *fakeReader) commits() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.committed)
}

// fakeWriter fails its first failures writes, then records what it gets,
// each write taking delay.
type fakeWriter struct {
	mu       sync.Mutex
	failures int
	delay    time.Duration
	written  []kafka.Message
}

func (w *fakeWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	time.Sleep(w.delay)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failures > 0 {
		w.failures--
		return errors.New("broker unavailable")
	}
	w.written = append(w.written, msgs...)
	return nil
}

// TestCommitsOnlyAfterAcknowledgements: while the scores cannot be
// written, nothing is committed; once they are, every offset is.
func TestCommitsOnlyAfterAcknowledgements(t *testing.T) {
	msgs := partitionMessages()
	reader := &fakeReader{msgs: msgs}
	scores := &fakeWriter{failures: 2}
	dead := &fakeWriter{}
	cfg := DefaultConfig()
	cfg.BatchSize = len(msgs)
	p, metrics := newTestProcessor(t, cfg, staticSource{"shop.example": testModel(t)})
	d := New(cfg, p, reader, scores, dead, metrics, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for reader.commits() < len(msgs) && time.Now().Before(deadline) {
		scores.mu.Lock()
		if scores.failures > 0 && reader.commits() > 0 {
			t.Error("committed while the score records were failing")
		}
		scores.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if reader.commits() != len(msgs) {
		t.Fatalf("%d of %d offsets committed", reader.commits(), len(msgs))
	}
	if len(scores.written) == 0 {
		t.Fatal("no score records written")
	}
	if n := testutil.ToFloat64(metrics.KafkaErrors.WithLabelValues("produce")); n != 2 {
		t.Errorf("%v produce errors counted, want 2", n)
	}
}

// refusingWriter refuses every message as too large, as a broker does
// one above its message.max.bytes.
type refusingWriter struct{}

func (refusingWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	errs := make(kafka.WriteErrors, len(msgs))
	for i := range errs {
		errs[i] = kafka.MessageSizeTooLarge
	}
	return errs
}

// TestWriteRefusedForSizeFailsRun: score records the brokers refuse for
// their size are not retried for ever, and not dropped either: nothing is
// committed, and Run returns an error, so that the process exits failed
// and says why in a line, not in one error per message.
func TestWriteRefusedForSizeFailsRun(t *testing.T) {
	msgs := partitionMessages()
	reader := &fakeReader{msgs: msgs}
	cfg := DefaultConfig()
	cfg.BatchSize = len(msgs)
	p, metrics := newTestProcessor(t, cfg, staticSource{"shop.example": testModel(t)})
	d := New(cfg, p, reader, refusingWriter{}, &fakeWriter{}, metrics, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err := d.Run(ctx)
	if ctx.Err() != nil {
		t.Fatal("Run did not return before its deadline: the refused write was retried")
	}
	if err == nil {
		t.Fatal("Run returned nil after the brokers refused the score records")
	}
	if !service.TooLarge(err) || !strings.Contains(err.Error(), "not written") {
		t.Errorf("error %q does not say the records were too large", err)
	}
	if len(err.Error()) > 500 {
		t.Errorf("error of %d bytes: %.200s...", len(err.Error()), err)
	}
	if n := reader.commits(); n != 0 {
		t.Errorf("%d offsets committed of records never written", n)
	}
}

// TestPipelinedBatchesCommitInOrder: with many small batches and slow
// score writes, so that a batch is scored while the one before it is
// being written, every offset is committed once and in order, and the
// score records are those of the whole stream processed in one batch.
func TestPipelinedBatchesCommitInOrder(t *testing.T) {
	msgs := partitionMessages()
	whole, _ := newTestProcessor(t, DefaultConfig(), staticSource{"shop.example": testModel(t)})
	want, err := whole.Process(t.Context(), msgs)
	if err != nil {
		t.Fatal(err)
	}

	reader := &fakeReader{msgs: msgs}
	scores := &fakeWriter{delay: 5 * time.Millisecond}
	cfg := DefaultConfig()
	cfg.BatchSize = 25
	p, metrics := newTestProcessor(t, cfg, staticSource{"shop.example": testModel(t)})
	d := New(cfg, p, reader, scores, &fakeWriter{}, metrics, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for reader.commits() < len(msgs) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	reader.mu.Lock()
	defer reader.mu.Unlock()
	if len(reader.committed) != len(msgs) {
		t.Fatalf("%d offsets committed, want %d", len(reader.committed), len(msgs))
	}
	for i, m := range reader.committed {
		if m.Offset != int64(i) {
			t.Fatalf("commit %d is offset %d: out of order", i, m.Offset)
		}
	}
	scores.mu.Lock()
	defer scores.mu.Unlock()
	if len(scores.written) != len(want.Scores) {
		t.Fatalf("%d score records, want %d as from one batch", len(scores.written), len(want.Scores))
	}
	// Shards append their records in turn, so the order across visitors
	// depends on the batches; the records do not.
	values := func(ms []kafka.Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, string(m.Value))
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(values(scores.written), values(want.Scores)) {
		t.Error("the score records differ from those of the one-batch run")
	}
}

// brokenReader serves msgs, then fails.
type brokenReader struct{ fakeReader }

func (r *brokenReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.msgs) == 0 {
		return kafka.Message{}, errors.New("group coordinator gone")
	}
	m := r.msgs[0]
	r.msgs = r.msgs[1:]
	return m, nil
}

// TestReaderFailureWhileKafkaIsDown: when the reader fails while a batch's
// records cannot be written, Run gives that batch -shutdown-timeout, then
// returns the reader's error with nothing committed.
func TestReaderFailureWhileKafkaIsDown(t *testing.T) {
	reader := &brokenReader{fakeReader{msgs: trafficMessages()[:50]}}
	cfg := DefaultConfig()
	cfg.BatchSize, cfg.ShutdownTimeout = 50, 300*time.Millisecond
	p, metrics := newTestProcessor(t, cfg, staticSource{"shop.example": testModel(t)})
	d := New(cfg, p, reader, &fakeWriter{failures: math.MaxInt}, &fakeWriter{}, metrics, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- d.Run(t.Context()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "group coordinator gone") {
			t.Errorf("Run = %v, want the reader's error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after the reader failed")
	}
	if n := reader.commits(); n != 0 {
		t.Errorf("%d offsets committed with the records unwritten", n)
	}
}

// TestLivenessMeansProgress: a detector whose score records cannot be
// written holds its batch without committing and, past the stall timeout,
// fails its liveness check, so that Kubernetes restarts it; one that has
// committed everything and waits for more stays alive however long it
// waits.
func TestLivenessMeansProgress(t *testing.T) {
	const stall = 300 * time.Millisecond
	tests := []struct {
		name      string
		failures  int
		wantStall bool
	}{
		{"caught up", 0, false},
		{"writes failing", 1 << 30, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := partitionMessages()
			reader := &fakeReader{msgs: msgs}
			cfg := DefaultConfig()
			cfg.BatchSize = len(msgs)
			cfg.ShutdownTimeout = 100 * time.Millisecond // the failing batch is given up at once
			p, metrics := newTestProcessor(t, cfg, staticSource{"shop.example": testModel(t)})
			progress := service.NewProgress(stall)
			d := New(cfg, p, progress.Watch(reader), &fakeWriter{failures: tt.failures}, &fakeWriter{}, metrics, slog.New(slog.DiscardHandler))
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()

			deadline := time.Now().Add(10 * time.Second)
			for !tt.wantStall && reader.commits() < len(msgs) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(3 * stall)
			err := progress.Live(ctx)
			cancel()
			if runErr := <-done; runErr != nil {
				t.Fatal(runErr)
			}
			if (err != nil) != tt.wantStall {
				t.Errorf("Live after %v: %v, want stalled %v (%d of %d committed)", 3*stall, err, tt.wantStall, reader.commits(), len(msgs))
			}
		})
	}
}

// TestPolicy: a site off is not scored, nor are the requests an
// allow-list entry matches (counted, by reason), and a visitor allowed for
// who it is gets an allowed record; a site's threshold and min_requests
// replace the flags'.
func TestPolicy(t *testing.T) {
	pol, err := policy.Parse([]byte(`sites:
  off.example: {off: true}
  shop.example:
    threshold: 7.5
    min_requests: 5
    allow:
      - ip: 192.0.2.1
      - path_prefix: /healthz
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	source := staticSource{"shop.example": testModel(t), "off.example": testModel(t), "other.example": testModel(t)}
	var msgs []kafka.Message
	for s := range 8 {
		msgs = append(msgs,
			event("off.example", "192.0.2.2", s, "/"),
			event("shop.example", "192.0.2.1", s, "/p"),         // allowed by address
			event("shop.example", "192.0.2.3", s, "/healthz/a"), // allowed by path
			event("shop.example", "192.0.2.4", s, "/p"),
			event("other.example", "192.0.2.4", s, "/p"),
		)
	}
	cfg := DefaultConfig()
	cfg.RescoreInterval = 0 // every due request scored
	p, m := newTestProcessor(t, cfg, source)
	p.SetPolicy(func() *policy.Policy { return pol })
	scored := map[string][]int{}
	allowedRecords := 0
	for _, s := range runBatches(t, p, msgs, 7) {
		if s.Allowed {
			// Of the visitor allowed by its address; the one allowed by
			// the path it asks for may send other requests.
			if s.Visitor != scoredVisitor(t, p, "192.0.2.1") || s.Site != "shop.example" || len(s.Features) != 0 {
				t.Errorf("allowed record %+v", s)
			}
			allowedRecords++
			continue
		}
		if s.Early {
			continue
		}
		scored[s.Site] = append(scored[s.Site], int(s.ScoredAt.Sub(t0)/time.Second))
		if want := map[string]float64{"shop.example": 7.5, "other.example": source["other.example"].Threshold()}[s.Site]; s.Threshold != want {
			t.Errorf("%s's threshold %v, want %v", s.Site, s.Threshold, want)
		}
		if s.Visitor != scoredVisitor(t, p, "192.0.2.4") {
			t.Errorf("%s: visitor %s scored; only 192.0.2.4 is not allowed", s.Site, s.Visitor)
		}
	}
	// -min-requests 3 (testFeatures), and shop.example's own 5.
	if want := []int{2, 3, 4, 5, 6, 7}; !slices.Equal(scored["other.example"], want) {
		t.Errorf("other.example scored at %v s, want %v", scored["other.example"], want)
	}
	if want := []int{4, 5, 6, 7}; !slices.Equal(scored["shop.example"], want) {
		t.Errorf("shop.example scored at %v s, want %v (min_requests 5)", scored["shop.example"], want)
	}
	if len(scored["off.example"]) != 0 {
		t.Errorf("the site off scored at %v", scored["off.example"])
	}
	if n := testutil.ToFloat64(m.Unscored.WithLabelValues("site_off")); n != 8 {
		t.Errorf("%v requests of the site off counted, want 8", n)
	}
	if n := testutil.ToFloat64(m.Unscored.WithLabelValues("allowed")); n != 16 {
		t.Errorf("%v allowed requests counted, want 16", n)
	}
	if n := testutil.ToFloat64(m.AllowedRecords); allowedRecords != 8 || n != 8 {
		t.Errorf("%d allowed records, %v counted; want one a request (-rescore-interval 0) of the visitor allowed by address, 8", allowedRecords, n)
	}
}

// scoredVisitor is the keyed visitor id the processor gives ip.
func scoredVisitor(t *testing.T, p *Processor, ip string) string {
	t.Helper()
	d := p.Decode([]kafka.Message{event("x.example", ip, 0, "/")})
	if d.items[0].err != nil {
		t.Fatal(d.items[0].err)
	}
	return records.VisitorID(d.items[0].obs.Visitor)
}

// TestShadowRecords: every live score is followed by a record of each
// candidate model of the baseline, for the same window, under its name,
// scored on its features (some of the detector's, in their order) against
// its own threshold, which -threshold does not replace; a candidate that
// needs a feature the detector does not compute is not scored.
func TestShadowRecords(t *testing.T) {
	names := features.Set(0).Names()
	live := testModel(t)
	// The candidate: the live model's histograms of two features.
	cols := make([][]float64, 2)
	for i := range 500 {
		a := features.Aggregate{}
		a.Counts[features.CountRequests] = uint64(3 + i%20)
		a.Counts[features.CountNoReferer] = uint64(i % 3)
		v := a.Vector(nil, 0)
		cols[0], cols[1] = append(cols[0], v[0]), append(cols[1], v[4])
	}
	cand, err := hbos.FitColumns(cols, hbos.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := cand.SetNames([]string{names[0], names[4]}); err != nil {
		t.Fatal(err)
	}
	cand.SetThreshold(-7)
	ips, err := hbos.FitColumns(cols[:1], hbos.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := ips.SetNames([]string{"log1p_distinct_ips"}); err != nil {
		t.Fatal(err)
	}
	bl := &model.Baseline{Model: live, Shadows: []model.Shadow{{Name: "two", Model: cand}, {Name: "ips", Model: ips}}}
	if dropped := bl.IndexShadows(names); !slices.Equal(dropped, []string{"ips"}) || len(bl.Shadows) != 1 || !slices.Equal(bl.Shadows[0].Index, []int{0, 4}) {
		t.Fatalf("indexed: dropped %v, kept %+v", dropped, bl.Shadows)
	}
	cfg := DefaultConfig()
	cfg.Threshold = 4.5
	p, m := newTestProcessor(t, cfg, earlySource{bl})
	got := runBatches(t, p, trafficMessages(), 50)
	var lives, shadows int
	for i, s := range got {
		if s.Model == "" {
			lives++
			if s.Threshold != 4.5 || len(s.Features) != len(names) {
				t.Fatalf("live record %+v", s)
			}
			continue
		}
		shadows++
		prev := got[i-1]
		if s.Model != "two" || prev.Model != "" || prev.Visitor != s.Visitor || !prev.ScoredAt.Equal(s.ScoredAt) ||
			!prev.WindowStart.Equal(s.WindowStart) || prev.Class != s.Class || prev.BaselineVersion != s.BaselineVersion {
			t.Fatalf("candidate's record %+v does not follow the live one of its window, %+v", s, prev)
		}
		if s.Threshold != -7 || len(s.Features) != 2 || s.Features[0].Feature != names[0] || s.Features[1].Feature != names[4] ||
			s.Features[0].Value != prev.Features[0].Value || s.Features[1].Value != prev.Features[4].Value {
			t.Fatalf("candidate's record: threshold %v, features %+v; live features %+v", s.Threshold, s.Features, prev.Features)
		}
		want, err := cand.Score([]float64{prev.Features[0].Value, prev.Features[4].Value})
		if err != nil || s.Score != want || !explains(s.Features[0].Contribution+s.Features[1].Contribution, s.Score) {
			t.Fatalf("candidate's score %v, want %v (%v); contributions %+v", s.Score, want, err, s.Features)
		}
	}
	if lives == 0 || shadows != lives {
		t.Errorf("%d live records, %d of the candidate", lives, shadows)
	}
	if n := testutil.ToFloat64(m.ShadowScores); n != float64(shadows) {
		t.Errorf("%v candidate records counted, want %d", n, shadows)
	}
	if n := testutil.ToFloat64(m.Scored); n != float64(lives) {
		t.Errorf("%v scores counted, want the %d live ones", n, lives)
	}
}

// TestPolicyClassRules: a site's api_paths in the policy make a browser's
// requests for them without a referer API requests, from the batch after
// the policy is in force.
func TestPolicyClassRules(t *testing.T) {
	msgs := func(from int) []kafka.Message {
		var out []kafka.Message
		for s := from; s < from+4; s++ {
			out = append(out, kafka.Message{Value: fmt.Appendf(nil,
				`{"EdgeStartTimestamp":%q,"ClientRequestHost":"shop.example","ClientIP":"192.0.2.8","ClientRequestMethod":"GET","ClientRequestPath":"/export/%d","ClientRequestUserAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36","EdgeResponseStatus":200}`,
				t0.Add(time.Duration(s)*time.Second).Format(time.RFC3339), s)})
		}
		return out
	}
	cfg := DefaultConfig()
	cfg.RescoreInterval = 0
	p, _ := newTestProcessor(t, cfg, staticSource{"shop.example": testModel(t)})
	classOf := func(from int) string {
		t.Helper()
		got := runBatches(t, p, msgs(from), 10)
		if len(got) == 0 {
			t.Fatal("no score")
		}
		return got[len(got)-1].Class
	}
	if c := classOf(0); c != "browser" {
		t.Errorf("without the policy: class %s, want browser", c)
	}
	pol, err := policy.Parse([]byte("sites:\n  shop.example:\n    api_paths: [/export]\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p.SetPolicy(func() *policy.Policy { return pol })
	if c := classOf(1000); c != "api" { // another window
		t.Errorf("with the site's api_paths: class %s, want api", c)
	}
}

// TestScoresOnRedis: the detector scores the same traffic alike with its
// windows in memory, in a redis-server and in a Redis Cluster (three
// masters with a replica each), with two workers and small batches.
func TestScoresOnRedis(t *testing.T) {
	source := staticSource{"shop.example": testModel(t)}
	msgs := trafficMessages()
	stores := map[string]func() (Store, error){
		"memory": func() (Store, error) { return memStore{featurestore.NewMemoryStore(features.DefaultWindow())}, nil },
	}
	for name, addrs := range map[string][]string{"redis": {testenv.Redis(t).Addr()}, "redis-cluster": testenv.RedisCluster(t).Addrs()} {
		rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, ContextTimeoutEnabled: true})
		t.Cleanup(func() { rdb.Close() })
		if _, ok := rdb.(*redis.ClusterClient); ok != (name == "redis-cluster") {
			t.Fatalf("%s: client %T", name, rdb)
		}
		stores[name] = func() (Store, error) {
			return featurestore.NewRedisStore(rdb, features.DefaultWindow(), featurestore.RedisOptions{})
		}
	}
	var want []byte
	for _, name := range []string{"memory", "redis", "redis-cluster"} {
		cfg := DefaultConfig()
		cfg.Workers = 2
		p, err := NewProcessor(cfg, testFeatures(), stores[name], source, NewMetrics(prometheus.NewRegistry()))
		if err != nil {
			t.Fatal(err)
		}
		p.now = func() time.Time { return t0.Add(time.Hour) }
		var got []byte
		for start := 0; start < len(msgs); start += 7 {
			b, err := p.Process(t.Context(), msgs[start:min(start+7, len(msgs))])
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := p.Flush(t.Context()); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, m := range b.Scores {
				got = append(append(got, m.Value...), '\n')
			}
		}
		if want == nil {
			if want = got; len(want) == 0 {
				t.Fatal("no scores")
			}
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the score records differ from the memory store's", name)
		}
	}
}

// TestPartitionLag: each partition's lag is its high watermark less the
// offset after the batch's last message of it.
func TestPartitionLag(t *testing.T) {
	d := &Detector{metrics: NewMetrics(prometheus.NewRegistry())}
	d.noteLag([]kafka.Message{
		{Partition: 0, Offset: 10, HighWaterMark: 50}, {Partition: 0, Offset: 11, HighWaterMark: 50},
		{Partition: 3, Offset: 99, HighWaterMark: 100},
	})
	for p, want := range map[string]float64{"0": 38, "3": 0} {
		if got := testutil.ToFloat64(d.metrics.PartitionLag.WithLabelValues(p)); got != want {
			t.Errorf("partition %s: lag %v, want %v", p, got, want)
		}
	}
}

// explains reports whether got, a number of a score record's features, is
// want to the records.ExplanationDigits significant digits they are
// written with (a sum of them, to twice their rounding).
func explains(got, want float64) bool {
	return math.Abs(got-want) <= 2*math.Abs(want)*math.Pow(10, 1-records.ExplanationDigits)
}
