package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// env is a Kafka broker with the publisher's topics and a ClickHouse
// server, and what a Publisher needs to run against them.
type env struct {
	kafka   *testenv.KafkaCluster
	ch      *testenv.ClickHouseServer
	conn    driver.Conn
	cfg     Config
	metrics *Metrics
	group   string // the publishers' consumer group
	restore bool   // publishers read back past detections (RestoreFrom)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		kafka:   testenv.Kafka(t, "scores", "detections", "deadletter"),
		cfg:     DefaultConfig(),
		metrics: NewMetrics(prometheus.NewRegistry()),
		group:   "publisher",
	}
	e.cfg.BatchSize, e.cfg.Linger = 300, 100*time.Millisecond
	e.cfg.Select = oneHitConfig() // one score above the threshold publishes
	e.ch, e.conn = testenv.ClickHouseConn(t)
	return e
}

// produce writes values to the scores topic, keyed as the detector keys
// them when the value is a score record.
func (e *env) produce(t *testing.T, values ...[]byte) {
	t.Helper()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{
		Addr: kafka.TCP(e.kafka.Brokers()...), Topic: "scores", Balancer: &kafka.Hash{},
		Transport: transport, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		var s records.Score
		key := []byte("unkeyed")
		if json.Unmarshal(v, &s) == nil && s.Site != "" {
			key = records.Key(s.Site, s.Visitor)
		}
		msgs[i] = kafka.Message{Key: key, Value: v}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// start runs a Publisher in consumer group "publisher" until the returned
// stop is called; stop waits for Run to return and fails the test on error.
func (e *env) start(t *testing.T, pol *policy.Policy) (p *Publisher, stop func()) {
	t.Helper()
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers: e.kafka.Brokers(), Topic: "scores", GroupID: e.group, MaxWait: 100 * time.Millisecond,
	})
	transport := &kafka.Transport{}
	kc := service.KafkaConfig{Brokers: e.kafka.Brokers(), MaxMessageBytes: service.DefaultMaxMessageBytes}
	detections := e.cfg.DetectionsWriter(kc.Writer("detections", transport))
	dlq := &kafka.Writer{
		Addr: kafka.TCP(e.kafka.Brokers()...), Topic: "deadletter", Transport: transport,
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond,
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	p = New(e.cfg, reader, detections, dlq, e.conn, e.metrics, logger)
	p.SetPolicy(func() *policy.Policy { return pol })
	if e.restore {
		p.RestoreFrom(TopicHistory{Brokers: e.kafka.Brokers(), Topic: "detections"})
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = p.Run(ctx) })
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			reader.Close()
			detections.Close()
			dlq.Close()
			transport.CloseIdleConnections()
			if runErr != nil {
				t.Errorf("Publisher.Run: %v", runErr)
			}
		})
	}
	t.Cleanup(stop)
	return p, stop
}

// rows counts the scores table's rows, each replayed score once.
func (e *env) rows(t *testing.T) uint64 {
	t.Helper()
	var n uint64
	if err := e.conn.QueryRow(t.Context(), "SELECT count() FROM scores FINAL").Scan(&n); err != nil {
		return 0 // the table may not exist yet, or ClickHouse is down
	}
	return n
}

// committed is the number of messages of the scores topic whose offsets
// the publisher's group has committed.
func (e *env) committed(t *testing.T) int64 {
	t.Helper()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(e.kafka.Brokers()...), Transport: transport, Timeout: 10 * time.Second}
	parts := make([]int, testenv.DefaultKafkaPartitions)
	for i := range parts {
		parts[i] = i
	}
	resp, err := client.OffsetFetch(t.Context(), &kafka.OffsetFetchRequest{GroupID: e.group, Topics: map[string][]int{"scores": parts}})
	if err != nil {
		t.Fatalf("fetching committed offsets: %v", err)
	}
	var n int64
	for _, p := range resp.Topics["scores"] {
		n += max(p.CommittedOffset, 0) // -1: nothing committed
	}
	return n
}

