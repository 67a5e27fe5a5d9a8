package baseline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// ingestEnv is a Kafka broker with the requests and dead-letter topics and
// a ClickHouse server, and what an Ingester needs to run against them.
type ingestEnv struct {
	kafka   *testenv.KafkaCluster
	ch      *testenv.ClickHouseServer
	conn    driver.Conn
	w       features.Window
	metrics *Metrics
	sites   siteRecorder // the sites the ingesters noted
	cluster string       // the ClickHouse cluster of conn, "" for one server
}

// siteRecorder is a SiteNoter that remembers what it is told.
type siteRecorder struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (r *siteRecorder) Saw(sites []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[string]bool)
	}
	for _, s := range sites {
		r.seen[s] = true
	}
}

func (r *siteRecorder) sorted() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.seen))
}

func newIngestEnv(t *testing.T) *ingestEnv {
	t.Helper()
	env := &ingestEnv{
		kafka:   testenv.Kafka(t, "requests", "deadletter"),
		w:       features.Window{Buckets: 5, Width: time.Minute},
		metrics: NewMetrics(prometheus.NewRegistry()),
	}
	env.ch, env.conn = clickHouse(t)
	return env
}

// produce writes messages to the requests topic, keyed like the real one.
func (env *ingestEnv) produce(t *testing.T, values ...[]byte) {
	t.Helper()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{
		Addr: kafka.TCP(env.kafka.Brokers()...), Topic: "requests", Balancer: &kafka.Hash{},
		Transport: transport, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Key: fmt.Appendf(nil, "k%d", i%97), Value: v}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// start runs an Ingester in consumer group "baseline" until the returned
// stop is called; stop waits for Run to return and fails the test on error.
func (env *ingestEnv) start(t *testing.T) (stop func()) {
	t.Helper()
	id, err := features.NewIdentity(features.IdentityIP, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := NewConverter(features.DefaultFieldMap(), env.w, id, features.DefaultClassifier())
	if err != nil {
		t.Fatal(err)
	}
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers: env.kafka.Brokers(), Topic: "requests", GroupID: "baseline", MaxWait: 100 * time.Millisecond,
	})
	transport := &kafka.Transport{}
	dlq := &kafka.Writer{
		Addr: kafka.TCP(env.kafka.Brokers()...), Topic: "deadletter", Transport: transport,
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond,
	}
	cfg := DefaultIngestConfig()
	cfg.BatchSize, cfg.Linger, cfg.Cluster = 500, 200*time.Millisecond, env.cluster
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	in := NewIngester(cfg, reader, dlq, env.conn, "requests", conv, &env.sites, env.metrics, logger)
	in.now = func() time.Time { return trafficNow } // the generated events' present
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = in.Run(ctx) })
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			reader.Close()
			dlq.Close()
			transport.CloseIdleConnections()
			if runErr != nil {
				t.Errorf("Ingester.Run: %v", runErr)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// rowsIn counts the requests table's rows, each replayed message once.
func (env *ingestEnv) rowsIn(t *testing.T) uint64 {
	t.Helper()
	var n uint64
	if err := env.conn.QueryRow(t.Context(), "SELECT count() FROM requests FINAL").Scan(&n); err != nil {
		return 0 // the table may not exist yet, or ClickHouse is down
	}
	return n
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

// trafficNow is the clock of the ingesters under test: an hour after the
// start of events' traffic, so that its events are within the event-time
// bounds.
var trafficNow = traffic.DefaultConfig().Start.Add(time.Hour)

// events returns n generated request events, from twenty minutes of
// traffic.
func events(t *testing.T, n int, seed uint64) [][]byte {
	t.Helper()
	cfg := traffic.DefaultConfig()
	cfg.Sites, cfg.Visitors, cfg.Events, cfg.Duration, cfg.Seed = 3, 200, n, 20*time.Minute, seed
	reqs, err := traffic.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, n)
	for i := range reqs {
		if out[i], err = reqs[i].LogpushJSON(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestIngestExactlyOnceAcrossRestart(t *testing.T) {
	env := newIngestEnv(t)
	good := events(t, 4000, 1)
	malformed := [][]byte{
		[]byte(`{not json`),
		[]byte(`{"EdgeStartTimestamp":"2026-01-01T00:00:00Z","ZoneName":"a.example"}`),
		[]byte(`{"EdgeStartTimestamp":"2026-01-01T00:00:00Z","ZoneName":"a.example","ClientIP":"192.0.2.1","EdgeResponseStatus":"200"}`),
	}
	env.produce(t, append(append(good[:2000:2000], malformed...), good[2000:]...)...)

	// The first ingester stops part-way, as a rolling restart would stop it.
	stop := env.start(t)
	waitFor(t, "the first rows", 30*time.Second, func() bool { return env.rowsIn(t) > 0 })
	stop()
	first := env.rowsIn(t)
	// A second one in the same group picks up from the committed offsets.
	env.start(t)
	waitFor(t, "every event", 60*time.Second, func() bool { return env.rowsIn(t) >= uint64(len(good)) })
	time.Sleep(500 * time.Millisecond) // let a duplicate, if any, land
	if n := env.rowsIn(t); n != uint64(len(good)) {
		t.Fatalf("%d rows, want each of the %d events once", n, len(good))
	}
	t.Logf("first ingester inserted %d of %d before stopping", first, len(good))
	// The baselines are told of every site inserted, so that a site new
	// since their last listing is served.
	var inTable []struct {
		Site string `ch:"site"`
	}
	if err := env.conn.Select(t.Context(), &inTable, "SELECT DISTINCT site FROM requests ORDER BY site"); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range inTable {
		want = append(want, r.Site)
	}
	if got := env.sites.sorted(); len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("sites noted %q, want the table's %q", got, want)
	}

	// Malformed messages went to the dead-letter topic with their reason.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: env.kafka.Brokers(), Topic: "deadletter", GroupID: "check", MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// The first ingester may have dead-lettered some before it stopped,
	// and the second again: dead letters are at least once.
	wants := []string{"invalid JSON", `field "ClientIP": missing`, `field "EdgeResponseStatus": want a number`}
	var reasons []string
	for found := 0; found < len(wants); {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading dead letters: %v; have %q", err, reasons)
		}
		for _, h := range m.Headers {
			if h.Key == service.HeaderReason {
				reasons = append(reasons, string(h.Value))
			}
		}
		joined := strings.Join(reasons, "\n")
		found = 0
		for _, want := range wants {
			if strings.Contains(joined, want) {
				found++
			}
		}
	}
}

// TestIngestEventTimeBounds sends events in every Logpush timestamp format
// and events too far ahead of the ingester's clock or behind it, among good
// ones: the good are stored, the others dead-lettered with their reason
// and counted, and retention, run after them, keeps the history.
func TestIngestEventTimeBounds(t *testing.T) {
	env := newIngestEnv(t)
	good := events(t, 1000, 4)
	at := func(ts string) []byte {
		return fmt.Appendf(nil, `{"EdgeStartTimestamp":%s,"ZoneName":"a.example","ClientIP":"192.0.2.1","ClientRequestPath":"/"}`, ts)
	}
	sec := trafficNow.Add(-time.Minute)
	formats := [][]byte{
		at(strconv.Quote(sec.Format(time.RFC3339))),
		at(strconv.FormatInt(sec.Unix(), 10)),     // Logpush "unix"
		at(strconv.FormatInt(sec.UnixNano(), 10)), // Logpush "unixnano"
	}
	refused := map[string][][]byte{
		service.ReasonFuture: {
			at(`"2056-01-01T00:00:00Z"`),
			at(strconv.FormatInt(trafficNow.Add(6*time.Minute).Unix(), 10)),
		},
		service.ReasonTooOld: {
			at(`"2004-01-01T00:00:00Z"`),
			at(strconv.FormatInt(trafficNow.Add(-9*24*time.Hour).UnixNano(), 10)),
		},
	}
	stream := append(append([][]byte{}, good[:500]...), formats...)
	for _, r := range []string{service.ReasonFuture, service.ReasonTooOld} {
		stream = append(stream, refused[r]...)
	}
	stream = append(stream, good[500:]...)
	env.produce(t, stream...)
	env.start(t)
	want := uint64(len(good) + len(formats))
	waitFor(t, "every good event", 30*time.Second, func() bool { return env.rowsIn(t) >= want })
	for r, msgs := range refused {
		waitFor(t, r+" dead letters", 10*time.Second, func() bool {
			return testutil.ToFloat64(env.metrics.DeadLetters.WithLabelValues(r)) == float64(len(msgs))
		})
	}
	if n := env.rowsIn(t); n != want {
		t.Errorf("%d rows, want %d: the good events and one per timestamp format", n, want)
	}
	var newest time.Time
	if err := env.conn.QueryRow(t.Context(), "SELECT max(time) FROM requests").Scan(&newest); err != nil {
		t.Fatal(err)
	}
	if newest.After(trafficNow) {
		t.Errorf("the newest stored request is at %v, after the clock (%v)", newest, trafficNow)
	}
	waitFor(t, "the retention pass", 10*time.Second, func() bool { return testutil.ToFloat64(env.metrics.RetentionCutoff) > 0 })
	cutoff := time.Unix(int64(testutil.ToFloat64(env.metrics.RetentionCutoff)), 0).UTC()
	if first := traffic.DefaultConfig().Start; cutoff.After(first) {
		t.Errorf("retention cut at %v, after the history's start %v", cutoff, first)
	}
}

func TestIngestSurvivesClickHouseRestart(t *testing.T) {
	env := newIngestEnv(t)
	batch1, batch2 := events(t, 1500, 2), events(t, 1500, 3)
	env.start(t)
	env.produce(t, batch1...)
	waitFor(t, "the first batch", 30*time.Second, func() bool { return env.rowsIn(t) == uint64(len(batch1)) })

	if err := env.ch.Stop(); err != nil {
		t.Fatal(err)
	}
	env.produce(t, batch2...)
	time.Sleep(time.Second) // the ingester retries against a dead server
	if err := env.ch.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := uint64(len(batch1) + len(batch2))
	waitFor(t, "the batch held while ClickHouse was down", 60*time.Second, func() bool { return env.rowsIn(t) >= want })
	if n := env.rowsIn(t); n != want {
		t.Fatalf("%d rows, want %d", n, want)
	}
	if errs := testutil.ToFloat64(env.metrics.ClickHouseErrors.WithLabelValues("insert")); errs == 0 {
		t.Error("no insert errors counted while ClickHouse was down")
	}
}

func TestRetentionCountsFromTheNewestRequest(t *testing.T) {
	conn := openClickHouse(t)
	ctx := t.Context()
	if err := chstore.CreateRequests(ctx, conn, "requests", ""); err != nil {
		t.Fatal(err)
	}
	// Replayed history from long ago: only what is older than the retention
	// before the newest request goes, however old all of it is by the clock.
	newest := time.Date(2024, 3, 20, 12, 0, 0, 0, time.UTC)
	var rows []chstore.Request
	for i, age := range []time.Duration{0, 24 * time.Hour, 3 * 24 * time.Hour, 10 * 24 * time.Hour, 30 * 24 * time.Hour} {
		rows = append(rows, chstore.Request{Time: newest.Add(-age), Site: "old.example", Topic: "requests", Offset: int64(i)})
	}
	// And rows from decades ahead and behind, stored before ingest refused
	// such times: neither may drop the history.
	for i, at := range []time.Time{time.Date(2056, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)} {
		rows = append(rows, chstore.Request{Time: at, Site: "old.example", Topic: "requests", Offset: int64(100 + i)})
	}
	if err := chstore.InsertRequests(ctx, conn, "requests", rows); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultIngestConfig()
	cfg.Retention = 5 * 24 * time.Hour
	metrics := NewMetrics(nil)
	in := NewIngester(cfg, nil, nil, conn, "requests", nil, nil, metrics, slog.New(slog.NewTextHandler(io.Discard, nil)))
	in.dropOldPartitions(ctx)
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM requests WHERE time <= ?", newest).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("%d rows up to the newest left, want the 3 within 5 days of it", n)
	}
	if got, want := testutil.ToFloat64(metrics.RetentionCutoff), float64(time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC).Unix()); got != want {
		t.Errorf("retention cutoff metric %v, want %v (2024-03-15)", time.Unix(int64(got), 0).UTC(), time.Unix(int64(want), 0).UTC())
	}
}

