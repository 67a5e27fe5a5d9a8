package baseline

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
)

func openClickHouse(t *testing.T) driver.Conn {
	t.Helper()
	_, conn := testenv.ClickHouseConn(t)
	return conn
}

// clickHouse starts a ClickHouse server for the test and connects to it.
func clickHouse(t *testing.T) (*testenv.ClickHouseServer, driver.Conn) {
	t.Helper()
	return testenv.ClickHouseConn(t)
}

// testSecret keys visitor ids in tests.
var testSecret = []byte("baseline test secret, 16+ bytes")

// requestRows turns generated traffic into rows the way ingest does: Logpush JSON
// through a Converter.
func requestRows(t *testing.T, w features.Window, reqs []traffic.Request) []chstore.Request {
	t.Helper()
	id, err := features.NewIdentity(features.IdentityIP, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := NewConverter(features.DefaultFieldMap(), w, id, features.DefaultClassifier())
	if err != nil {
		t.Fatal(err)
	}
	out := make([]chstore.Request, len(reqs))
	for i := range reqs {
		js, err := reqs[i].LogpushJSON()
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = conv.Row(js, "requests", int32(i%4), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestWindowsMatchLiveFeatures is the contract between the baseline and the
// detector: the SQL aggregation of history gives, for every visitor-window,
// the same counts as pkg/features gives live for the same requests (distinct
// counts compare exactly because the live sketches are exact at these
// sizes). It also checks that replayed Kafka messages count once.
func TestWindowsMatchLiveFeatures(t *testing.T) {
	conn := openClickHouse(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	w, cfg := windowsTraffic()
	rows := loadRows(ctx, t, conn, w, cfg)
	// A crash after inserting and before committing offsets replays the
	// tail of the stream: the same messages arrive twice.
	if err := chstore.InsertRequests(ctx, conn, "requests", rows[len(rows)/2:]); err != nil {
		t.Fatal(err)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM requests FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != uint64(len(rows)) {
		t.Fatalf("%d rows after a replay, want %d: one per message", n, len(rows))
	}

	// The live side: one MemoryStore per tumbling window, so nothing is late.
	live := make(map[uint32]*featurestore.MemoryStore)
	for i := range rows {
		o := &rows[i].Obs
		win := o.Bucket / uint32(w.Buckets)
		if live[win] == nil {
			live[win] = featurestore.NewMemoryStore(w)
		}
		if err := live[win].Add(ctx, []features.Observation{*o}); err != nil {
			t.Fatal(err)
		}
	}
	sites := map[string]uint64{}
	for i := range rows {
		sites[rows[i].Site] = rows[i].Obs.Site
	}
	checked := 0
	for site, siteID := range sites {
		q := chstore.WindowQuery{Site: site, From: cfg.Start, To: cfg.Start.Add(cfg.Duration), Sample: 1}
		err := chstore.Windows(ctx, conn, "requests", w, q, func(vw chstore.VisitorWindow) error {
			last := vw.Window*uint32(w.Buckets) + uint32(w.Buckets) - 1
			want, err := live[vw.Window].Window(ctx, siteID, vw.Visitor, last)
			if err != nil {
				return err
			}
			if vw.Agg != want {
				t.Errorf("site %s visitor %x window %d: SQL %+v, live %+v", site, vw.Visitor, vw.Window, vw.Agg, want)
			}
			checked++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if checked < 100 {
		t.Fatalf("only %d visitor-windows compared", checked)
	}
	t.Logf("%d visitor-windows agree", checked)

	stats, err := chstore.Sites(ctx, conn, "requests", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	total := uint64(0)
	for _, st := range stats {
		total += st.Requests
		if _, ok := sites[st.Site]; !ok || st.Newest.Before(cfg.Start) || !st.Newest.Before(cfg.Start.Add(cfg.Duration)) {
			t.Errorf("site stats %+v", st)
		}
	}
	if len(stats) != len(sites) || total != uint64(len(rows)) {
		t.Errorf("Sites: %d sites, %d requests; want %d, %d", len(stats), total, len(sites), len(rows))
	}

	// Sampling keeps the same visitors every time; Limit caps the rows.
	var site string
	for s := range sites {
		site = s
	}
	count := func(q chstore.WindowQuery) (n int, visitorsOK bool) {
		visitorsOK = true
		err := chstore.Windows(ctx, conn, "requests", w, q, func(vw chstore.VisitorWindow) error {
			n++
			if float64(vw.Visitor%1_000_000) >= q.Sample*1e6 {
				visitorsOK = false
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n, visitorsOK
	}
	q := chstore.WindowQuery{Site: site, From: cfg.Start, To: cfg.Start.Add(cfg.Duration), Sample: 1}
	all, _ := count(q)
	q.Sample = 0.5
	half, ok := count(q)
	if !ok || half == 0 || half >= all {
		t.Errorf("sample 0.5: %d of %d windows, visitors in sample: %v", half, all, ok)
	}
	q.Sample, q.Limit = 1, 7
	if n, _ := count(q); n != 7 {
		t.Errorf("limit 7: %d windows", n)
	}
}

// TestMemoryHistoryMatchesSQL: replay backtest builds baselines from a
// MemoryHistory, which must give exactly the windows the requests table's
// SQL gives, under every filter of a query.
func TestMemoryHistoryMatchesSQL(t *testing.T) {
	t.Run("one server", func(t *testing.T) { memoryMatchesSQL(t, openClickHouse(t), "") })
	// A cluster of two shards: replicated tables under a Distributed one,
	// the rows of a visitor on one shard, each read with FINAL there, and
	// replays collapsing on their shard.
	t.Run("cluster", func(t *testing.T) {
		c := testenv.ClickHouseCluster(t)
		conn, err := c.Open()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		memoryMatchesSQL(t, conn, testenv.ClickHouseClusterName)
		for i, s := range c.Servers() {
			one, err := s.Open()
			if err != nil {
				t.Fatal(err)
			}
			var n uint64
			err = one.QueryRow(t.Context(), "SELECT count() FROM "+chstore.LocalTable("requests", testenv.ClickHouseClusterName)).Scan(&n)
			one.Close()
			if err != nil || n == 0 {
				t.Errorf("shard %d holds %d rows (%v)", i+1, n, err)
			}
		}
	})
}

func memoryMatchesSQL(t *testing.T, conn driver.Conn, cluster string) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	w, cfg := windowsTraffic()
	cfg.Bots = traffic.EveryScenario(2)
	rows := loadRowsOn(ctx, t, conn, cluster, w, cfg)
	// Replayed, as after an ingest crash: collapses in every query.
	if err := chstore.InsertRequests(ctx, conn, "requests", rows[:len(rows)/3]); err != nil {
		t.Fatal(err)
	}
	mem := NewMemoryHistory()
	for i := range rows {
		mem.Add(rows[i].Site, &rows[i].Obs)
	}
	stats, err := chstore.Sites(ctx, conn, "requests", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := mem.Sites(); !slices.EqualFunc(got, stats, func(a, b chstore.SiteStats) bool {
		return a.Site == b.Site && a.Requests == b.Requests && a.Newest.Equal(b.Newest)
	}) {
		t.Errorf("sites: memory %+v, SQL %+v", got, stats)
	}
	site := stats[0].Site
	all := chstore.WindowQuery{Site: site, From: cfg.Start, To: cfg.Start.Add(cfg.Duration), Sample: 1}
	tests := []struct {
		name string
		edit func(*chstore.WindowQuery)
	}{
		{"all", func(*chstore.WindowQuery) {}},
		{"min requests", func(q *chstore.WindowQuery) { q.MinRequests = 5 }},
		{"sample", func(q *chstore.WindowQuery) { q.Sample = 0.3 }},
		{"limit", func(q *chstore.WindowQuery) { q.Limit = 40 }},
		{"a span cutting windows", func(q *chstore.WindowQuery) {
			q.From, q.To = cfg.Start.Add(7*time.Minute+13*time.Second), cfg.Start.Add(21*time.Minute)
		}},
		{"another site", func(q *chstore.WindowQuery) { q.Site = stats[1].Site }},
		{"no such site", func(q *chstore.WindowQuery) { q.Site = "nowhere.example" }},
	}
	for _, tc := range tests {
		q := all
		tc.edit(&q)
		collect := func(src WindowSource) []chstore.VisitorWindow {
			var out []chstore.VisitorWindow
			if err := src.Windows(ctx, w, q, func(vw chstore.VisitorWindow) error { out = append(out, vw); return nil }); err != nil {
				t.Fatal(err)
			}
			return out
		}
		sql, got := collect(ClickHouseWindows{conn, "requests"}), collect(mem)
		if !slices.Equal(got, sql) || (len(sql) == 0) != (tc.name == "no such site") {
			t.Errorf("%s: memory gives %d windows, SQL %d; they differ", tc.name, len(got), len(sql))
		}
		starts := func(src WindowSource) []VisitStart {
			var out []VisitStart
			if err := src.VisitStarts(ctx, w, q, 2, func(vs VisitStart) error { out = append(out, vs); return nil }); err != nil {
				t.Fatal(err)
			}
			return out
		}
		sqlStarts, gotStarts := starts(ClickHouseWindows{conn, "requests"}), starts(mem)
		if !slices.Equal(gotStarts, sqlStarts) || (len(sqlStarts) == 0) != (tc.name == "no such site") {
			t.Errorf("%s: memory gives %d visit starts, SQL %d; they differ", tc.name, len(gotStarts), len(sqlStarts))
		}
	}
}

// TestVisitStartsMatchFirstScores is the contract between the baseline's
// visit starts and the detector: each is the window the detector holds
// when it first scores a visit: the first time its window holds
// -min-requests requests with no score within a span before; and each
// early start is a window the detector holds with exactly -early-requests
// requests.
func TestVisitStartsMatchFirstScores(t *testing.T) {
	ctx := t.Context()
	w, cfg := windowsTraffic()
	const minRequests, earlyRequests = 4, 2
	reqs, err := traffic.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rows := requestRows(t, w, reqs)
	mem := NewMemoryHistory()
	live := featurestore.NewMemoryStore(w)
	type key struct {
		site    string
		visitor uint64
	}
	scored := map[key]uint32{}                  // the second of each visitor's latest score
	want := map[key][]features.Aggregate{}      // the windows of first scores
	wantEarly := map[key][]features.Aggregate{} // those of early records
	for i := range rows {
		r := &rows[i]
		mem.Add(r.Site, &r.Obs)
		if err := live.Add(ctx, []features.Observation{r.Obs}); err != nil {
			t.Fatal(err)
		}
		agg, err := live.Window(ctx, r.Obs.Site, r.Obs.Visitor, r.Obs.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		k := key{r.Site, r.Obs.Visitor}
		if agg.Counts[features.CountRequests] == earlyRequests {
			wantEarly[k] = append(wantEarly[k], agg)
		}
		if agg.Counts[features.CountRequests] < minRequests {
			continue // the detector does not score it
		}
		if s, ok := scored[k]; !ok || time.Duration(r.Obs.Second-s)*time.Second >= w.Span() {
			want[k] = append(want[k], agg)
		}
		scored[k] = r.Obs.Second
	}
	got, gotEarly := map[key][]features.Aggregate{}, map[key][]features.Aggregate{}
	q := chstore.WindowQuery{From: cfg.Start, To: cfg.Start.Add(cfg.Duration), Sample: 1, MinRequests: minRequests}
	err = mem.VisitStarts(ctx, w, q, earlyRequests, func(vs VisitStart) error {
		k := key{vs.Site, vs.Visitor}
		if vs.Early {
			gotEarly[k] = append(gotEarly[k], vs.Agg)
		} else {
			got[k] = append(got[k], vs.Agg)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what      string
		got, want map[key][]features.Aggregate
	}{{"visit starts", got, want}, {"early starts", gotEarly, wantEarly}} {
		n := 0
		for k, aggs := range tc.want {
			n += len(aggs)
			if !slices.Equal(tc.got[k], aggs) {
				t.Errorf("%s visitor %x: %s %+v, the detector's windows %+v", k.site, k.visitor, tc.what, tc.got[k], aggs)
			}
		}
		if len(tc.got) != len(tc.want) || n < 100 {
			t.Errorf("%d visitors with %s, %d with the detector's windows (%d of them)", len(tc.got), tc.what, len(tc.want), n)
		}
	}
}

// windowsTraffic is the window and the traffic of the windows tests: two
// sites, half an hour.
func windowsTraffic() (features.Window, traffic.Config) {
	cfg := traffic.DefaultConfig()
	cfg.Sites, cfg.Visitors, cfg.Events, cfg.Duration = 2, 300, 6000, 30*time.Minute
	return features.Window{Buckets: 5, Width: time.Minute}, cfg
}

// loadRows creates the requests table and inserts cfg's traffic as ingest
// would, and returns its rows.
func loadRows(ctx context.Context, t *testing.T, conn driver.Conn, w features.Window, cfg traffic.Config) []chstore.Request {
	t.Helper()
	return loadRowsOn(ctx, t, conn, "", w, cfg)
}

// loadRowsOn is loadRows on one server (cluster "") or on a cluster.
func loadRowsOn(ctx context.Context, t *testing.T, conn driver.Conn, cluster string, w features.Window, cfg traffic.Config) []chstore.Request {
	t.Helper()
	reqs, err := traffic.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rows := requestRows(t, w, reqs)
	if err := chstore.CreateRequests(ctx, conn, "requests", cluster); err != nil {
		t.Fatal(err)
	}
	if err := chstore.InsertRequests(ctx, conn, "requests", rows); err != nil {
		t.Fatal(err)
	}
	return rows
}
