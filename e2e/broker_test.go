package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/internal/traffic"
)

// TestBrokerUnreachable cuts every service off the broker for 30 s (it
// hangs up on every request) right after a burst of events, while the
// services are working through it. Writes are retried; a service whose
// reader fails exits, and is started again as its orchestrator would (a
// reader that goes on after an error was seen to skip messages). Nothing
// is lost: afterwards every request is in the requests table exactly once,
// every event the detector read is accounted for, every score record is
// in the scores table, and every consumer has caught up.
//
// It found the baseline service's ingest failing on a commit during the
// outage while the process went on serving baselines (it waited for its
// builds' loop, which only a signal stopped): its group stayed 13,453
// messages behind for the 3 minutes the test waited.
func TestBrokerUnreachable(t *testing.T) {
	r := shared(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	st := r.st
	b := faultTraffic(t, r, "broker-outage traffic", 45, 3000, 12_000, 3*time.Minute, map[traffic.Scenario]int{traffic.Scraper: 2, traffic.CredentialStuffing: 2})
	scoresFrom, err := r.kc.ends(ctx, pipeline.TopicScores)
	if err != nil {
		t.Fatal(err)
	}
	before := countsOf(ctx, t, st)

	if _, err := send(ctx, st.Brokers(), b, 0); err != nil {
		t.Fatal(err)
	}
	cl := st.Kafka().Cluster()
	until := time.Now().Add(30 * time.Second)
	refused := 0
	cl.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		if time.Now().After(until) {
			cl.DropControl()
			return nil, nil, false
		}
		cl.KeepControl()
		refused++ // the cluster runs control functions one at a time
		return nil, errors.New("broker unreachable (test)"), true
	})
	time.Sleep(time.Until(until))
	// Until every consumer has caught up, a service that exited is started
	// again, as its orchestrator would.
	restarted := make(map[pipeline.Name]int)
	err = poll(ctx, 3*time.Minute, "every consumer to catch up", func(ctx context.Context) (bool, string, error) {
		for _, n := range []pipeline.Name{pipeline.Baseline, pipeline.Detector, pipeline.Publisher} {
			if svc := st.Service(n); !svc.Running() {
				if err := svc.Start(ctx); err != nil {
					return false, "", fmt.Errorf("starting %s again: %w", n, err)
				}
				restarted[n]++
			}
		}
		for _, g := range []struct {
			group, topic string
		}{{"baseline", pipeline.TopicRequests}, {"detector", pipeline.TopicRequests}, {"publisher", pipeline.TopicScores}} {
			if n, status, err := r.kc.behind(ctx, g.group, g.topic); err != nil || n > 0 {
				return false, status, err
			}
		}
		return true, "", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("services that exited and were started again: %v", restarted)
	if refused == 0 {
		t.Fatal("no request reached the broker during the outage: the test shows nothing")
	}

	// A detector started again counts from zero: then what its group
	// committed (every consumer caught up, above) shows every event read,
	// and the accounting below is of the new process's reads.
	got := countsOf(ctx, t, st)
	if restarted[pipeline.Detector] == 0 {
		got = got.minus(before)
		if got.events < float64(b.events) {
			t.Errorf("the detector read %v events, want all %d sent", got.events, b.events)
		}
	}
	if accounted := got.dead + got.scored + got.skipped + got.unscored; accounted != got.events {
		t.Errorf("%v events accounted for (%v dead letters, %v scored, %v skipped, %v unscored), want all %v read",
			accounted, got.dead, got.scored, got.skipped, got.unscored, got.events)
	}
	if rows := requestRows(ctx, t, st, b); rows != uint64(b.events) {
		t.Errorf("%d rows in the requests table for the %d events sent, want each once", rows, b.events)
	}
	checkScoresStored(ctx, t, r, scoresFrom, b)
	// Batches read again after the rebalances the outage caused may still
	// be scored after the drain: let them finish here, not in the next
	// test's window.
	if err := settle(ctx, r, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests refused during the outage; the detector read %v events for %d sent (a batch read again after a failed commit counts twice)",
		refused, got.events, b.events)
}

// settle waits until the scores topic has not grown for quiet and the
// pipeline is drained.
func settle(ctx context.Context, r *run, quiet time.Duration) error {
	last, err := r.kc.ends(ctx, pipeline.TopicScores)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the scores topic to settle: %w", ctx.Err())
		case <-time.After(quiet):
		}
		now, err := r.kc.ends(ctx, pipeline.TopicScores)
		if err != nil {
			return err
		}
		if maps.Equal(now, last) {
			return drain(ctx, r.st, r.kc)
		}
		last = now
	}
}
