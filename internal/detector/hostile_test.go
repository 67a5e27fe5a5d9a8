package detector

import (
	"encoding/json"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// TestHostileInput sends a million malformed and adversarial events
// (traffic.Hostile), interleaved with ordinary traffic, through the
// Processor in batches of the detector's size: no event crashes it, each
// is either dead-lettered with a reason or accepted, memory stays bounded,
// and the ordinary visitors are scored exactly as without the hostile
// events.
func TestHostileInput(t *testing.T) {
	total := traffic.HostileEvents
	if testing.Short() {
		total /= 10
	}
	good := trafficMessages()
	source := staticSource{"shop.example": testModel(t)}
	cfg := DefaultConfig()
	want := runBatches(t, proc(newTestProcessor(t, cfg, source)), good, cfg.BatchSize)
	if len(want) == 0 {
		t.Fatal("the ordinary traffic has no scores: the test shows nothing")
	}

	p, m := newTestProcessor(t, cfg, source)
	reasons := service.EventReasons()
	var got []records.Score
	var sent, dead, peakHeap uint64
	var batch []kafka.Message
	flush := func() {
		b, err := p.Process(t.Context(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range b.DeadLetters {
			dead++
			var reason, source string
			for _, h := range d.Headers {
				switch h.Key {
				case service.HeaderReason:
					reason = string(h.Value)
				case service.HeaderSource:
					source = string(h.Value)
				}
			}
			if reason == "" || len(reason) > 1024 || source == "" {
				t.Fatalf("a dead letter without its reason or source, or a reason of more than a KiB: %.300q, %q", reason, source)
			}
		}
		for _, s := range b.Scores {
			var sc records.Score
			if err := json.Unmarshal(s.Value, &sc); err != nil {
				t.Fatal(err)
			}
			if sc.Site == "shop.example" {
				got = append(got, sc)
			}
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapInuse)
		batch = batch[:0]
	}
	add := func(v []byte) {
		sent++
		batch = append(batch, kafka.Message{Value: v, Topic: "requests", Offset: int64(sent)})
		if len(batch) == cfg.BatchSize {
			flush()
		}
	}
	values := make([][]byte, len(good))
	for i, g := range good {
		values[i] = g.Value
	}
	for v := range traffic.HostileAmong(values, total, 1, func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second / 8) }) {
		add(v)
	}
	flush()

	var counted float64
	for _, r := range reasons {
		counted += testutil.ToFloat64(m.DeadLetters.WithLabelValues(r))
	}
	if events := testutil.ToFloat64(m.Events); events != float64(sent) || counted != float64(dead) {
		t.Errorf("%v events and %v dead letters counted, want %d and %d", events, counted, sent, dead)
	}
	t.Logf("%d events: %d dead-lettered, %d accepted; peak heap in use %d MiB", sent, dead, sent-dead, peakHeap>>20)
	if dead == 0 || dead == sent {
		t.Errorf("%d of %d events dead-lettered: the corpus must have both kinds", dead, sent)
	}
	if peakHeap > 512<<20 {
		t.Errorf("peak heap in use %d MiB, want at most 512", peakHeap>>20)
	}
	// Within a batch, scores come shard by shard: compare them in order of
	// visitor and time.
	order := func(a, b records.Score) int {
		if c := strings.Compare(a.Visitor, b.Visitor); c != 0 {
			return c
		}
		return a.ScoredAt.Compare(b.ScoredAt)
	}
	slices.SortFunc(got, order)
	slices.SortFunc(want, order)
	same := func(a, b records.Score) bool {
		return a.Visitor == b.Visitor && a.ScoredAt.Equal(b.ScoredAt) && a.Score == b.Score
	}
	for i := range min(len(got), len(want)) {
		if !same(got[i], want[i]) {
			t.Logf("first difference, score %d: %+v\nwithout hostile events: %+v", i, got[i], want[i])
			break
		}
	}
	if !slices.EqualFunc(got, want, same) {
		t.Errorf("the ordinary visitors were scored %d times among the hostile events, %d times without them, or not alike", len(got), len(want))
	}
}
