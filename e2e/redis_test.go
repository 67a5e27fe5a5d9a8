package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/internal/traffic"
)

// detectorCounts are the detector's event counters: every event read is
// dead-lettered, or scored, skipped by the recency register, or not
// scored for a counted reason.
type detectorCounts struct {
	events, dead, scored, skipped, unscored, storeErrors float64
}

func countsOf(ctx context.Context, t *testing.T, st *pipeline.Stack) detectorCounts {
	t.Helper()
	m := func(name string) float64 { return metric(ctx, t, st, pipeline.Detector, name) }
	return detectorCounts{
		events:      m("anomalyd_detector_events_total"),
		dead:        m("anomalyd_detector_dead_letters_total"),
		scored:      m("anomalyd_detector_scored_total"),
		skipped:     m("anomalyd_detector_recency_skips_total"),
		unscored:    m("anomalyd_detector_unscored_total"),
		storeErrors: m("anomalyd_detector_store_errors_total"),
	}
}

func (c detectorCounts) minus(d detectorCounts) detectorCounts {
	return detectorCounts{c.events - d.events, c.dead - d.dead, c.scored - d.scored, c.skipped - d.skipped, c.unscored - d.unscored, c.storeErrors - d.storeErrors}
}

// faultTraffic generates the traffic of a fault test in a span of its
// own: people, and bots of the given scenarios.
func faultTraffic(t *testing.T, r *run, name string, seed uint64, visitors, events int, span time.Duration, bots map[traffic.Scenario]int) *batch {
	t.Helper()
	cfg := historyTraffic
	cfg.Seed, cfg.Visitors, cfg.Events, cfg.Duration = seed, visitors, events, span
	cfg.Start = r.reserve(span)
	cfg.Bots = bots
	b, err := generate(name, cfg, identity, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// requestRows counts the requests table's rows in b's span, each replayed
// event once.
func requestRows(ctx context.Context, t *testing.T, st *pipeline.Stack, b *batch) uint64 {
	t.Helper()
	conn, err := st.ClickHouse().Open()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM requests FINAL WHERE time >= ? AND time <= ?", b.first.Truncate(time.Second), b.last).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRedisRestart restarts Redis, which keeps nothing on disk (so it
// comes back flushed), under a live detector while events flow. The
// detector waits for it without committing, then goes on: every event
// sent is read once and accounted for (dead-lettered, scored, skipped by
// the recency register, or unscored for a counted reason), the detector
// scores again after the restart, and every score record written is in
// the ClickHouse scores table. What a flush loses is the visitors' windows
// before it: their feature state, not their events. Meanwhile the
// detector's liveness means progress: /healthz fails once it has held
// messages -stall-timeout without a commit, and holds once it has caught
// up, however long nothing comes.
func TestRedisRestart(t *testing.T) {
	r := shared(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	st, det := r.st, r.st.Service(pipeline.Detector)
	b := faultTraffic(t, r, "redis restart traffic", 43, 3000, 12_000, 4*time.Minute, map[traffic.Scenario]int{traffic.Scraper: 2, traffic.CredentialStuffing: 2})
	scoresFrom, err := r.kc.ends(ctx, pipeline.TopicScores)
	if err != nil {
		t.Fatal(err)
	}
	before := countsOf(ctx, t, st)

	sendErr := make(chan error, 1)
	go func() {
		_, err := send(ctx, st.Brokers(), b, restartRate)
		sendErr <- err
	}()
	err = poll(ctx, time.Minute, "the detector to read some events", func(ctx context.Context) (bool, string, error) {
		v, err := det.MetricsValue(ctx, "anomalyd_detector_events_total")
		return v-before.events >= float64(b.events)/4, fmt.Sprintf("%v events read", v-before.events), err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Redis().Stop(); err != nil {
		t.Fatalf("stopping redis: %v", err)
	}
	down := time.Now()
	err = poll(ctx, 2*stallTimeout, "the detector's /healthz to fail while it cannot commit", func(ctx context.Context) (bool, string, error) {
		code, err := healthz(ctx, det)
		return code == http.StatusServiceUnavailable, fmt.Sprintf("/healthz answers %d", code), err
	})
	if err != nil {
		t.Error(err)
	} else {
		t.Logf("/healthz failed %.1fs after Redis stopped (-stall-timeout %v)", time.Since(down).Seconds(), stallTimeout)
	}
	// Longer than go-redis absorbs with its own retries, while events keep
	// coming.
	time.Sleep(time.Until(down.Add(10 * time.Second)))
	if err := st.Redis().Start(ctx); err != nil {
		t.Fatalf("starting redis again: %v", err)
	}
	restarted := countsOf(ctx, t, st)
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, 2*time.Minute, "the detector to catch up", func(ctx context.Context) (bool, string, error) {
		n, status, err := r.kc.behind(ctx, "detector", pipeline.TopicRequests)
		return n == 0, status, err
	}); err != nil {
		t.Fatal(err)
	}
	if err := drain(ctx, st, r.kc); err != nil {
		t.Fatal(err)
	}

	// Caught up, with nothing more to read, for longer than the stall
	// timeout: live.
	time.Sleep(stallTimeout + 2*time.Second)
	if code, err := healthz(ctx, det); err != nil || code != http.StatusOK {
		t.Errorf("/healthz of a caught-up detector: %d, %v; want 200", code, err)
	}

	got := countsOf(ctx, t, st).minus(before)
	t.Logf("%d events sent; detector: %+v", b.events, got)
	if got.storeErrors == 0 {
		t.Error("no Redis error counted: the restart did not happen under load, so the test shows nothing")
	}
	if got.events != float64(b.events) {
		t.Errorf("%v events read, want each of the %d sent once: a batch that failed was committed, or read twice", got.events, b.events)
	}
	if accounted := got.dead + got.scored + got.skipped + got.unscored; accounted != got.events {
		t.Errorf("%v events accounted for (%v dead letters, %v scored, %v skipped, %v unscored), want all %v read",
			accounted, got.dead, got.scored, got.skipped, got.unscored, got.events)
	}
	if after := countsOf(ctx, t, st).minus(restarted); after.scored == 0 {
		t.Error("nothing scored after Redis came back")
	}
	checkScoresStored(ctx, t, r, scoresFrom, b)
}

// healthz returns the status code of svc's /healthz.
func healthz(ctx context.Context, svc *pipeline.Service) (int, error) {
	resp, err := svc.Do(ctx, http.MethodGet, "/healthz", nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
