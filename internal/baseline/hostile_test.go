package baseline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// nopCommits is a reader whose commits succeed; the test calls flush.
type nopCommits struct{}

func (nopCommits) FetchMessage(context.Context) (kafka.Message, error) { select {} }
func (nopCommits) CommitMessages(context.Context, ...kafka.Message) error {
	return nil
}

// deadLetters counts what is written to it, and those without a reason
// (or with one of more than a KiB) or a source header.
type deadLetters struct{ n, unexplained int }

func (d *deadLetters) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	for _, m := range msgs {
		d.n++
		if r := header(m, service.HeaderReason); r == "" || len(r) > 1024 || header(m, service.HeaderSource) == "" {
			d.unexplained++
		}
	}
	return nil
}

// TestIngestHostileInput sends hostile events (traffic.Hostile), a
// thousand for each of a few thousand generated requests, through the
// ingest's batches into a real ClickHouse: nothing crashes, each event is
// a row or a dead letter with its reason, memory stays bounded, and the
// generated requests are stored exactly as without the hostile events.
func TestIngestHostileInput(t *testing.T) {
	total := traffic.HostileEvents
	if testing.Short() {
		total /= 10
	}
	good := events(t, 2000, 9)
	_, conn := clickHouse(t)
	id, err := features.NewIdentity(features.IdentityIP, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	w := features.DefaultWindow()
	newConv := func() *Converter {
		conv, err := NewConverter(features.DefaultFieldMap(), w, id, features.DefaultClassifier())
		if err != nil {
			t.Fatal(err)
		}
		return conv
	}
	// The rows of the generated requests alone.
	want := make(map[string]int)
	sites := make(map[string]bool)
	conv := newConv()
	for i, v := range good {
		r, err := conv.Row(v, "requests", 0, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		want[rowKey(r.Site, r.Obs.Visitor, r.Time.Unix())]++
		sites[r.Site] = true
	}

	metrics := NewMetrics(prometheus.NewRegistry())
	dead := &deadLetters{}
	cfg := DefaultIngestConfig()
	in := NewIngester(cfg, nopCommits{}, dead, conn, "hostile_requests", newConv(), nil, metrics, slog.New(slog.NewTextHandler(io.Discard, nil)))
	in.now = func() time.Time { return trafficNow }
	ctx := t.Context()
	if err := in.retry(ctx, "create_table", func() error { return chstore.CreateRequests(ctx, conn, "hostile_requests", "") }); err != nil {
		t.Fatal(err)
	}
	var sent int
	var peakHeap uint64
	batch := make([]kafka.Message, 0, cfg.BatchSize)
	flush := func() {
		if err := in.flush(ctx, batch); err != nil {
			t.Fatal(err)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapInuse)
		batch = batch[:0]
	}
	add := func(v []byte) {
		sent++
		batch = append(batch, kafka.Message{Value: v, Topic: "requests", Offset: int64(sent)})
		if len(batch) == cap(batch) {
			flush()
		}
	}
	for v := range traffic.HostileAmong(good, total, 2, func(int) time.Time { return trafficNow.Add(-time.Minute) }) {
		add(v)
	}
	flush()

	if dead.unexplained > 0 {
		t.Errorf("%d dead letters without their reason or source, or with a reason of more than a KiB", dead.unexplained)
	}
	var rows uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM hostile_requests FINAL").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	var counted float64
	for _, r := range service.EventReasons() {
		counted += testutil.ToFloat64(metrics.DeadLetters.WithLabelValues(r))
	}
	t.Logf("%d events: %d rows, %d dead letters; peak heap in use %d MiB", sent, rows, dead.n, peakHeap>>20)
	if rows+uint64(dead.n) != uint64(sent) || counted != float64(dead.n) {
		t.Errorf("%d rows and %d dead letters (%v counted) for %d events, want every event once", rows, dead.n, counted, sent)
	}
	if peakHeap > 512<<20 {
		t.Errorf("peak heap in use %d MiB, want at most 512", peakHeap>>20)
	}
	got := make(map[string]int)
	q, err := conn.Query(ctx, "SELECT site, visitor, time FROM hostile_requests FINAL")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for q.Next() {
		var site string
		var visitor uint64
		var at time.Time
		if err := q.Scan(&site, &visitor, &at); err != nil {
			t.Fatal(err)
		}
		if sites[site] {
			got[rowKey(site, visitor, at.Unix())]++
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("the generated requests' rows differ among the hostile events: %d distinct, want %d", len(got), len(want))
	}
}

// rowKey names a stored request by site, visitor and second.
func rowKey(site string, visitor uint64, sec int64) string {
	return fmt.Sprintf("%s|%016x|%d", site, visitor, sec)
}

// header is the value of m's header key, or "".
func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
