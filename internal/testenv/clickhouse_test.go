package testenv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/anomalyd/anomalyd/internal/testenv"
)

// chRow is one row of the smoke test table.
type chRow struct {
	ts      time.Time
	site    string
	visitor uint64
	score   float64
}

// chRows returns n rows spread over more than one day, so the table gets
// several daily partitions.
func chRows(n int) []chRow {
	base := time.Date(2024, 1, 1, 23, 0, 0, 0, time.UTC)
	rows := make([]chRow, n)
	for i := range rows {
		rows[i] = chRow{
			ts:      base.Add(time.Duration(i) * 30 * time.Second),
			site:    fmt.Sprintf("site-%d", i%7),
			visitor: uint64(i) * 2654435761,
			score:   float64(i) / 8, // exact in binary, so sums compare exactly
		}
	}
	return rows
}

func TestClickHouseInsertSelectRestart(t *testing.T) {
	ch, conn := testenv.ClickHouseConn(t) // clickhouse-go, native protocol
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	// Syntax that 18.16 and current releases both accept: custom
	// partitioning key, no TTL.
	err := conn.Exec(ctx, `
		CREATE TABLE requests (
			ts      DateTime,
			site    String,
			visitor UInt64,
			score   Float64
		) ENGINE = MergeTree()
		PARTITION BY toYYYYMMDD(ts)
		ORDER BY (site, visitor, ts)`)
	if err != nil {
		t.Fatalf("CREATE TABLE: %v", err)
	}

	rows := chRows(5000)
	// 18.16 needs the explicit column list: without it every Append
	// fails with "expected 0 arguments".
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO requests (ts, site, visitor, score)")
	if err != nil {
		t.Fatalf("PrepareBatch: %v", err)
	}
	var wantVisitors uint64
	var wantScore float64
	for _, r := range rows {
		if err := batch.Append(r.ts, r.site, r.visitor, r.score); err != nil {
			t.Fatalf("Append: %v", err)
		}
		wantVisitors += r.visitor
		wantScore += r.score
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("Send: %v", err)
	}

	check := func(t *testing.T, conn driver.Conn) {
		t.Helper()
		var count, visitors, sites, partitions uint64
		var score float64
		err := conn.QueryRow(ctx, `SELECT count(), sum(visitor), sum(score), uniqExact(site) FROM requests`).
			Scan(&count, &visitors, &score, &sites)
		if err != nil {
			t.Fatalf("SELECT aggregates: %v", err)
		}
		if count != uint64(len(rows)) || visitors != wantVisitors || score != wantScore || sites != 7 {
			t.Errorf("count, sum(visitor), sum(score), sites = %d, %d, %v, %d; want %d, %d, %v, 7",
				count, visitors, score, sites, len(rows), wantVisitors, wantScore)
		}

		err = conn.QueryRow(ctx, `SELECT uniqExact(partition) FROM system.parts WHERE database = 'default' AND table = 'requests' AND active`).
			Scan(&partitions)
		if err != nil {
			t.Fatalf("SELECT partitions: %v", err)
		}
		if partitions != 3 { // 2024-01-01 23:00 + 5000 * 30 s spans Jan 1, 2 and 3
			t.Errorf("active partitions = %d, want 3", partitions)
		}

		for _, i := range []int{0, 1234, len(rows) - 1} {
			want := rows[i]
			var got chRow
			err := conn.QueryRow(ctx, `SELECT ts, site, visitor, score FROM requests WHERE visitor = ?`, want.visitor).
				Scan(&got.ts, &got.site, &got.visitor, &got.score)
			if err != nil {
				t.Fatalf("SELECT row %d: %v", i, err)
			}
			if !got.ts.Equal(want.ts) || got.site != want.site || got.visitor != want.visitor || got.score != want.score {
				t.Errorf("row %d = %+v, want %+v", i, got, want)
			}
		}
	}
	check(t, conn)

	if err := ch.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded while the server was stopped")
	}
	if err := ch.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The same client reconnects, and the acknowledged insert survived.
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	check(t, conn)
}