// TestIngestOnCluster: the baseline service's ingest on a ClickHouse
// cluster of two shards (-clickhouse-cluster): it makes the requests
// table ON CLUSTER, stores every event once across a restart that reads
// some again, and the site's baselines build from the Distributed table
// as from one server's.
func TestIngestOnCluster(t *testing.T) {
	env := newIngestEnv(t)
	c := testenv.ClickHouseCluster(t)
	conn, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	env.conn, env.cluster = conn, testenv.ClickHouseClusterName
	good := events(t, 3000, 1)
	env.produce(t, good...)
	stop := env.start(t)
	waitFor(t, "the first rows", 30*time.Second, func() bool { return env.rowsIn(t) > 0 })
	stop()
	env.start(t)
	waitFor(t, "every event", 60*time.Second, func() bool { return env.rowsIn(t) >= uint64(len(good)) })
	if n := env.rowsIn(t); n != uint64(len(good)) {
		t.Fatalf("%d rows, want each of the %d events once", n, len(good))
	}
	sites, err := chstore.Sites(t.Context(), conn, "requests", trafficNow)
	if err != nil || len(sites) == 0 {
		t.Fatalf("sites: %v, %v", sites, err)
	}
	cfg := smallBuildConfig()
	cfg.Window = env.w
	built, err := Build(t.Context(), ClickHouseWindows{conn, "requests"}, cfg, sites[0].Site, sites[0].Newest)
	if err != nil || built.Baselines[features.ClassBrowser] == nil {
		t.Fatalf("building from the cluster: %v, %+v", err, built)
	}
	t.Logf("a baseline of %d windows from the cluster", built.Baselines[features.ClassBrowser].Windows)
}
