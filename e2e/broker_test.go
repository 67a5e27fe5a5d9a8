package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/internal/traffic"
)

// TestBrokerUnreachable cuts every service off the broker for 30 s (it
// hangs up on every request) right after a burst of events, while the
// services are working through it. They retry without losing anything:
// afterwards every request is in the requests table exactly once, every
// event the detector read is accounted for, every score record is in the
// scores table, and every consumer has caught up.
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
	if err := drain(ctx, st, r.kc); err != nil {
		t.Fatal(err)
	}
	if refused == 0 {
		t.Fatal("no request reached the broker during the outage: the test shows nothing")
	}

	got := countsOf(ctx, t, st).minus(before)
	if got.events < float64(b.events) {
		t.Errorf("the detector read %v events, want all %d sent", got.events, b.events)
	}
	if accounted := got.dead + got.scored + got.skipped + got.unscored; accounted != got.events {
		t.Errorf("%v events accounted for (%v dead letters, %v scored, %v skipped, %v unscored), want all %v read",
			accounted, got.dead, got.scored, got.skipped, got.unscored, got.events)
	}
	if rows := requestRows(ctx, t, st, b); rows != uint64(b.events) {
		t.Errorf("%d rows in the requests table for the %d events sent, want each once", rows, b.events)
	}
	checkScoresStored(ctx, t, r, scoresFrom, b)
	t.Logf("%d requests refused during the outage; the detector read %v events for %d sent (a batch read again after a failed commit counts twice)",
		refused, got.events, b.events)
}
