package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/internal/publisher"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// TestEventTime sends, through Kafka, request events and score records
// whose times are decades ahead of the services' clocks, minutes beyond
// -max-event-ahead, and older than -max-event-age, among a visitor's
// ordinary requests in every Logpush timestamp format (RFC 3339, Unix
// seconds, Unix nanoseconds). Then it restarts all three services, which
// runs each one's retention pass, sends the rest, and checks that:
//
//   - each refused message is dead-lettered by every service that reads
//     it, with its reason, and counted as future or too_old;
//   - the requests table lost no row (retention counted back from the
//     newest stored request, which no refused event became), and the
//     retention cutoffs lie before the history;
//   - the visitor's Redis window holds exactly its ordinary requests, and
//     it was scored after the refused events and after the restart;
//   - the site's baseline still builds from its history;
//   - the publisher published the detection of ordinary scores, expiring
//     -detection-ttl after them, and none from a refused score.
func TestEventTime(t *testing.T) {
	r := shared(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	st := r.st
	start := r.reserve(3 * time.Minute)
	site := r.sites[0].Site
	const ip = "198.51.100.23"
	key := []byte(site + "|" + ip)

	// The visitor's ordinary requests, 3 s apart, in the three formats.
	const requests = 20
	good := make([]kafka.Message, requests)
	var buckets []uint32
	for i := range good {
		at := start.Add(time.Duration(i) * 3 * time.Second)
		ts := [...]string{strconv.Quote(at.Format(time.RFC3339)), strconv.FormatInt(at.Unix(), 10), strconv.FormatInt(at.UnixNano(), 10)}[i%3]
		good[i] = kafka.Message{Key: key, Value: requestAt(site, ip, ts, i)}
		buckets = append(buckets, features.DefaultWindow().Bucket(at))
	}
	now := time.Now()
	refused := map[string][]kafka.Message{
		service.ReasonFuture: {
			{Key: key, Value: requestAt(site, ip, `"2056-01-01T00:00:00Z"`, 100)},
			{Key: key, Value: requestAt(site, ip, strconv.FormatInt(now.Add(10*time.Minute).Unix(), 10), 101)},
		},
		service.ReasonTooOld: {
			{Key: key, Value: requestAt(site, ip, `"2010-06-01T00:00:00Z"`, 102)},
			{Key: key, Value: requestAt(site, ip, strconv.FormatInt(historyTraffic.Start.Add(-30*24*time.Hour).UnixNano(), 10), 103)},
		},
	}
	// Part one: the visitor's first 15 requests (42 s) with the refused
	// ones after the sixth, so that it is due again (-rescore-interval 30s
	// after its first score, at the fifth) only after them; the rest after
	// the restart.
	const refusedAfter, split = 6, 15
	part1 := append([]kafka.Message{}, good[:refusedAfter]...)
	part1 = append(append(part1, refused[service.ReasonFuture]...), refused[service.ReasonTooOld]...)
	part1 = append(part1, good[refusedAfter:split]...)

	// Score records straight to the scores topic: refused ones now, a
	// visitor with three ordinary scores above the threshold (a
	// detection under -min-hits 3) after the restart.
	scoreAt := func(visitor uint64, at time.Time) kafka.Message {
		return scoreRecord(t, site, visitor, at)
	}
	refusedScores := map[string][]kafka.Message{
		service.ReasonFuture: {scoreAt(0xfeed0001, time.Date(2056, 1, 1, 0, 0, 0, 0, time.UTC)), scoreAt(0xfeed0001, now.Add(10*time.Minute))},
		service.ReasonTooOld: {scoreAt(0xfeed0002, time.Date(2010, 6, 1, 0, 0, 0, 0, time.UTC))},
	}
	const detected = 0xfeed0003
	var goodScores []kafka.Message
	for k := range 3 {
		goodScores = append(goodScores, scoreAt(detected, start.Add(2*time.Minute+time.Duration(k)*10*time.Second)))
	}

	conn, err := st.ClickHouse().Open()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	countRows := func() uint64 {
		t.Helper()
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM requests FINAL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := waitBaseline(ctx, r); err != nil {
		t.Fatal(err)
	}
	rows0 := countRows()
	offsets := func(topic string) map[int]int64 {
		t.Helper()
		o, err := r.kc.ends(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	deadFrom, scoresFrom, detsFrom := offsets(pipeline.TopicDeadLetter), offsets(pipeline.TopicScores), offsets(pipeline.TopicDetections)

	produce(ctx, t, r, pipeline.TopicRequests, part1)
	produce(ctx, t, r, pipeline.TopicScores, append(refusedScores[service.ReasonFuture], refusedScores[service.ReasonTooOld]...))
	if err := drain(ctx, st, r.kc); err != nil {
		t.Fatal(err)
	}
	if err := waitBaseline(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		svc  pipeline.Name
		sent map[string][]kafka.Message
	}{{pipeline.Baseline, refused}, {pipeline.Detector, refused}, {pipeline.Publisher, refusedScores}} {
		m := metrics(ctx, t, st, c.svc)
		for reason, msgs := range c.sent {
			name := fmt.Sprintf(`anomalyd_%s_dead_letters_total{reason=%q}`, c.svc, reason)
			if got := value(t, c.svc, m, name); got != float64(len(msgs)) {
				t.Errorf("%s = %v, want %d", name, got, len(msgs))
			}
		}
	}

	// The restart: each service stops gracefully and starts again, and
	// runs its retention pass after its first batch.
	for _, n := range pipeline.Names() {
		svc := st.Service(n)
		if err := svc.Stop(ctx); err != nil {
			t.Fatalf("stopping the %s: %v", n, err)
		}
		if err := svc.Start(ctx); err != nil {
			t.Fatalf("starting the %s again: %v", n, err)
		}
	}
	produce(ctx, t, r, pipeline.TopicRequests, good[split:])
	produce(ctx, t, r, pipeline.TopicScores, goodScores)
	if err := drain(ctx, st, r.kc); err != nil {
		t.Fatal(err)
	}
	if err := waitBaseline(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, n := range []pipeline.Name{pipeline.Baseline, pipeline.Publisher} {
		name := fmt.Sprintf("anomalyd_%s_retention_cutoff_timestamp_seconds", n)
		err := poll(ctx, 30*time.Second, string(n)+"'s retention pass", func(ctx context.Context) (bool, string, error) {
			v, err := st.Service(n).MetricsValue(ctx, name)
			return v > 0, fmt.Sprintf("%s %v", name, v), err
		})
		if err != nil {
			t.Fatal(err)
		}
		cutoff := time.Unix(int64(metric(ctx, t, st, n, name)), 0).UTC()
		if cutoff.After(historyTraffic.Start) {
			t.Errorf("the %s's retention cuts at %s, after the history's start %s", n, cutoff.Format(time.RFC3339), historyTraffic.Start.Format(time.RFC3339))
		}
		t.Logf("%s retention cutoff after the restart: %s", n, cutoff.Format(time.RFC3339))
	}
	if rows := countRows(); rows != rows0+requests {
		t.Errorf("the requests table has %d rows, want the %d before and the visitor's %d ordinary requests", rows, rows0, requests)
	}

	// Dead letters: each refused request from both readers, each refused
	// score from the publisher, with a reason naming the bound.
	dead, _, err := r.kc.read(ctx, pipeline.TopicDeadLetter, deadFrom)
	if err != nil {
		t.Fatal(err)
	}
	wantReason := map[string]string{service.ReasonFuture: "event time too far ahead of the clock", service.ReasonTooOld: "event time too far behind the clock"}
	for reason, msgs := range refused {
		for _, m := range msgs {
			checkDeadLetters(t, dead, m, 2, wantReason[reason])
		}
	}
	for reason, msgs := range refusedScores {
		for _, m := range msgs {
			checkDeadLetters(t, dead, m, 1, wantReason[reason])
		}
	}

	// The visitor's window and scores: as if the refused events had never
	// come.
	v := visitorOf(t, good[0].Value)
	checkWindows(ctx, t, st, &batch{name: "the visitor's requests", visitors: map[vkey]*visitorInfo{v: {label: "human", buckets: buckets}}}, true)
	scores, err := readScores(ctx, r.kc, scoresFrom)
	if err != nil {
		t.Fatal(err)
	}
	var before, after int
	afterRefused, restart := start.Add(refusedAfter*3*time.Second), start.Add(split*3*time.Second)
	for _, s := range scores {
		k, err := detectionKey(s.Site, s.Visitor)
		if err != nil || k != v {
			continue
		}
		switch {
		case s.ScoredAt.Before(afterRefused):
		case s.ScoredAt.Before(restart):
			before++
		default:
			after++
		}
	}
	if before == 0 || after == 0 {
		t.Errorf("the visitor was scored %d times after the refused events and %d times after the restart; want both", before, after)
	}

	// The site's baseline builds from its history, as it did.
	var built siteStatus
	if code, err := callJSON(ctx, st.Service(pipeline.Baseline), http.MethodPost, "/v1/sites/"+site+"/rebuild", &built); err != nil || code != http.StatusOK {
		t.Fatalf("rebuilding %s after the refused events: %d %v %+v", site, code, err, built)
	}
	if built.Windows < r.sites[0].Windows {
		t.Errorf("the baseline of %s learned from %d visitor-windows, fewer than the %d of the history", site, built.Windows, r.sites[0].Windows)
	}

	// Detections: the ordinary visitor's, expiring a TTL after its score.
	dets, err := readDetections(ctx, r.kc, detsFrom)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, d := range dets {
		if d.ExpiresAt.Sub(d.DetectedAt) != publisher.DefaultTTL || d.DetectedAt.Before(start) || d.DetectedAt.After(start.Add(3*time.Minute)) {
			t.Errorf("detection of %s|%s detected at %s expires at %s: want within the test's span, expiring %v later",
				d.Site, d.Visitor, d.DetectedAt.Format(time.RFC3339), d.ExpiresAt.Format(time.RFC3339), publisher.DefaultTTL)
		}
		found = found || d.Visitor == records.VisitorID(detected)
	}
	if !found {
		t.Errorf("no detection of the visitor with three ordinary scores above the threshold among %d detections", len(dets))
	}
}

// requestAt is a request event of ip on site at ts, a JSON timestamp, to
// path /event-time/i.
func requestAt(site, ip, ts string, i int) []byte {
	return fmt.Appendf(nil, `{"EdgeStartTimestamp":%s,"ZoneName":%q,"ClientIP":%q,"ClientRequestMethod":"GET","ClientRequestPath":"/event-time/%d","ClientRequestURI":"/event-time/%d","ClientRequestUserAgent":"e2e-event-time/1.0","EdgeResponseStatus":200}`,
		ts, site, ip, i, i)
}

// scoreRecord is a score record of visitor far above its threshold,
// scored at at, keyed as the detector keys it.
func scoreRecord(t *testing.T, site string, visitor uint64, at time.Time) kafka.Message {
	t.Helper()
	s := records.Score{
		V: records.Version, Site: site, Visitor: records.VisitorID(visitor), Score: 100, Threshold: 10,
		Features:    []records.Contribution{{Feature: "log1p_requests", Value: 5, Contribution: 100}},
		WindowStart: at.Add(-10 * time.Minute), WindowEnd: at, BaselineVersion: "e2e", ScoredAt: at,
	}
	js, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Key: records.Key(site, s.Visitor), Value: js}
}

// produce writes msgs to topic, keyed and partitioned as the services'
// producers do.
func produce(ctx context.Context, t *testing.T, r *run, topic string, msgs []kafka.Message) {
	t.Helper()
	w := &kafka.Writer{
		Addr: kafka.TCP(r.st.Brokers()...), Topic: topic, Transport: r.kc.transport,
		Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond,
	}
	err := w.WriteMessages(ctx, msgs...)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("producing to %s: %v", topic, err)
	}
}

// waitBaseline waits until the baseline service has committed every
// request.
func waitBaseline(ctx context.Context, r *run) error {
	return poll(ctx, time.Minute, "the baseline service to read the requests", func(ctx context.Context) (bool, string, error) {
		n, status, err := r.kc.behind(ctx, "baseline", pipeline.TopicRequests)
		return n == 0, status, err
	})
}

// checkDeadLetters checks that m is on the dead-letter topic n times, with
// a reason header that says want.
func checkDeadLetters(t *testing.T, dead []kafka.Message, m kafka.Message, n int, want string) {
	t.Helper()
	var found int
	for _, d := range dead {
		if string(d.Value) != string(m.Value) {
			continue
		}
		found++
		if reason, _ := header(d, service.HeaderReason); !strings.Contains(reason, want) {
			t.Errorf("dead letter of %s: reason %q does not say %q", m.Value, reason, want)
		}
	}
	if found != n {
		t.Errorf("%s is on the dead-letter topic %d times, want %d", m.Value, found, n)
	}
}
