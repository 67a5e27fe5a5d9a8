package replay

import (
	"errors"
	"time"

	"github.com/segmentio/kafka-go"
)

// KafkaWriter is a kafka.Writer set up for a Sender, with its own
// Transport: the default one's idle connections would outlive Close.
type KafkaWriter struct {
	*kafka.Writer
	transport *kafka.Transport
}

// NewKafkaWriter returns a synchronous writer to topic, for a Sender whose
// writes hold batch events (Config.Batch). Close it when done.
func NewKafkaWriter(brokers []string, topic string, batch int) *KafkaWriter {
	if batch <= 0 {
		batch = DefaultBatch
	}
	transport := &kafka.Transport{}
	return &KafkaWriter{
		Writer: &kafka.Writer{
			Addr:      kafka.TCP(brokers...),
			Topic:     topic,
			Transport: transport,
			// Murmur2 is the Java client's default partitioner, and
			// franz-go's for keyed records: a shipper built on either puts
			// a key in the same partition as this tool, so live and
			// replayed events of one visitor meet in one detector.
			// kafka.Hash (FNV-1a) matches only sarama. A nil key (a
			// malformed line) goes to a random partition.
			Balancer: &kafka.Murmur2Balancer{},
			// Not kafka-go's defaults, no acknowledgement and a 1 s
			// linger: replay must not lose events, and a Sender's
			// synchronous write waits out the linger of every batch it
			// does not fill.
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: 5 * time.Millisecond,
			// A whole write per partition batch, up to the 1 MiB a
			// default broker accepts (kafka-go's default is 100 messages).
			BatchSize:  batch,
			BatchBytes: 1 << 20,
		},
		transport: transport,
	}
}

// SetTransport makes the writer connect through t (TLS, SASL), which Close
// then closes the idle connections of. Call it before the first write.
func (w *KafkaWriter) SetTransport(t *kafka.Transport) {
	w.Writer.Transport, w.transport = t, t
}

// Close flushes and closes the writer and its connections.
func (w *KafkaWriter) Close() error {
	err := w.Writer.Close()
	w.transport.CloseIdleConnections()
	if err != nil {
		return errors.Join(errors.New("closing the kafka writer"), err)
	}
	return nil
}
