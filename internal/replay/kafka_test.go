package replay

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// TestKafkaRoundTrip sends generated traffic, with a malformed line, to an
// in-process broker and reads every message back: each line arrives once,
// keyed site|ClientIP, and each key in only one partition.
func TestKafkaRoundTrip(t *testing.T) {
	const topic = "requests"
	k := testenv.Kafka(t, topic)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	started := time.Now().Add(-time.Second).Truncate(time.Millisecond) // Kafka keeps milliseconds

	cfg := DefaultGenerateConfig()
	cfg.Traffic.Sites, cfg.Traffic.Visitors, cfg.Traffic.Events = 5, 2000, 8000
	cfg.Traffic.Duration = 2 * time.Minute
	for s := range cfg.Traffic.Bots {
		cfg.Traffic.Bots[s] = 2
	}
	var input bytes.Buffer
	n, err := Generate(ctx, cfg, &input)
	if err != nil {
		t.Fatal(err)
	}
	input.WriteString("not an event\n")
	lines := strings.Split(strings.TrimSuffix(input.String(), "\n"), "\n")

	scfg := DefaultConfig()
	scfg.Batch = 1000
	w := NewKafkaWriter(k.Brokers(), topic, scfg.Batch)
	st, err := Send(ctx, scfg, &input, w)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if st.Events != n+1 || st.Malformed != 1 {
		t.Fatalf("stats %+v, want %d events, 1 malformed", st, n+1)
	}

	want := make(map[string]string, len(lines)) // value -> key
	dec, _ := features.NewDecoder(features.DefaultFieldMap())
	var ev features.Event
	for _, l := range lines {
		key := ""
		if dec.Decode([]byte(l), &ev) == nil {
			key = ev.Site + "|" + ev.ClientIP.String()
		}
		want[l] = key
	}
	if len(want) != len(lines) {
		t.Fatalf("the input has duplicate lines: %d distinct of %d", len(want), len(lines))
	}

	t.Logf("sent: %v", st)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: k.Brokers(), Topic: topic, GroupID: "replay-test",
		MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset,
	})
	defer r.Close()
	partitionOf := make(map[string]int)
	for got := 0; got < len(lines); got++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("FetchMessage after %d of %d messages: %v", got, len(lines), err)
		}
		key, ok := want[string(m.Value)]
		if !ok {
			t.Fatalf("message %q was not sent, or arrived twice", m.Value)
		}
		// kafka-go stamps a zero Message.Time with the send time; a
		// timestamp of 0 would let retention delete the events at once.
		if m.Time.Before(started) {
			t.Fatalf("message timestamp %v is before the test started (%v)", m.Time, started)
		}
		delete(want, string(m.Value))
		if string(m.Key) != key || (key == "") != (m.Key == nil) {
			t.Fatalf("message %q has key %q, want %q", m.Value, m.Key, key)
		}
		if key == "" {
			continue
		}
		if p, seen := partitionOf[key]; seen && p != m.Partition {
			t.Fatalf("key %q is in partitions %d and %d", key, p, m.Partition)
		}
		partitionOf[key] = m.Partition
	}
	used := make(map[int]bool)
	for _, p := range partitionOf {
		used[p] = true
	}
	if len(used) != testenv.DefaultKafkaPartitions {
		t.Errorf("keys use %d partitions, want all %d", len(used), testenv.DefaultKafkaPartitions)
	}
}
