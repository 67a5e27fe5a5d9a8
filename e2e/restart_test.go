package e2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
	"github.com/anomalyd/anomalyd/pkg/keys"
)

// restartRate is the pace of TestDetectorRestart's traffic: the stop
// happens a second or two into it, while events flow.
const restartRate = 3000

// TestDetectorRestart stops the detector while events flow, starts it
// again in the same consumer group, and checks that no event was lost:
// every event is counted in its visitor's Redis window, and every score
// record on the scores topic is in the ClickHouse scores table.
//
// A graceful stop (SIGTERM) finishes and commits the batch in hand, so
// each window holds exactly the visitor's events. A kill (SIGKILL) loses
// the uncommitted batch's offsets, which is read again: its requests are
// counted twice, so windows hold at least the visitor's events.
func TestDetectorRestart(t *testing.T) {
	r := shared(t)
	t.Run("graceful", func(t *testing.T) {
		testRestart(t, r, "graceful", 41, func(ctx context.Context, det *pipeline.Service) error { return det.Stop(ctx) })
	})
	t.Run("kill", func(t *testing.T) {
		testRestart(t, r, "kill", 42, func(_ context.Context, det *pipeline.Service) error { return det.Kill() })
	})
}

func testRestart(t *testing.T, r *run, how string, seed uint64, stop func(context.Context, *pipeline.Service) error) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	st, det := r.st, r.st.Service(pipeline.Detector)
	cfg := historyTraffic
	cfg.Seed, cfg.Visitors, cfg.Events, cfg.Duration = seed, 3000, 12_000, 4*time.Minute
	cfg.Start = r.reserve(cfg.Duration)
	cfg.Bots = map[traffic.Scenario]int{traffic.Scraper: 2, traffic.CredentialStuffing: 2}
	b, err := generate("restart traffic ("+how+")", cfg, identity, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Two parts: the detector goes down during the first; the second is
	// sent once the restarted detector has caught up, so that the backlog
	// stays small even while a killed member holds its partitions until
	// its session times out (30 s).
	cut := bytes.IndexByte(b.lines[len(b.lines)/2:], '\n') + len(b.lines)/2 + 1
	part1 := &batch{name: b.name + ", part 1", lines: b.lines[:cut], events: int64(bytes.Count(b.lines[:cut], []byte{'\n'}))}
	part2 := &batch{name: b.name + ", part 2", lines: b.lines[cut:], events: b.events - part1.events}
	scoresFrom, err := r.kc.ends(ctx, pipeline.TopicScores)
	if err != nil {
		t.Fatal(err)
	}
	events0 := metric(ctx, t, st, pipeline.Detector, "anomalyd_detector_events_total")

	sendErr := make(chan error, 1)
	go func() {
		_, err := send(ctx, st.Brokers(), part1, restartRate)
		sendErr <- err
	}()
	// Down once it has read a third of the first part, while the rest
	// still comes.
	err = poll(ctx, time.Minute, "the detector to read some events", func(ctx context.Context) (bool, string, error) {
		v, err := det.MetricsValue(ctx, "anomalyd_detector_events_total")
		return v-events0 >= float64(part1.events)/3, fmt.Sprintf("%v events read", v-events0), err
	})
	if err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	if err := stop(ctx, det); err != nil {
		t.Fatalf("stopping the detector (%s): %v", how, err)
	}
	if err := det.Start(ctx); err != nil {
		t.Fatalf("starting the detector again: %v", err)
	}
	back := time.Since(down)
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: the detector was back %.1fs after the stop; the %d events of the first part were sent %.1fs after it",
		how, back.Seconds(), part1.events, time.Since(down).Seconds())
	if err := poll(ctx, 2*time.Minute, "the restarted detector to catch up", func(ctx context.Context) (bool, string, error) {
		n, status, err := r.kc.behind(ctx, "detector", pipeline.TopicRequests)
		return n == 0, status, err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: caught up %.1fs after the stop", how, time.Since(down).Seconds())
	if _, err := send(ctx, st.Brokers(), part2, restartRate); err != nil {
		t.Fatal(err)
	}
	if err := drain(ctx, st, r.kc); err != nil {
		t.Fatal(err)
	}

	checkWindows(ctx, t, st, b, how == "graceful")
	checkScoresStored(ctx, t, r, scoresFrom, b)
}

// checkWindows compares, for every visitor of b, the request count of its
// Redis window ending at its last request's bucket with the requests b
// sent in that window: equal if exact, else at least as many.
func checkWindows(ctx context.Context, t *testing.T, st *pipeline.Stack, b *batch, exact bool) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: st.Redis().Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	w := features.DefaultWindow()
	store, err := featurestore.NewRedisStore(rdb, w, featurestore.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var missing, extra []string
	var exactN, over int
	for _, k := range slices.SortedFunc(maps.Keys(b.visitors), func(x, y vkey) int { return strings.Compare(x.String(), y.String()) }) {
		info := b.visitors[k]
		last := info.buckets[len(info.buckets)-1]
		var want uint64
		for _, bk := range info.buckets {
			if bk >= w.First(last) {
				want++
			}
		}
		agg, err := store.Window(ctx, keys.SiteID(k.site), k.visitor, last)
		if err != nil {
			t.Fatalf("reading the window of %s: %v", k, err)
		}
		got := agg.Counts[features.CountRequests]
		switch {
		case got < want:
			missing = append(missing, fmt.Sprintf("%s (%s): %d of %d", k, info.label, got, want))
		case got > want:
			over++
			if exact {
				extra = append(extra, fmt.Sprintf("%s (%s): %d, sent %d", k, info.label, got, want))
			}
		default:
			exactN++
		}
	}
	t.Logf("Redis windows of %d visitors: %d exact, %d with more requests than sent (a batch read twice), %d with fewer",
		len(b.visitors), exactN, over, len(missing))
	if len(missing) > 0 {
		t.Errorf("%d visitors' Redis windows lack requests they sent (got of sent), e.g. %s", len(missing), strings.Join(missing[:min(5, len(missing))], "; "))
	}
	if len(extra) > 0 {
		t.Errorf("%d visitors' Redis windows count requests twice after a graceful stop, e.g. %s", len(extra), strings.Join(extra[:min(5, len(extra))], "; "))
	}
}

// checkScoresStored checks that every score record on the scores topic
// from the offsets in from is a row of the ClickHouse scores table, read
// with FINAL, by (site, visitor, scored_at to the second).
func checkScoresStored(ctx context.Context, t *testing.T, r *run, from map[int]int64, b *batch) {
	t.Helper()
	scores, err := readScores(ctx, r.kc, from)
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) == 0 {
		t.Fatalf("no score records from %s", b.name)
	}
	rows, err := storedScores(ctx, r.st, b.first, b.last)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	var foreign int
	for _, s := range scores {
		k, err := detectionKey(s.Site, s.Visitor)
		if err != nil {
			t.Fatalf("score record of %s|%s: %v", s.Site, s.Visitor, err)
		}
		if b.visitors[k] == nil {
			foreign++
		}
		if s.Early {
			continue // not stored: see records.Score.Early
		}
		if !rows[scoreRow{k, s.ScoredAt.Unix()}] {
			missing = append(missing, fmt.Sprintf("%s at %s", k, s.ScoredAt.Format(time.RFC3339)))
		}
	}
	t.Logf("%d score records, %d rows in the scores table for their span", len(scores), len(rows))
	if foreign > 0 {
		t.Errorf("%d score records of visitors that %s does not have", foreign, b.name)
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d score records are not in the ClickHouse scores table, e.g. %s", len(missing), len(scores), strings.Join(missing[:min(5, len(missing))], "; "))
	}
}

// scoreRow is a row of the scores table as its ORDER BY key has it.
type scoreRow struct {
	visitor vkey
	at      int64 // scored_at, Unix seconds
}

// storedScores returns the rows of the scores table, read with FINAL,
// scored in [from, to].
func storedScores(ctx context.Context, st *pipeline.Stack, from, to time.Time) (map[scoreRow]bool, error) {
	conn, err := st.ClickHouse().Open()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	q := fmt.Sprintf("SELECT site, visitor, toUInt32(scored_at) FROM scores FINAL WHERE scored_at >= toDateTime(%d) AND scored_at <= toDateTime(%d)",
		from.Unix(), to.Unix()+1)
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	out := make(map[scoreRow]bool)
	for rows.Next() {
		var site string
		var visitor uint64
		var at uint32
		if err := rows.Scan(&site, &visitor, &at); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
		out[scoreRow{vkey{site, visitor}, int64(at)}] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	return out, nil
}