// read reads n messages of topic with a fresh consumer group, then makes
// sure no further one arrives within quiet.
func (e *env) read(t *testing.T, topic string, n int, quiet time.Duration) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: e.kafka.Brokers(), Topic: topic, GroupID: "check-" + t.Name(), MaxWait: 100 * time.Millisecond,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var msgs []kafka.Message
	for len(msgs) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s: %d of %d messages: %v", topic, len(msgs), n, err)
		}
		msgs = append(msgs, m)
	}
	if quiet > 0 {
		qctx, qcancel := context.WithTimeout(t.Context(), quiet)
		defer qcancel()
		if m, err := r.ReadMessage(qctx); err == nil {
			t.Errorf("%s: a message beyond the %d expected: key %s, %s", topic, n, m.Key, m.Value)
		}
	}
	return msgs
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recent is a time an hour ago, whole seconds: a score time the publisher
// accepts and the table stores exactly.
func recent() time.Time { return time.Now().UTC().Truncate(time.Second).Add(-time.Hour) }

// scores returns JSON score records of n visitors of site at base, every
// third one above the threshold, and the number above it.
func scores(t *testing.T, site string, firstVisitor uint64, n int, base time.Time) (values [][]byte, above int) {
	t.Helper()
	for i := range n {
		score := 5.0
		if i%3 == 0 {
			score, above = 15+float64(i%7), above+1
		}
		s := testScore(site, firstVisitor+uint64(i), 0, score)
		at := base.Add(time.Duration(i) * time.Second)
		s.ScoredAt, s.WindowStart, s.WindowEnd = at, at.Add(-10*time.Minute), at
		js, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, js)
	}
	return values, above
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestPublish(t *testing.T) {
	e := newEnv(t)
	base := recent()
	good, above := scores(t, "a.example", 0x1000, 600, base)
	// One visitor above the threshold is allow-listed.
	pol := mustPolicy(t, "sites:\n  a.example:\n    allow: [{visitor: "+records.VisitorID(0x1000)+"}]\n")
	invalid := testScore("a.example", 1, 0, 20)
	invalid.V = 2
	oldScore := testScore("a.example", 2, 0, 20)
	oldScore.ScoredAt = time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC)
	bad := [][]byte{[]byte(`{"v":1,"site":`), mustJSON(t, invalid), mustJSON(t, oldScore)}

	// Bad messages in the middle, then the whole stream replayed, as a
	// detector that crashed before its commit would.
	stream := append(append(append([][]byte{}, good[:300]...), bad...), good[300:]...)
	e.produce(t, stream...)
	e.start(t, pol)
	waitFor(t, "every score", 30*time.Second, func() bool { return e.rows(t) == uint64(len(good)) })
	e.produce(t, good...)
	total := float64(len(stream) + len(good))
	waitFor(t, "the replay", 30*time.Second, func() bool { return testutil.ToFloat64(e.metrics.ScoresRead) == total })
	waitFor(t, "the commit of the replay", 10*time.Second, func() bool { return e.committed(t) == int64(total) })
	if n := e.rows(t); n != uint64(len(good)) {
		t.Errorf("%d rows with FINAL, want %d: replays collapse", n, len(good))
	}
	if n := testutil.ToFloat64(e.metrics.RowsInserted); n != float64(2*len(good)) {
		t.Errorf("rows_inserted_total %v, want %d", n, 2*len(good))
	}

	// Each visitor above the threshold once, but the allow-listed one;
	// the replay is suppressed as duplicates.
	want := above - 1
	dets := e.read(t, "detections", want, 500*time.Millisecond)
	seen := make(map[string]bool)
	for _, m := range dets {
		var d records.Detection
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatalf("detection %s: %v", m.Value, err)
		}
		if err := d.Validate(); err != nil {
			t.Errorf("detection %s: %v", m.Value, err)
		}
		if string(m.Key) != string(records.Key(d.Site, d.Visitor)) {
			t.Errorf("detection keyed %q, want %q", m.Key, records.Key(d.Site, d.Visitor))
		}
		if d.Visitor == records.VisitorID(0x1000) {
			t.Errorf("the allow-listed visitor was published")
		}
		if seen[d.Visitor] {
			t.Errorf("visitor %s published twice", d.Visitor)
		}
		seen[d.Visitor] = true
		if d.Score <= d.Threshold || len(d.Top) != 3 || d.Top[0].Feature != "paths" ||
			!d.ExpiresAt.Equal(d.DetectedAt.Add(DefaultTTL)) || d.DetectedAt.Before(base) {
			t.Errorf("detection %+v", d)
		}
	}
	for name, c := range map[string]struct {
		got  prometheus.Collector
		want float64
	}{
		"published":  {e.metrics.Published, float64(want)},
		"duplicate":  {e.metrics.Suppressed.WithLabelValues("duplicate"), float64(want)},
		"allow_list": {e.metrics.Suppressed.WithLabelValues("allow_list"), 2},
		"malformed":  {e.metrics.DeadLetters.WithLabelValues("malformed"), 1},
		"invalid":    {e.metrics.DeadLetters.WithLabelValues("invalid"), 2},
	} {
		if got := testutil.ToFloat64(c.got); got != c.want {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}

	dead := e.read(t, "deadletter", len(bad), 0)
	var reasons []string
	for _, m := range dead {
		reasons = append(reasons, header(m, service.HeaderReason))
		if src := header(m, service.HeaderSource); !strings.HasPrefix(src, "scores/") {
			t.Errorf("dead letter source %q, want scores/partition/offset", src)
		}
	}
	joined := strings.Join(reasons, "\n")
	for _, want := range []string{"decoding score record", `field "v": version 2`, `field "scored_at": 1969-07-20T20:17:00Z`} {
		if !strings.Contains(joined, want) {
			t.Errorf("dead-letter reasons %q lack %q", joined, want)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestClickHouseDown checks that nothing is committed while ClickHouse is
// down, that detections still reach the edge meanwhile, and that nothing
// is lost once it is back.
func TestClickHouseDown(t *testing.T) {
	e := newEnv(t)
	e.cfg.Linger = time.Second // each produce is one batch, so all its detections go out at once
	base := recent()
	first, above1 := scores(t, "a.example", 0x1000, 300, base)
	second, above2 := scores(t, "b.example", 0x2000, 300, base)
	e.start(t, nil)
	e.produce(t, first...)
	waitFor(t, "the first scores", 30*time.Second, func() bool { return e.rows(t) == uint64(len(first)) })
	waitFor(t, "the first commit", 10*time.Second, func() bool { return e.committed(t) == int64(len(first)) })

	if err := e.ch.Stop(); err != nil {
		t.Fatal(err)
	}
	e.produce(t, second...)
	// Detections do not wait for ClickHouse.
	e.read(t, "detections", above1+above2, 0)
	waitFor(t, "insert errors", 30*time.Second, func() bool {
		return testutil.ToFloat64(e.metrics.ClickHouseErrors.WithLabelValues(opInsert)) > 0
	})
	time.Sleep(300 * time.Millisecond) // a retry or two
	if n := e.committed(t); n != int64(len(first)) {
		t.Fatalf("%d offsets committed while ClickHouse is down, want %d", n, len(first))
	}

	if err := e.ch.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := len(first) + len(second)
	waitFor(t, "the scores held while ClickHouse was down", 30*time.Second, func() bool { return e.rows(t) == uint64(want) })
	waitFor(t, "the commit", 10*time.Second, func() bool { return e.committed(t) == int64(want) })
}

// TestShutdownFlushes checks that a batch still lingering when shutdown
// begins is inserted and committed, and that Run returns promptly.
func TestShutdownFlushes(t *testing.T) {
	e := newEnv(t)
	e.cfg.BatchSize, e.cfg.Linger = 100_000, time.Minute
	values, _ := scores(t, "a.example", 1, 200, recent())
	_, stop := e.start(t, nil)
	e.produce(t, values...)
	// The batch lingers: nothing is inserted until shutdown.
	waitFor(t, "the table", 30*time.Second, func() bool {
		var n uint64
		return e.conn.QueryRow(t.Context(), "SELECT count() FROM system.tables WHERE name = 'scores'").Scan(&n) == nil && n == 1
	})
	time.Sleep(time.Second) // let the reader fetch what was produced
	if n := e.rows(t); n != 0 {
		t.Fatalf("%d rows before the linger is over", n)
	}
	start := time.Now()
	stop()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if n := e.rows(t); n != uint64(len(values)) {
		t.Errorf("%d rows after shutdown, want %d", n, len(values))
	}
	if n := e.committed(t); n != int64(len(values)) {
		t.Errorf("%d offsets committed after shutdown, want %d", n, len(values))
	}
}

// TestDecode checks what goes to the dead letters and why, without servers.
func TestDecode(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	p := New(DefaultConfig(), nil, nil, nil, nil, NewMetrics(nil), nil)
	p.now = func() time.Time { return now }
	valid := func(edit func(*records.Score)) []byte {
		s := testScore("a.example", 42, 0, 12)
		edit(s)
		return mustJSON(t, s)
	}
	tests := []struct {
		name       string
		value      []byte
		wantReason string
		wantErr    string
	}{
		{"valid", valid(func(*records.Score) {}), "", ""},
		{"unknown fields are ignored", []byte(strings.Replace(string(valid(func(*records.Score) {})), `{`, `{"new_field":[1,2],`, 1)), "", ""},
		{"not JSON", []byte("scores!"), reasonMalformed, "decoding score record"},
		{"trailing data", append(valid(func(*records.Score) {}), " {}"...), reasonMalformed, "decoding score record"},
		{"wrong type", []byte(`{"v":"1"}`), reasonMalformed, "decoding score record"},
		{"null", []byte(`null`), reasonMalformed, "want a JSON object"},
		{"v missing", []byte(`{"site":"a.example"}`), reasonInvalid, `field "v"`},
		{"no features", valid(func(s *records.Score) { s.Features = nil }), reasonInvalid, `field "features"`},
		{"bad visitor", valid(func(s *records.Score) { s.Visitor = "42" }), reasonInvalid, `field "visitor"`},
		{"window before 1970", valid(func(s *records.Score) { s.WindowStart = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC) }), reasonInvalid, `field "window_start"`},
		{"just within -max-event-ahead", valid(func(s *records.Score) { s.ScoredAt = now.Add(5 * time.Minute); s.WindowEnd = s.ScoredAt }), "", ""},
		{"beyond -max-event-ahead", valid(func(s *records.Score) { s.ScoredAt = now.Add(6 * time.Minute); s.WindowEnd = s.ScoredAt }), service.ReasonFuture, `field "scored_at": event time too far ahead of the clock: 2025-06-01T12:06:00Z is 6m0s ahead`},
		{"decades ahead", valid(func(s *records.Score) { s.ScoredAt = now.AddDate(30, 0, 0); s.WindowEnd = s.ScoredAt }), service.ReasonFuture, "2055-06-01T12:00:00Z"},
		{"just within -max-event-age", valid(func(s *records.Score) {
			s.ScoredAt = now.Add(-DefaultRetention)
			s.WindowStart, s.WindowEnd = s.ScoredAt.Add(-10*time.Minute), s.ScoredAt
		}), "", ""},
		{"beyond -max-event-age", valid(func(s *records.Score) {
			s.ScoredAt = now.Add(-DefaultRetention - time.Second)
			s.WindowStart, s.WindowEnd = s.ScoredAt.Add(-10*time.Minute), s.ScoredAt
		}), service.ReasonTooOld, `field "scored_at": event time too far behind the clock: 2025-05-18T11:59:59Z is 336h0m1s behind`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s records.Score
			visitor, reason, err := p.decode(tt.value, &s)
			if tt.wantErr == "" {
				if err != nil || visitor != 42 {
					t.Fatalf("decode: %d, %v", visitor, err)
				}
				return
			}
			if err == nil || reason != tt.wantReason || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("decode: reason %q, error %v; want %q and an error with %q", reason, err, tt.wantReason, tt.wantErr)
			}
			if reason != reasonMalformed && !errors.Is(err, records.ErrInvalid) {
				t.Errorf("error %v does not wrap records.ErrInvalid", err)
			}
		})
	}
}

