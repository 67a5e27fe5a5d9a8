package publisher

import (
	"encoding/json"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// TestHostileInput sends a million hostile values (traffic.Hostile's
// malformed and adversarial JSON) on the scores topic among ordinary score
// records, through the publisher's batches: nothing crashes, each is
// dead-lettered with a short reason, memory stays bounded, and the
// ordinary records give the same detections as without them.
func TestHostileInput(t *testing.T) {
	total := traffic.HostileEvents
	if testing.Short() {
		total /= 10
	}
	var good []kafka.Message
	for i := range 2000 {
		s := testScore("a.example", uint64(i%40), time.Duration(i)*300*time.Millisecond, float64(5+i%17))
		good = append(good, kafka.Message{Value: mustJSON(t, s)})
	}
	detections := func(p *Publisher, msgs []kafka.Message) []string {
		t.Helper()
		b, err := p.prepare(msgs)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range b.detections {
			var rec records.Detection
			if err := json.Unmarshal(d.Value, &rec); err != nil {
				t.Fatal(err)
			}
			out = append(out, rec.Visitor+"@"+rec.DetectedAt.Format(time.RFC3339Nano))
		}
		for _, d := range b.dead {
			if r := headerValue(d, service.HeaderReason); r == "" || len(r) > 1024 {
				t.Fatalf("a dead letter without a reason, or with one of more than a KiB: %.300q", r)
			}
		}
		return out
	}
	newPublisher := func() *Publisher {
		p := New(DefaultConfig(), nil, nil, nil, nil, NewMetrics(nil), nil)
		p.now = func() time.Time { return t0.Add(time.Hour) }
		return p
	}
	const size = 10_000 // the publisher's default batch
	var want []string
	p := newPublisher()
	for start := 0; start < len(good); start += size {
		want = append(want, detections(p, good[start:min(start+size, len(good))])...)
	}
	if len(want) == 0 {
		t.Fatal("the ordinary records give no detections: the test shows nothing")
	}

	p = newPublisher()
	var got []string
	var sent int
	var peakHeap uint64
	batch := make([]kafka.Message, 0, size)
	flush := func() {
		got = append(got, detections(p, batch)...)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapInuse)
		batch = batch[:0]
	}
	add := func(m kafka.Message) {
		sent++
		if batch = append(batch, m); len(batch) == size {
			flush()
		}
	}
	values := make([][]byte, len(good))
	for i, g := range good {
		values[i] = g.Value
	}
	for v := range traffic.HostileAmong(values, total, 3, func(int) time.Time { return t0 }) {
		add(kafka.Message{Value: v})
	}
	flush()
	t.Logf("%d values, %d of them score records; peak heap in use %d MiB", sent, len(good), peakHeap>>20)
	if peakHeap > 512<<20 {
		t.Errorf("peak heap in use %d MiB, want at most 512", peakHeap>>20)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%d detections among the hostile values, %d without them, or not alike", len(got), len(want))
	}
}

// headerValue is the value of m's header key, or "".
func headerValue(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
