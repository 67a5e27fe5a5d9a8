package detector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
)

// MessageReader is what the detector needs of a Kafka consumer-group
// reader (*kafka.Reader).
type MessageReader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// MessageWriter is what the detector needs of a Kafka writer
// (*kafka.Writer): WriteMessages returns once every message is
// acknowledged.
type MessageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Detector moves request events from the requests topic to score records
// on the scores topic. It is at-least-once: a batch's offsets are committed
// only after its score records and dead letters are acknowledged and its
// features are written to the store. Batches read again after a crash (the
// one being delivered, and the one after it, whose features may be written
// already) add their requests once more: distinct counts do not change,
// request counts of those batches' minute may.
type Detector struct {
	cfg        Config
	proc       *Processor
	reader     MessageReader
	scores     MessageWriter
	deadLetter MessageWriter
	metrics    *Metrics
	logger     *slog.Logger

	// batches are slices of batches committed, for the next to reuse: a
	// batch's slice grew to thousands of messages by doubling, a garbage
	// of about a kilobyte an event.
	batches chan []kafka.Message

	// next is, per partition, the offset after the last one processed: a
	// message elsewhere means another replica read the partition
	// meanwhile (or this one reads it again), so cached features may be
	// stale.
	next map[int]int64
}

// New returns a Detector; Run starts it.
func New(cfg Config, proc *Processor, reader MessageReader, scores, deadLetter MessageWriter, metrics *Metrics, logger *slog.Logger) *Detector {
	return &Detector{cfg: cfg, proc: proc, reader: reader, scores: scores, deadLetter: deadLetter, metrics: metrics, logger: logger,
		batches: make(chan []kafka.Message, 4), next: make(map[int]int64)}
}

// Run detects until ctx is done, then finishes the batches in hand within
// ShutdownTimeout and returns nil. While Redis or Kafka writes fail, it
// retries with backoff and commits nothing. It returns an error when it
// cannot go on without risking data: the reader fails (a reader that goes
// on after an error has been seen to skip messages; a new one resumes
// from the committed offsets), the feature store fails midway through
// a batch (ErrPartial), or the brokers refuse a write for good (its
// size). The batch is then read again after a restart.
//
// Batches go through three stages, so that the CPU work of one overlaps
// the waits of the others: the first reads a batch and decodes it; the
// second scores it and flushes its features; the third writes its records
// and dead letters, then commits its offsets. Each stage hands a batch on
// only once the next has finished the one before, so offsets are committed
// in order.
func (d *Detector) Run(ctx context.Context) error {
	// The batches in hand outlive ctx by at most ShutdownTimeout.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(d.cfg.ShutdownTimeout, cancelWork) })
	defer stop()

	// The first stage reads until ctx is done or the second stage stops.
	read, stopReading := context.WithCancel(ctx)
	defer stopReading()
	decoded, quit := make(chan *Decoded), make(chan struct{})
	var readErr error
	go func() {
		defer close(decoded)
		readErr = d.read(read, decoded, quit)
	}()

	deliveries := make(chan delivery)
	delivered := make(chan struct{})
	var deliverErr error
	go func() {
		defer close(delivered)
		for b := range deliveries {
			if err := d.deliver(work, b); err != nil {
				d.logger.Warn("stopping with a batch not committed; it will be read again", "events", len(b.msgs), "err", err)
				deliverErr = err
				return
			}
		}
	}()

	err := d.consume(work, decoded, deliveries, delivered)
	stopReading()
	close(quit)
	for range decoded { // the first stage is done; a batch it decoded meanwhile is read again after a restart
	}
	if err == nil && readErr != nil {
		err = readErr
	}
	if err != nil { // the batch being delivered gets the same grace as on shutdown
		time.AfterFunc(d.cfg.ShutdownTimeout, cancelWork)
	}
	close(deliveries)
	<-delivered
	if err == nil && ctx.Err() == nil {
		// The third stage gave up on a write that no retry could make
		// (refused for its size), not on shutdown: the process must fail.
		err = deliverErr
	}
	return err
}

// read is Run's first stage: it reads and decodes batches, and hands each
// to the second stage, until ctx is done (the batch read by then is handed
// on too) or quit is closed.
func (d *Detector) read(ctx context.Context, decoded chan<- *Decoded, quit <-chan struct{}) error {
	for ctx.Err() == nil {
		var buf []kafka.Message
		select {
		case buf = <-d.batches:
		default:
		}
		msgs, err := service.FetchBatch(ctx, d.reader, buf, d.cfg.BatchSize, d.cfg.BatchLinger)
		if err != nil {
			d.metrics.KafkaErrors.WithLabelValues("fetch").Inc()
			return fmt.Errorf("reading requests: %w", err)
		}
		if len(msgs) == 0 {
			return nil // ctx is done
		}
		select {
		case decoded <- d.proc.Decode(msgs):
		case <-quit:
			return nil
		}
	}
	return nil
}

// delivery is a scored batch on its way to the third stage.
type delivery struct {
	msgs  []kafka.Message
	out   Batch
	start time.Time
}