// TestPolicyPerBatch: the publisher reads its policy source for every
// batch, so a policy the Watcher puts in force applies from the next
// batch on; site_off and simulate are counted as suppressed.
func TestPolicyPerBatch(t *testing.T) {
	sel := NewSelector(oneHitConfig())
	var current atomic.Pointer[policy.Policy]
	p := New(DefaultConfig(), nil, nil, nil, nil, NewMetrics(nil), nil)
	p.sel = sel
	p.SetPolicy(current.Load)
	if p.policy() != nil {
		t.Fatal("a policy before any")
	}
	current.Store(mustPolicy(t, "sites:\n  a.example: {simulate: true}\n"))
	if _, got := sel.Select(testScore("a.example", 1, 0, 50), 1, p.policy()); got != SuppressedSimulate {
		t.Errorf("a simulated site: %v, want %v", got, SuppressedSimulate)
	}
	current.Store(nil)
	if _, got := sel.Select(testScore("a.example", 1, time.Second, 50), 1, p.policy()); got != Published {
		t.Errorf("the policy lifted: %v, want published", got)
	}
	p.SetPolicy(nil)
	if p.policy() != nil {
		t.Error("SetPolicy(nil) is not no policy")
	}
}

// TestSelectSiteMinHits: a site's min_hits replaces -min-hits for it.
func TestSelectSiteMinHits(t *testing.T) {
	cfg := DefaultSelectConfig() // -min-hits 3
	pol := mustPolicy(t, "sites:\n  a.example: {min_hits: 1}\n  c.example: {min_hits: 5}\n")
	sel := NewSelector(cfg)
	if _, got := sel.Select(testScore("a.example", 1, 0, 50), 1, pol); got != Published {
		t.Errorf("min_hits 1: the first hit %v, want published", got)
	}
	for i, want := range []Outcome{SuppressedGate, SuppressedGate, Published} {
		if _, got := sel.Select(testScore("b.example", 1, time.Duration(i)*30*time.Second, 50), 1, pol); got != want {
			t.Errorf("the default: hit %d %v, want %v", i+1, got, want)
		}
	}
	for i := range 5 {
		want := SuppressedGate
		if i == 4 {
			want = Published
		}
		if _, got := sel.Select(testScore("c.example", 1, time.Duration(i)*30*time.Second, 50), 1, pol); got != want {
			t.Errorf("min_hits 5: hit %d %v, want %v", i+1, got, want)
		}
	}
}

