package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/pkg/records"
)

// DetectionHistory gives back the detections published since a time, so
// that a restarted publisher knows what it had published: without them,
// the scores it reads again after a crash (and every hit within the TTL)
// would publish their visitors once more.
type DetectionHistory interface {
	Since(ctx context.Context, t time.Time, fn func(*records.Detection)) error
}

// TopicHistory reads the detections topic itself: every partition from
// the first message written at or after the time to its end.
type TopicHistory struct {
	Brokers []string
	Topic   string
	Dialer  *kafka.Dialer // TLS and SASL; nil for kafka-go's default
}

// Since calls fn with every detection of the topic written at or after t,
// partition by partition. Messages that are not detections are skipped.
func (h TopicHistory) Since(ctx context.Context, t time.Time, fn func(*records.Detection)) error {
	if len(h.Brokers) == 0 {
		return errors.New("reading past detections: no broker")
	}
	dialer := h.Dialer
	if dialer == nil {
		dialer = kafka.DefaultDialer
	}
	parts, err := dialer.LookupPartitions(ctx, "tcp", h.Brokers[0], h.Topic)
	if err != nil {
		return fmt.Errorf("reading past detections: the partitions of %s: %w", h.Topic, err)
	}
	for _, p := range parts {
		if err := h.partition(ctx, dialer, p.ID, t, fn); err != nil {
			return fmt.Errorf("reading past detections: %s/%d: %w", h.Topic, p.ID, err)
		}
	}
	return nil
}

func (h TopicHistory) partition(ctx context.Context, dialer *kafka.Dialer, partition int, t time.Time, fn func(*records.Detection)) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: h.Brokers, Topic: h.Topic, Partition: partition, Dialer: dialer,
		MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffsetAt(ctx, t); err != nil {
		return err
	}
	// What is there now: detections written from here on are the new
	// publisher's own.
	left, err := r.ReadLag(ctx)
	if err != nil {
		return err
	}
	var d records.Detection
	for ; left > 0; left-- {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return err
		}
		d = records.Detection{}
		if json.Unmarshal(m.Value, &d) == nil && d.Site != "" {
			fn(&d)
		}
	}
	return nil
}
