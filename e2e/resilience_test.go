package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/pipeline"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/internal/traffic"
)

// TestBaselineServiceDown stops the baseline service once the detector has
// every site's baseline cached, keeps sending traffic with bots, and
// checks that the detector keeps scoring from its cache (no event of a
// known site goes unscored for want of a baseline, although it does ask
// the service and fail) and that new detections are published while the
// service is down.
func TestBaselineServiceDown(t *testing.T) {
	r := shared(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	st, bl := r.st, r.st.Service(pipeline.Baseline)

	// Warm up: traffic on every site, so that the detector holds every
	// site's baseline, whatever ran before (a restarted detector starts
	// with an empty cache).
	warm := historyTraffic
	warm.Seed, warm.Visitors, warm.Events, warm.Duration = 51, 1000, 3000, 2*time.Minute
	warm.Start = r.reserve(warm.Duration)
	wb, err := generate("warm-up traffic", warm, identity, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	noBaseline := `anomalyd_detector_unscored_total{reason="no_baseline"}`
	nb0 := metric(ctx, t, st, pipeline.Detector, noBaseline)
	if _, err := send(ctx, st.Brokers(), wb, liveRate); err != nil {
		t.Fatal(err)
	}
	if err := drain(ctx, st, r.kc); err != nil {
		t.Fatal(err)
	}
	if nb := value(t, pipeline.Detector, metrics(ctx, t, st, pipeline.Detector), noBaseline); nb != nb0 {
		t.Fatalf("the detector had no baseline for %v scorings of the warm-up traffic with the baseline service up: %s went from %v to %v",
			nb-nb0, noBaseline, nb0, nb)
	}

	// Down.
	dm := metrics(ctx, t, st, pipeline.Detector)
	nb0 = value(t, pipeline.Detector, dm, noBaseline)
	errs0 := value(t, pipeline.Detector, dm, "anomalyd_detector_baseline_errors_total")
	scored0 := value(t, pipeline.Detector, dm, "anomalyd_detector_scored_total")
	detsFrom, err := r.kc.ends(ctx, pipeline.TopicDetections)
	if err != nil {
		t.Fatal(err)
	}
	if err := bl.Stop(ctx); err != nil {
		t.Fatalf("stopping the baseline service: %v", err)
	}
	t.Cleanup(func() {
		if !bl.Running() {
			if err := bl.Start(context.WithoutCancel(ctx)); err != nil {
				t.Errorf("starting the baseline service again: %v", err)
			}
		}
	})

	cfg := historyTraffic
	cfg.Seed, cfg.Visitors, cfg.Events, cfg.Duration = 52, 2000, 10_000, 5*time.Minute
	cfg.Start = r.reserve(cfg.Duration)
	cfg.Bots = map[traffic.Scenario]int{traffic.CredentialStuffing: 3, traffic.Scraper: 3, traffic.UARotation: 3}
	b, err := generate("traffic while the baseline service is down", cfg, identity, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Paced over several -baseline-revalidate periods (2s), so that the
	// detector asks the service, and fails, while the traffic flows.
	start := time.Now()
	if _, err := send(ctx, st.Brokers(), b, 2500); err != nil {
		t.Fatal(err)
	}
	if err := drain(ctx, st, r.kc); err != nil {
		t.Fatal(err)
	}
	if bl.Running() {
		t.Fatal("the baseline service runs again before the checks")
	}
	t.Logf("%d events (%v) sent and drained in %.1fs with the baseline service down", b.events, b.labels(), time.Since(start).Seconds())

	dm = metrics(ctx, t, st, pipeline.Detector)
	nb := value(t, pipeline.Detector, dm, noBaseline)
	errs := value(t, pipeline.Detector, dm, "anomalyd_detector_baseline_errors_total")
	scored := value(t, pipeline.Detector, dm, "anomalyd_detector_scored_total")
	t.Logf("detector while the baseline service was down: %v scorings, %v failed baseline fetches, %v unscored for want of a baseline",
		scored-scored0, errs-errs0, nb-nb0)
	if nb != nb0 {
		t.Errorf("%s grew by %v while the baseline service was down: the detector dropped cached baselines of known sites", noBaseline, nb-nb0)
	}
	if scored <= scored0 {
		t.Errorf("the detector scored nothing while the baseline service was down (anomalyd_detector_scored_total stayed %v)", scored0)
	}
	if errs <= errs0 {
		t.Errorf("anomalyd_detector_baseline_errors_total stayed %v: the detector never asked the baseline service while it was down, so the test did not exercise its fallback (is -baseline-revalidate %q?)",
			errs0, serviceFlags[pipeline.Detector])
	}

	dets, err := readDetections(ctx, r.kc, detsFrom)
	if err != nil {
		t.Fatal(err)
	}
	q, err := evaluate(b, dets)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d detections published while the baseline service was down; per visitor: %v", len(dets), q)
	if len(dets) == 0 {
		t.Error("no detection was published while the baseline service was down")
	}
	if q.unknown > 0 {
		t.Errorf("%d detected visitors are not in the traffic sent while the baseline service was down", q.unknown)
	}
}

// TestMalformedInput sends, among the events of one visitor and on its
// partition, a message that is not JSON and an event without its client
// IP. Both must reach the dead-letter topic from each service that reads
// the requests topic (detector and baseline), with a reason header naming
// the problem and a source header naming where they were read, and the
// visitor's events after them must be processed and scored.
func TestMalformedInput(t *testing.T) {
	r := shared(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	st := r.st

	const site, ip = "shop.example.com", "198.51.100.7"
	key := []byte(site + "|" + ip)
	start := r.reserve(time.Minute)
	good := func(i int) []byte {
		return fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":%q,"ClientIP":%q,"ClientRequestMethod":"GET","ClientRequestPath":"/products/%d","ClientRequestURI":"/products/%d","ClientRequestUserAgent":"e2e-malformed/1.0","EdgeResponseStatus":200}`,
			start.Add(time.Duration(i)*2*time.Second).UnixNano(), site, ip, i, i)
	}
	garbage := []byte(`{"EdgeStartTimestamp": 17, "ZoneName": "shop.example.com", "ClientIP": ` + "\x00")
	noIP := fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":%q,"ClientRequestMethod":"GET","ClientRequestPath":"/","EdgeResponseStatus":200}`,
		start.Add(3*time.Second).UnixNano(), site)
	bad := map[string]struct {
		value  []byte
		reason []string // what the reason header must say
	}{
		"not JSON":         {garbage, []string{"malformed event", "invalid JSON"}},
		"without ClientIP": {noIP, []string{"malformed event", `"ClientIP"`, "missing"}},
	}
	// One good event, the bad ones, then nine good: the visitor reaches
	// the detector's -min-requests (2) only with events after the bad ones.
	const before, after = 1, 9
	var msgs []kafka.Message
	for i := range before {
		msgs = append(msgs, kafka.Message{Key: key, Value: good(i)})
	}
	msgs = append(msgs, kafka.Message{Key: key, Value: garbage}, kafka.Message{Key: key, Value: noIP})
	for i := before; i < before+after; i++ {
		msgs = append(msgs, kafka.Message{Key: key, Value: good(i)})
	}

	events0 := metric(ctx, t, st, pipeline.Detector, "anomalyd_detector_events_total")
	detDead0 := metric(ctx, t, st, pipeline.Detector, `anomalyd_detector_dead_letters_total{reason="malformed"}`)
	blDead0 := metric(ctx, t, st, pipeline.Baseline, `anomalyd_baseline_dead_letters_total{reason="malformed"}`)
	reqFrom, err := r.kc.ends(ctx, pipeline.TopicRequests)
	if err != nil {
		t.Fatal(err)
	}
	deadFrom, err := r.kc.ends(ctx, pipeline.TopicDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	scoresFrom, err := r.kc.ends(ctx, pipeline.TopicScores)
	if err != nil {
		t.Fatal(err)
	}

	produce(ctx, t, r, pipeline.TopicRequests, msgs)
	if err := drain(ctx, st, r.kc); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, time.Minute, "the baseline service to read the requests", func(ctx context.Context) (bool, string, error) {
		n, status, err := r.kc.behind(ctx, "baseline", pipeline.TopicRequests)
		return n == 0, status, err
	}); err != nil {
		t.Fatal(err)
	}

	// Where the bad messages were written: their source header must say so.
	produced, _, err := r.kc.read(ctx, pipeline.TopicRequests, reqFrom)
	if err != nil {
		t.Fatal(err)
	}
	if len(produced) != len(msgs) {
		t.Fatalf("the requests topic got %d messages, want the %d produced (did another test send meanwhile?)", len(produced), len(msgs))
	}
	source := make(map[string]string) // value -> topic/partition/offset
	for _, m := range produced {
		source[string(m.Value)] = m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10)
	}

	dead, _, err := r.kc.read(ctx, pipeline.TopicDeadLetter, deadFrom)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(bad)) {
		want := bad[name]
		var found int
		for _, m := range dead {
			if string(m.Value) != string(want.value) {
				continue
			}
			found++
			reason, _ := header(m, service.HeaderReason)
			src, _ := header(m, service.HeaderSource)
			for _, w := range want.reason {
				if !strings.Contains(reason, w) {
					t.Errorf("dead letter of the message %s: %s header %q does not say %q", name, service.HeaderReason, reason, w)
				}
			}
			if src != source[string(want.value)] {
				t.Errorf("dead letter of the message %s: %s header %q, want %q", name, service.HeaderSource, src, source[string(want.value)])
			}
			if string(m.Key) != string(key) {
				t.Errorf("dead letter of the message %s: key %q, want the original %q", name, m.Key, key)
			}
			t.Logf("dead letter of the message %s: %s=%q %s=%q", name, service.HeaderReason, reason, service.HeaderSource, src)
		}
		// One from the detector, one from the baseline service.
		if found != 2 {
			t.Errorf("the message %s is on the dead-letter topic %d times, want 2 (detector and baseline service); the topic got %d messages", name, found, len(dead))
		}
	}

	dm := metrics(ctx, t, st, pipeline.Detector)
	events := value(t, pipeline.Detector, dm, "anomalyd_detector_events_total")
	detDead := value(t, pipeline.Detector, dm, `anomalyd_detector_dead_letters_total{reason="malformed"}`)
	blDead := value(t, pipeline.Baseline, metrics(ctx, t, st, pipeline.Baseline), `anomalyd_baseline_dead_letters_total{reason="malformed"}`)
	if got := events - events0; got != float64(len(msgs)) {
		t.Errorf("anomalyd_detector_events_total grew by %v, want %d: the events after the bad ones were not all read", got, len(msgs))
	}
	if got := detDead - detDead0; got != float64(len(bad)) {
		t.Errorf(`anomalyd_detector_dead_letters_total{reason="malformed"} grew by %v, want %d`, got, len(bad))
	}
	if got := blDead - blDead0; got != float64(len(bad)) {
		t.Errorf(`anomalyd_baseline_dead_letters_total{reason="malformed"} grew by %v, want %d`, got, len(bad))
	}

	// The visitor is scored once its window holds -min-requests requests,
	// which takes events sent after the bad ones.
	visitor := visitorOf(t, good(0))
	scores, err := readScores(ctx, r.kc, scoresFrom)
	if err != nil {
		t.Fatal(err)
	}
	var mine int
	for _, s := range scores {
		if k, err := detectionKey(s.Site, s.Visitor); err == nil && k == visitor {
			mine++
			t.Logf("score of %s after the bad messages: %.2f (threshold %.2f) at %s", visitor, s.Score, s.Threshold, s.ScoredAt.Format(time.RFC3339))
		}
	}
	if mine == 0 {
		t.Errorf("no score record of %s, whose events after the bad messages make its window scorable; %d score records in all", visitor, len(scores))
	}
	rows, err := storedScores(ctx, st, start, start.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var stored int
	for row := range rows {
		if row.visitor == visitor {
			stored++
		}
	}
	if stored != mine {
		t.Errorf("the scores table has %d rows of %s, want its %d score records", stored, visitor, mine)
	}
}