// TestRestartPublishesOnce: a publisher that starts over on scores already
// published, as one does after a crash before its commit, reads back the
// detections topic and publishes none of their visitors again, while a
// new visitor's hit is still published.
func TestRestartPublishesOnce(t *testing.T) {
	for _, restore := range []bool{true, false} {
		t.Run(map[bool]string{true: "read back", false: "without reading back"}[restore], func(t *testing.T) {
			e := newEnv(t)
			e.restore = restore
			base := recent()
			values, above := scores(t, "a.example", 0x2000, 90, base)
			e.produce(t, values...)
			_, stop := e.start(t, nil)
			waitFor(t, "the first publisher's commits", 30*time.Second, func() bool { return e.committed(t) == int64(len(values)) })
			stop()

			// The same scores again, for a publisher that has not committed
			// them, and one new visitor's hit.
			e.group = "publisher-restarted"
			late := testScore("a.example", 0x9999, 0, 30)
			late.ScoredAt = base.Add(2 * time.Minute)
			late.WindowStart, late.WindowEnd = late.ScoredAt.Add(-10*time.Minute), late.ScoredAt
			e.produce(t, mustJSON(t, late))
			e.start(t, nil)
			waitFor(t, "the second publisher's commits", 30*time.Second, func() bool { return e.committed(t) == int64(len(values)+1) })

			want := above + 1 // each visitor once, and the new one
			if !restore {
				want = 2*above + 1 // what a publisher that forgets does
			}
			got := e.read(t, "detections", want, 500*time.Millisecond)
			seen := make(map[string]int)
			for _, m := range got {
				seen[string(m.Key)]++
			}
			if restore {
				for k, n := range seen {
					if n != 1 {
						t.Errorf("%s published %d times, want once", k, n)
					}
				}
			}
		})
	}
}

