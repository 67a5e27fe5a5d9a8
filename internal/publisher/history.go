package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

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
	dialer, parts, err := h.partitions(ctx)
	if err != nil {
		return fmt.Errorf("reading past detections: %w", err)
	}
	for _, p := range parts {
		if err := h.partition(ctx, dialer, p.ID, t, fn); err != nil {
			return fmt.Errorf("reading past detections: %s/%d: %w", h.Topic, p.ID, err)
		}
	}
	return nil
}

// Follow calls fn with every detection of the topic written at or after t
// (the zero time: from now on), as they come, until ctx ends, which it
// returns nil for. The partitions are read together; fn is called from
// one goroutine at a time.
func (h TopicHistory) Follow(ctx context.Context, t time.Time, fn func(*records.Detection)) error {
	dialer, parts, err := h.partitions(ctx)
	if err != nil {
		return fmt.Errorf("following detections: %w", err)
	}
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(ctx)
	for _, p := range parts {
		g.Go(func() error {
			r, err := h.reader(ctx, dialer, p.ID, t)
			if err != nil {
				return fmt.Errorf("%s/%d: %w", h.Topic, p.ID, err)
			}
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return fmt.Errorf("%s/%d: %w", h.Topic, p.ID, err)
				}
				var d records.Detection
				if json.Unmarshal(m.Value, &d) == nil && d.Site != "" {
					mu.Lock()
					fn(&d)
					mu.Unlock()
				}
			}
		})
	}
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("following detections: %w", err)
	}
	return nil
}

// partitions returns the dialer and the topic's partitions.
func (h TopicHistory) partitions(ctx context.Context) (*kafka.Dialer, []kafka.Partition, error) {
	if len(h.Brokers) == 0 {
		return nil, nil, errors.New("no broker")
	}
	dialer := h.Dialer
	if dialer == nil {
		dialer = kafka.DefaultDialer
	}
	parts, err := dialer.LookupPartitions(ctx, "tcp", h.Brokers[0], h.Topic)
	if err != nil {
		return nil, nil, fmt.Errorf("the partitions of %s: %w", h.Topic, err)
	}
	return dialer, parts, nil
}

// reader returns a reader of one partition from the first message written
// at or after t; from its end for the zero time.
func (h TopicHistory) reader(ctx context.Context, dialer *kafka.Dialer, partition int, t time.Time) (*kafka.Reader, error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: h.Brokers, Topic: h.Topic, Partition: partition, Dialer: dialer,
		MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond,
	})
	var err error
	if t.IsZero() {
		err = r.SetOffset(kafka.LastOffset)
	} else {
		err = r.SetOffsetAt(ctx, t)
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (h TopicHistory) partition(ctx context.Context, dialer *kafka.Dialer, partition int, t time.Time, fn func(*records.Detection)) error {
	r, err := h.reader(ctx, dialer, partition, t)
	if err != nil {
		return err
	}
	defer r.Close()
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
