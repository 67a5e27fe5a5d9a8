package testenv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/testenv"
)

func TestKafkaProduceConsumeGroup(t *testing.T) {
	const (
		topic = "requests"
		group = "smoke"
		n     = 1000
	)
	k := testenv.Kafka(t, topic)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	// An explicit Transport, closed at the end: a Writer literal uses
	// kafka.DefaultTransport, whose idle connections outlive Writer.Close.
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{
		Addr:         kafka.TCP(k.Brokers()...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		Transport:    transport,
		RequiredAcks: kafka.RequireAll,     // the default is RequireNone
		BatchTimeout: 5 * time.Millisecond, // the default is 1 s
	}
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{
			Key:   fmt.Appendf(nil, "key-%d", i),
			Value: fmt.Appendf(nil, "value-%d", i),
		}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("WriteMessages: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("closing writer: %v", err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: k.Brokers(),
		Topic:   topic,
		GroupID: group,
		MaxWait: 100 * time.Millisecond,
	})
	defer r.Close()
	seen := make(map[string]int, n)
	got := make([]kafka.Message, 0, n)
	for len(got) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("FetchMessage after %d messages: %v", len(got), err)
		}
		got = append(got, m)
		seen[string(m.Key)]++
		var i int
		if _, err := fmt.Sscanf(string(m.Key), "key-%d", &i); err != nil {
			t.Fatalf("unexpected key %q", m.Key)
		}
		if want := fmt.Sprintf("value-%d", i); string(m.Value) != want {
			t.Errorf("key %q has value %q, want %q", m.Key, m.Value, want)
		}
	}
	for i := range n {
		if c := seen[fmt.Sprintf("key-%d", i)]; c != 1 {
			t.Errorf("key-%d arrived %d times, want once", i, c)
		}
	}
	// One commit for the whole batch, never one per message.
	if err := r.CommitMessages(ctx, got...); err != nil {
		t.Fatalf("CommitMessages: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("closing reader: %v", err)
	}

	// The group's committed offsets account for every message.
	client := &kafka.Client{Addr: kafka.TCP(k.Brokers()...), Transport: transport}
	resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group})
	if err != nil {
		t.Fatalf("OffsetFetch: %v", err)
	}
	var committed int64
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("OffsetFetch partition %d: %v", p.Partition, p.Error)
		}
		committed += p.CommittedOffset
	}
	if committed != n {
		t.Errorf("committed offsets add up to %d, want %d", committed, n)
	}
}
