package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/internal/traffic"
)

// TestClickHouseDown stops ClickHouse for a minute under the baseline
// service and the publisher while events flow. Both retry without
// committing; once it is back, every request event is in the requests
// table exactly once and every score record in the scores table, and the
// consumers have caught up.
func TestClickHouseDown(t *testing.T) {
	r := shared(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	st := r.st
	b := faultTraffic(t, r, "clickhouse-down traffic", 44, 2000, 6_000, 3*time.Minute, map[traffic.Scenario]int{traffic.Scraper: 2, traffic.CredentialStuffing: 2})
	if n := requestRows(ctx, t, st, b); n != 0 {
		t.Fatalf("%d rows in the traffic's span before it was sent", n)
	}
	scoresFrom, err := r.kc.ends(ctx, pipeline.TopicScores)
	if err != nil {
		t.Fatal(err)
	}
	errsBefore := metric(ctx, t, st, pipeline.Baseline, "anomalyd_baseline_clickhouse_errors_total") +
		metric(ctx, t, st, pipeline.Publisher, "anomalyd_publisher_clickhouse_errors_total")

	if err := st.ClickHouse().Stop(); err != nil {
		t.Fatalf("stopping clickhouse: %v", err)
	}
	down := time.Now()
	if _, err := send(ctx, st.Brokers(), b, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(down.Add(time.Minute)))
	if err := st.ClickHouse().Start(ctx); err != nil {
		t.Fatalf("starting clickhouse again: %v", err)
	}
	if err := drain(ctx, st, r.kc); err != nil {
		t.Fatal(err)
	}
	errs := metric(ctx, t, st, pipeline.Baseline, "anomalyd_baseline_clickhouse_errors_total") +
		metric(ctx, t, st, pipeline.Publisher, "anomalyd_publisher_clickhouse_errors_total") - errsBefore
	if errs == 0 {
		t.Error("no ClickHouse error counted: the outage did not happen under load, so the test shows nothing")
	}
	if n := requestRows(ctx, t, st, b); n != uint64(b.events) {
		t.Errorf("%d rows in the requests table for the %d events sent while ClickHouse was down, want each once", n, b.events)
	}
	checkScoresStored(ctx, t, r, scoresFrom, b)
	t.Logf("%d events sent during a minute without ClickHouse; %v ClickHouse errors retried", b.events, errs)
}
