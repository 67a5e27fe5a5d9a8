package bench

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/anomalyd/anomalyd/internal/baseline"
	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// baselineRows generates n requests of one site as ingest would store
// them: Logpush JSON through the baseline service's Converter.
func baselineRows(b *testing.B, w features.Window, cfg traffic.Config) []chstore.Request {
	b.Helper()
	reqs, err := traffic.Generate(cfg)
	if err != nil {
		b.Fatal(err)
	}
	id, err := features.NewIdentity(features.IdentityIP, []byte("benchmark identity secret"))
	if err != nil {
		b.Fatal(err)
	}
	conv, err := baseline.NewConverter(features.DefaultFieldMap(), w, id, features.DefaultClassifier())
	if err != nil {
		b.Fatal(err)
	}
	rows := make([]chstore.Request, len(reqs))
	for i := range reqs {
		js, err := reqs[i].LogpushJSON()
		if err != nil {
			b.Fatal(err)
		}
		if rows[i], err = conv.Row(js, "requests", int32(i%8), int64(i)); err != nil {
			b.Fatal(err)
		}
	}
	return rows
}

func benchClickHouse(b *testing.B) driver.Conn {
	b.Helper()
	_, conn := testenv.ClickHouseConn(b)
	return conn
}

// BenchmarkIngest inserts requests into the requests table in the ingest's
// default batches of 10,000 rows, as the baseline service does after
// decoding them.
func BenchmarkIngest(b *testing.B) {
	conn := benchClickHouse(b)
	ctx := context.Background()
	cfg := traffic.DefaultConfig()
	cfg.Sites, cfg.Visitors, cfg.Events = 20, 50_000, 200_000
	rows := baselineRows(b, features.DefaultWindow(), cfg)
	if err := chstore.CreateRequests(ctx, conn, "requests", ""); err != nil {
		b.Fatal(err)
	}
	const batch = 10_000
	b.ReportAllocs()
	n := 0
	start := time.Now()
	for b.Loop() {
		for i := 0; i < len(rows); i += batch {
			if err := chstore.InsertRequests(ctx, conn, "requests", rows[i:min(i+batch, len(rows))]); err != nil {
				b.Fatal(err)
			}
		}
		n += len(rows)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "rows/s")
}

// BenchmarkBuild builds the baseline of a site with 1M request rows (30k
// visitors over 2 hours): the SQL aggregation into visitor-windows, the
// HBOS fit, the visit starts (every request read back in visitor order)
// and the encoding.
func BenchmarkBuild(b *testing.B) {
	conn := benchClickHouse(b)
	ctx := context.Background()
	cfg := traffic.DefaultConfig()
	cfg.Sites, cfg.Visitors, cfg.Events, cfg.Duration = 1, 30_000, 1_000_000, 2*time.Hour
	build := baseline.DefaultBuildConfig()
	rows := baselineRows(b, build.Window, cfg)
	if err := chstore.CreateRequests(ctx, conn, "requests", ""); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < len(rows); i += 100_000 {
		if err := chstore.InsertRequests(ctx, conn, "requests", rows[i:min(i+100_000, len(rows))]); err != nil {
			b.Fatal(err)
		}
	}
	newest := cfg.Start.Add(cfg.Duration)
	b.ReportAllocs()
	var bl *baseline.Baseline
	for b.Loop() {
		built, err := baseline.Build(ctx, baseline.ClickHouseWindows{Conn: conn, Table: "requests"}, build, rows[0].Site, newest)
		if err != nil {
			b.Fatal(err)
		}
		if bl = built.Baselines[features.ClassBrowser]; bl == nil {
			b.Fatal(built.Errs[features.ClassBrowser])
		}
	}
	b.ReportMetric(float64(len(rows)), "request-rows")
	b.ReportMetric(float64(bl.Windows), "visitor-windows")
}
