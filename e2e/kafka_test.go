package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// kafkaClient asks the broker what the tests need to know: where each
// partition ends, what a consumer group has committed, and what a topic
// holds. It has its own transport, closed by close, so that no idle
// connection outlives the test.
type kafkaClient struct {
	brokers   []string
	client    *kafka.Client
	transport *kafka.Transport
}

func newKafkaClient(brokers []string) *kafkaClient {
	tr := &kafka.Transport{}
	return &kafkaClient{
		brokers:   brokers,
		client:    &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: 10 * time.Second},
		transport: tr,
	}
}

func (k *kafkaClient) close() { k.transport.CloseIdleConnections() }

// partitions lists the partitions of topic.
func (k *kafkaClient) partitions(ctx context.Context, topic string) ([]int, error) {
	resp, err := k.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, t.Error)
		}
		var ps []int
		for _, p := range t.Partitions {
			ps = append(ps, p.ID)
		}
		slices.Sort(ps)
		return ps, nil
	}
	return nil, fmt.Errorf("metadata of %s: no such topic", topic)
}

// ends returns, per partition of topic, the offset the next message will
// get (the high watermark).
func (k *kafkaClient) ends(ctx context.Context, topic string) (map[int]int64, error) {
	ps, err := k.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, p := range ps {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	resp, err := k.client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("listing the offsets of %s: %w", topic, err)
	}
	out := make(map[int]int64, len(ps))
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("listing the offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	if len(out) != len(ps) {
		return nil, fmt.Errorf("listing the offsets of %s: %d partitions answered of %d", topic, len(out), len(ps))
	}
	return out, nil
}

// committed returns group's committed offsets on topic, per partition; a
// partition without a commit is 0, where the services start.
func (k *kafkaClient) committed(ctx context.Context, group, topic string) (map[int]int64, error) {
	ps, err := k.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		return nil, fmt.Errorf("offsets of group %s on %s: %w", group, topic, err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("offsets of group %s on %s: %w", group, topic, resp.Error)
	}
	out := make(map[int]int64, len(ps))
	for _, p := range ps {
		out[p] = 0
	}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("offsets of group %s on %s/%d: %w", group, topic, po.Partition, po.Error)
		}
		out[po.Partition] = max(po.CommittedOffset, 0)
	}
	return out, nil
}

// commit commits offsets for group, which must have no members: a simple
// commit, as an operator's tool would make to skip messages.
func (k *kafkaClient) commit(ctx context.Context, group, topic string, offsets map[int]int64) error {
	req := &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	for _, p := range slices.Sorted(maps.Keys(offsets)) {
		req.Topics[topic] = append(req.Topics[topic], kafka.OffsetCommit{Partition: p, Offset: offsets[p]})
	}
	resp, err := k.client.OffsetCommit(ctx, req)
	if err != nil {
		return fmt.Errorf("committing offsets of group %s on %s: %w", group, topic, err)
	}
	var errs []error
	for _, pc := range resp.Topics[topic] {
		if pc.Error != nil {
			errs = append(errs, fmt.Errorf("committing offsets of group %s on %s/%d: %w", group, topic, pc.Partition, pc.Error))
		}
	}
	return errors.Join(errs...)
}

// behind returns how many messages of topic group has not committed, and
// a description naming the partitions that lag.
func (k *kafkaClient) behind(ctx context.Context, group, topic string) (int64, string, error) {
	ends, err := k.ends(ctx, topic)
	if err != nil {
		return 0, "", err
	}
	comm, err := k.committed(ctx, group, topic)
	if err != nil {
		return 0, "", err
	}
	var n int64
	var parts []string
	for _, p := range slices.Sorted(maps.Keys(ends)) {
		if d := ends[p] - comm[p]; d > 0 {
			n += d
			parts = append(parts, fmt.Sprintf("%s/%d committed %d of %d", topic, p, comm[p], ends[p]))
		}
	}
	if n == 0 {
		return 0, fmt.Sprintf("group %s has committed all of %s", group, topic), nil
	}
	return n, fmt.Sprintf("group %s is %d messages behind (%s)", group, n, strings.Join(parts, ", ")), nil
}

// read returns the messages of topic from the offsets in from (0 for a
// partition not in it) to the end as it is now, partition by partition,
// and the end offsets it read to.
func (k *kafkaClient) read(ctx context.Context, topic string, from map[int]int64) ([]kafka.Message, map[int]int64, error) {
	ends, err := k.ends(ctx, topic)
	if err != nil {
		return nil, nil, err
	}
	var out []kafka.Message
	for _, p := range slices.Sorted(maps.Keys(ends)) {
		start, end := from[p], ends[p]
		if start >= end {
			continue
		}
		msgs, err := k.readPartition(ctx, topic, p, start, end)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, msgs...)
	}
	return out, ends, nil
}

// readPartition reads the messages of topic/p at offsets [start, end),
// fetch by fetch: no background reader to outlive it.
func (k *kafkaClient) readPartition(ctx context.Context, topic string, p int, start, end int64) ([]kafka.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	msgs := make([]kafka.Message, 0, end-start)
	for next := start; next < end; {
		// kafka-go's default fetch size: the in-process broker runs in
		// this race-instrumented binary, slowly (see liveRate).
		resp, err := k.client.Fetch(ctx, &kafka.FetchRequest{
			Topic: topic, Partition: p, Offset: next,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: time.Second,
		})
		if err == nil {
			err = resp.Error
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s/%d at %d of %d: %w", topic, p, next, end, err)
		}
		for next < end {
			rec, err := resp.Records.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading %s/%d at %d of %d: %w", topic, p, next, end, err)
			}
			if rec.Offset < next {
				continue
			}
			m := kafka.Message{Topic: topic, Partition: p, Offset: rec.Offset, Time: rec.Time, Headers: rec.Headers}
			if m.Key, err = protocol.ReadAll(rec.Key); err == nil {
				m.Value, err = protocol.ReadAll(rec.Value)
			}
			if err != nil {
				return nil, fmt.Errorf("reading %s/%d at %d: %w", topic, p, rec.Offset, err)
			}
			msgs = append(msgs, m)
			next = rec.Offset + 1
		}
	}
	return msgs, nil
}

// header returns the value of m's header key, and whether it has one.
func header(m kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}