// consume is Run's second stage: it scores and flushes the decoded
// batches, and hands each to the third stage, until the first stage is
// done or the third has stopped.
func (d *Detector) consume(work context.Context, decoded <-chan *Decoded, deliveries chan<- delivery, delivered <-chan struct{}) error {
	for {
		var b *Decoded
		select {
		case b = <-decoded:
			if b == nil {
				return nil // the first stage is done
			}
		case <-delivered:
			return nil // the third stage gave up; it said why
		}
		start := time.Now()
		out, err := d.process(work, b)
		if err != nil {
			if errors.Is(err, ErrPartial) {
				return err
			}
			d.logger.Warn("stopping with a batch not committed; it will be read again", "events", len(b.Messages()), "err", err)
			return nil
		}
		select {
		case deliveries <- delivery{msgs: b.Messages(), out: out, start: start}:
		case <-delivered:
			return nil // the third stage gave up; it said why
		}
	}
}

// process scores one batch and makes its features durable. It returns an
// error only when ctx ends first, or wrapping ErrPartial.
func (d *Detector) process(ctx context.Context, b *Decoded) (Batch, error) {
	d.checkOwnership(b.Messages())
	var out Batch
	err := d.retry(ctx, "prefetch", d.metrics.StoreErrors, func() error {
		var err error
		if out, err = d.proc.Score(ctx, b); errors.Is(err, ErrPartial) {
			return service.Permanent(err)
		}
		return err
	})
	if err != nil {
		return Batch{}, err
	}
	if err := d.retry(ctx, "flush", d.metrics.StoreErrors, func() error { return d.proc.Flush(ctx) }); err != nil {
		return Batch{}, fmt.Errorf("writing features: %w", err)
	}
	return out, nil
}

// deliver writes a batch's dead letters and score records, then commits
// its offsets. It returns an error, having committed nothing, when ctx
// ends first or a write is refused for good (service.Write).
func (d *Detector) deliver(ctx context.Context, b delivery) error {
	if len(b.out.DeadLetters) > 0 {
		err := service.Write(ctx, d.deadLetter, b.out.DeadLetters, d.failed("produce", d.metrics.KafkaErrors))
		if err != nil {
			return fmt.Errorf("writing %d dead letters: %w", len(b.out.DeadLetters), err)
		}
	}
	if len(b.out.Scores) > 0 {
		err := service.Write(ctx, d.scores, b.out.Scores, d.failed("produce", d.metrics.KafkaErrors))
		if err != nil {
			return fmt.Errorf("writing %d score records: %w", len(b.out.Scores), err)
		}
	}
	if err := d.reader.CommitMessages(ctx, b.msgs...); err != nil {
		// The batch's effects are durable; at worst it is read again.
		d.metrics.KafkaErrors.WithLabelValues("commit").Inc()
		d.logger.Warn("committing offsets failed; the batch may be read again", "events", len(b.msgs), "err", err)
	}
	d.metrics.Batches.Inc()
	d.metrics.BatchSeconds.Observe(time.Since(b.start).Seconds())
	d.noteLag(b.msgs)
	clear(b.msgs) // keeps no message alive
	select {
	case d.batches <- b.msgs[:0]:
	default:
	}
	return nil
}

// noteLag sets each partition's lag from the batch's last message of it.
func (d *Detector) noteLag(msgs []kafka.Message) {
	last := make(map[int]kafka.Message)
	for _, m := range msgs {
		last[m.Partition] = m
	}
	for p, m := range last {
		d.metrics.PartitionLag.WithLabelValues(strconv.Itoa(p)).Set(float64(max(m.HighWaterMark-m.Offset-1, 0)))
	}
}

// checkOwnership resets the stores' caches when a partition's offsets do
// not follow on from the last batch: another replica owned it meanwhile
// and may have written its visitors' features.
func (d *Detector) checkOwnership(msgs []kafka.Message) {
	reset := false
	for _, m := range msgs {
		if next, ok := d.next[m.Partition]; ok && m.Offset != next {
			reset = true
		}
		d.next[m.Partition] = m.Offset + 1
	}
	if reset {
		d.metrics.PartitionResets.Inc()
		d.logger.Info("a partition's offsets jumped; dropping cached features")
		d.proc.Reset()
	}
}

var _ Store = (*featurestore.RedisStore)(nil)

// retry runs f with service.Retry, counting each failure under op in errs
// and logging it.
func (d *Detector) retry(ctx context.Context, op string, errs *prometheus.CounterVec, f func() error) error {
	return service.Retry(ctx, f, d.failed(op, errs))
}

// failed is Retry's callback for a failure of op: counted in errs, logged.
func (d *Detector) failed(op string, errs *prometheus.CounterVec) func(error, time.Duration) {
	return func(err error, wait time.Duration) {
		errs.WithLabelValues(op).Inc()
		d.logger.Warn("retrying; offsets not committed", "op", op, "retry_in", wait, "err", err)
	}
}