// TestShadowScores: a candidate model's score records are stored next to
// the live ones and never published; what the candidate would have
// published is counted against what live published.
func TestShadowScores(t *testing.T) {
	e := newEnv(t)
	base := recent()
	var stream [][]byte
	var liveAbove, both, candOnly, liveOnly int
	for i := range 30 {
		at := base.Add(time.Duration(i) * time.Second)
		live, cand := testScore("a.example", uint64(0x2000+i), 0, 5), testScore("a.example", uint64(0x2000+i), 0, 4)
		cand.Model = "wide"
		for _, s := range []*records.Score{live, cand} {
			s.ScoredAt, s.WindowStart, s.WindowEnd = at, at.Add(-10*time.Minute), at
		}
		if i%3 == 0 {
			live.Score, liveAbove = 15, liveAbove+1
		}
		if i%2 == 0 {
			cand.Score = 20
		}
		switch {
		case i%6 == 0:
			both++
		case i%2 == 0:
			candOnly++
		case i%3 == 0:
			liveOnly++
		}
		stream = append(stream, mustJSON(t, live), mustJSON(t, cand)) // as the detector writes them
	}
	// One partition, so that a window's records are read in the order
	// written, as the detector's keys give them within their partition.
	w := &kafka.Writer{Addr: kafka.TCP(e.kafka.Brokers()...), Topic: "scores", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	msgs := make([]kafka.Message, len(stream))
	for i, v := range stream {
		msgs[i] = kafka.Message{Key: []byte("one partition"), Value: v}
	}
	if err := w.WriteMessages(t.Context(), msgs...); err != nil {
		t.Fatal(err)
	}
	e.start(t, mustPolicy(t, "shadows: [{name: wide, bins: 20}]\n"))
	waitFor(t, "every score", 30*time.Second, func() bool { return e.rows(t) == uint64(len(stream)) })
	for _, m := range e.read(t, "detections", liveAbove, 500*time.Millisecond) {
		var d records.Detection
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatal(err)
		}
		if v, _ := records.ParseVisitorID(d.Visitor); (v-0x2000)%3 != 0 || d.Score != 15 {
			t.Errorf("published %s with score %v: only the live model's outliers are", d.Visitor, d.Score)
		}
	}
	var n uint64
	if err := e.conn.QueryRow(t.Context(), "SELECT count() FROM scores FINAL WHERE model = 'wide' AND score = 20").Scan(&n); err != nil || n != 15 {
		t.Errorf("the candidate's rows above its threshold: %d, %v; want 15", n, err)
	}
	waitFor(t, "the commit", 10*time.Second, func() bool { return e.committed(t) == int64(len(stream)) })
	for name, c := range map[string]struct {
		got  prometheus.Collector
		want int
	}{
		"published":          {e.metrics.Published, liveAbove},
		"both":               {e.metrics.ShadowDetections.WithLabelValues("wide", "true"), both},
		"the candidate only": {e.metrics.ShadowDetections.WithLabelValues("wide", "false"), candOnly},
		"live only (missed)": {e.metrics.ShadowMissed.WithLabelValues("wide"), liveOnly},
	} {
		if got := testutil.ToFloat64(c.got); got != float64(c.want) {
			t.Errorf("%s: %v, want %d", name, got, c.want)
		}
	}
}

