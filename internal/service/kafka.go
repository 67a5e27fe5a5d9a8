package service

import (
	"errors"
	"flag"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// RegisterGroupFlag registers -group, the consumer group of the service's
// readers, with def as its default.
func (c *KafkaConfig) RegisterGroupFlag(fs *flag.FlagSet, def string) {
	c.hasGroup = true
	fs.StringVar(&c.Group, "group", def, "Kafka consumer group of the service's reader; replicas in one group share the topic's partitions")
}

// Kafka is a service's Kafka clients, made by KafkaConfig.Open: one dialer
// and one transport for all, readers of the service's consumer group and
// writers. Close closes every one it made, so that no main closes some and
// forgets others.
type Kafka struct {
	cfg       *KafkaConfig
	dialer    *kafka.Dialer
	transport *kafka.Transport

	mu      sync.Mutex
	closers []io.Closer
}

// Open makes the clients of a validated config.
func (c *KafkaConfig) Open() (*Kafka, error) {
	dialer, transport, err := c.Clients()
	if err != nil {
		return nil, err
	}
	return &Kafka{cfg: c, dialer: dialer, transport: transport}, nil
}

func (k *Kafka) keep(c io.Closer) {
	k.mu.Lock()
	k.closers = append(k.closers, c)
	k.mu.Unlock()
}

// Reader returns a reader of topic in the service's consumer group. Its
// fetches are of at most 1 MiB and wait at most 500 ms: kafka-go also uses
// the wait as the deadline of the broker's answer, so a slow broker
// building a large fetch would time out and be asked again forever, and
// the wait bounds how long a quiet topic delays a batch's linger. queue
// is how many messages it reads ahead (0: kafka-go's 100).
func (k *Kafka) Reader(topic string, queue int) *kafka.Reader {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: k.cfg.Brokers, Dialer: k.dialer, Topic: topic, GroupID: k.cfg.Group,
		MinBytes: 1, MaxBytes: 1 << 20, QueueCapacity: queue, MaxWait: 500 * time.Millisecond,
	})
	k.keep(r)
	return r
}

// Writer returns a writer to topic (KafkaConfig.Writer).
func (k *Kafka) Writer(topic string) *kafka.Writer {
	w := k.cfg.Writer(topic, k.transport)
	k.keep(w)
	return w
}

// DeadLetters returns the writer of the dead-letter topic.
func (k *Kafka) DeadLetters() DeadLetterWriter {
	return DeadLetterWriter{Writer: k.Writer(k.cfg.DeadLetterTopic)}
}

// Dialer is the readers' dialer, for other readers of the brokers.
func (k *Kafka) Dialer() *kafka.Dialer { return k.dialer }

// Close closes the readers and writers, the latest first, then the
// transport's idle connections.
func (k *Kafka) Close() error {
	k.mu.Lock()
	closers := slices.Clone(k.closers)
	k.closers = nil
	k.mu.Unlock()
	var errs []error
	for _, c := range slices.Backward(closers) {
		errs = append(errs, c.Close())
	}
	k.transport.CloseIdleConnections()
	return errors.Join(errs...)
}