// TestPublishOnCluster: the publisher makes its scores table on a
// ClickHouse cluster of two shards (-clickhouse-cluster) and stores every
// score there, through the Distributed table, replays collapsing.
func TestPublishOnCluster(t *testing.T) {
	e := newEnv(t)
	c := testenv.ClickHouseCluster(t)
	conn, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.conn, e.cfg.Cluster = conn, testenv.ClickHouseClusterName
	values, above := scores(t, "a.example", 0x3000, 90, recent())
	e.produce(t, values...)
	e.start(t, nil)
	waitFor(t, "every score", 30*time.Second, func() bool { return e.rows(t) == uint64(len(values)) })
	e.produce(t, values...) // replayed
	waitFor(t, "the replay", 30*time.Second, func() bool { return e.committed(t) == int64(2*len(values)) })
	if n := e.rows(t); n != uint64(len(values)) {
		t.Errorf("%d rows with FINAL, want %d", n, len(values))
	}
	e.read(t, "detections", above, 500*time.Millisecond)
	for i, s := range c.Servers() {
		one, err := s.Open()
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		err = one.QueryRow(t.Context(), "SELECT count() FROM scores_local").Scan(&n)
		one.Close()
		if err != nil || n == 0 {
			t.Errorf("shard %d holds %d rows (%v)", i+1, n, err)
		}
	}
}
