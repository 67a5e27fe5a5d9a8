package baseline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// IngestConfig says how requests are batched into ClickHouse.
type IngestConfig struct {
	// BatchSize and Linger bound a batch: it is inserted when it holds
	// BatchSize rows or Linger after its first message, whichever is first.
	// ClickHouse wants few, large inserts.
	BatchSize int
	Linger    time.Duration
	// Retention is how much request history is kept, counted back from the
	// newest request (but no later than EventTime allows); older daily
	// partitions are dropped.
	Retention time.Duration
	// EventTime bounds the event times stored: one from decades ahead
	// would be the newest request, and retention would drop the rest.
	EventTime service.EventTimeConfig
	// Cluster is the ClickHouse cluster of the requests table
	// (-clickhouse-cluster), "" for one server.
	Cluster string
	// ShutdownTimeout bounds the flush of the last batch on shutdown.
	ShutdownTimeout time.Duration
}

// DefaultIngestConfig is batches of 10,000 rows or 1 s, 8 days of history
// (the baseline period and a day), events from 8 days behind the clock to
// 5 minutes ahead, and 30 s to flush on shutdown.
func DefaultIngestConfig() IngestConfig {
	return IngestConfig{
		BatchSize: 10_000, Linger: time.Second, Retention: 8 * 24 * time.Hour,
		EventTime: service.DefaultEventTimeConfig(), ShutdownTimeout: 30 * time.Second,
	}
}

// RegisterFlags registers the ingest flags, with c's values as defaults.
func (c *IngestConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "most requests per ClickHouse insert")
	fs.DurationVar(&c.Linger, "batch-linger", c.Linger, "longest a batch waits for more requests before it is inserted")
	fs.DurationVar(&c.Retention, "retention", c.Retention, "how much request history is kept, counted back from the newest request (at most -max-event-ahead past the clock); older daily partitions are dropped")
	c.EventTime.RegisterFlags(fs, "request events")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "longest the last batch may take to insert on shutdown")
}

// Validate reports the first unusable setting, naming its flag.
func (c *IngestConfig) Validate() error {
	switch {
	case c.BatchSize < 1:
		return fmt.Errorf("-batch-size must be at least 1, got %d", c.BatchSize)
	case c.Linger <= 0:
		return fmt.Errorf("-batch-linger must be positive, got %v", c.Linger)
	case c.Retention < 24*time.Hour:
		return fmt.Errorf("-retention must be at least a day (history is dropped by daily partition), got %v", c.Retention)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("-shutdown-timeout must be positive, got %v", c.ShutdownTimeout)
	}
	return c.EventTime.Validate()
}

// MessageReader is what Ingester needs of a Kafka consumer-group reader
// (*kafka.Reader).
type MessageReader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// MessageWriter is what Ingester needs of a Kafka writer (*kafka.Writer),
// for the dead-letter topic.
type MessageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// SiteNoter is told the sites of every batch inserted (*Baselines), so
// that a new site is known before the next listing of the table's sites.
type SiteNoter interface {
	Saw(sites []string)
}

// Ingester moves request events from Kafka into the requests table. It is
// at-least-once: offsets are committed only after the batch's rows are
// inserted and its malformed messages are dead-lettered, and the table
// collapses a replayed message into its first row (see
// chstore.RequestsDDL), so each request lands exactly once.
type Ingester struct {
	cfg        IngestConfig
	reader     MessageReader
	deadLetter MessageWriter
	conn       driver.Conn
	table      string
	conv       *Converter
	sites      SiteNoter
	metrics    *Metrics
	logger     *slog.Logger
	now        func() time.Time // the clock event times are checked against
}

// NewIngester returns an Ingester; Run starts it. sites may be nil.
func NewIngester(cfg IngestConfig, reader MessageReader, deadLetter MessageWriter, conn driver.Conn, table string, conv *Converter, sites SiteNoter, metrics *Metrics, logger *slog.Logger) *Ingester {
	return &Ingester{cfg: cfg, reader: reader, deadLetter: deadLetter, conn: conn, table: table, conv: conv, sites: sites, metrics: metrics, logger: logger, now: time.Now}
}

// Run ingests until ctx is done, then inserts and commits the batch in hand
// (within ShutdownTimeout) and returns nil. While ClickHouse fails, it
// retries the batch with backoff and commits nothing, so nothing is lost.
func (in *Ingester) Run(ctx context.Context) error {
	err := in.retry(ctx, "create_table", func() error { return chstore.CreateRequests(ctx, in.conn, in.table, in.cfg.Cluster) })
	if err != nil {
		return nil // ctx is done before ClickHouse ever answered
	}
	var lastDrop time.Time
	for {
		msgs, err := service.FetchBatch(ctx, in.reader, nil, in.cfg.BatchSize, in.cfg.Linger)
		if err != nil {
			return fmt.Errorf("reading requests: %w", err)
		}
		if ctx.Err() != nil {
			// Shutting down: the batch in hand still goes in, within bounds.
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.cfg.ShutdownTimeout)
			defer cancel()
			if err := in.flush(flushCtx, msgs); err != nil {
				in.logger.Warn("shutting down with a batch not inserted; it will be read again", "messages", len(msgs), "err", err)
			}
			return nil
		}
		if err := in.flush(ctx, msgs); err != nil {
			if ctx.Err() != nil {
				in.logger.Warn("shutting down with a batch not inserted; it will be read again", "messages", len(msgs), "err", err)
				return nil
			}
			return err
		}
		if time.Since(lastDrop) > time.Hour {
			lastDrop = time.Now()
			in.dropOldPartitions(ctx)
		}
	}
}

// flush converts a batch, dead-letters what is malformed or out of the
// event-time bounds, inserts the rest, and commits the offsets.
func (in *Ingester) flush(ctx context.Context, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	rows := make([]chstore.Request, 0, len(msgs))
	var dead []kafka.Message
	var deadBy map[string]int
	now := in.now()
	for _, m := range msgs {
		r, reason, err := in.row(m, now)
		if err != nil {
			if deadBy == nil {
				deadBy = make(map[string]int)
			}
			deadBy[reason]++
			dead = append(dead, service.DeadLetter(m, err))
			continue
		}
		rows = append(rows, r)
	}
	if len(dead) > 0 {
		err := service.Write(ctx, in.deadLetter, dead, func(err error, wait time.Duration) {
			in.logger.Warn("writing dead letters failed; retrying, offsets not committed", "retry_in", wait, "err", err)
		})
		if err != nil {
			return fmt.Errorf("writing %d dead letters: %w", len(dead), err)
		}
		for reason, n := range deadBy {
			in.metrics.DeadLetters.WithLabelValues(reason).Add(float64(n))
		}
	}
	if err := in.insert(ctx, rows); err != nil {
		return err
	}
	if in.sites != nil && len(rows) > 0 {
		in.sites.Saw(sitesOf(rows))
	}
	if err := in.reader.CommitMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("committing %d offsets: %w", len(msgs), err)
	}
	in.metrics.OffsetCommits.Inc()
	return nil
}

// sitesOf returns the distinct sites of rows.
func sitesOf(rows []chstore.Request) []string {
	seen := make(map[string]bool)
	var sites []string
	for i := range rows {
		if !seen[rows[i].Site] {
			seen[rows[i].Site] = true
			sites = append(sites, rows[i].Site)
		}
	}
	return sites
}

// row converts m, or returns why it is a dead letter: the reason label and
// the error.
func (in *Ingester) row(m kafka.Message, now time.Time) (chstore.Request, string, error) {
	r, err := in.conv.Row(m.Value, m.Topic, int32(m.Partition), m.Offset)
	switch {
	case errors.Is(err, features.ErrMalformed):
		return r, service.ReasonMalformed, err
	case err != nil:
		return r, service.ReasonIdentity, err
	}
	if reason, err := in.cfg.EventTime.Check(r.Time, now); err != nil {
		return r, reason, fmt.Errorf("field %q: %w", in.conv.timeKey, err)
	}
	return r, "", nil
}

// insert writes rows, retrying with backoff while ClickHouse fails, until
// ctx is done.
func (in *Ingester) insert(ctx context.Context, rows []chstore.Request) error {
	if len(rows) == 0 {
		return nil
	}
	return in.retry(ctx, "insert", func() error {
		start := time.Now()
		if err := chstore.InsertRequests(ctx, in.conn, in.table, rows); err != nil {
			return err
		}
		in.metrics.IngestBatchSeconds.Observe(time.Since(start).Seconds())
		in.metrics.IngestBatches.Inc()
		in.metrics.IngestRows.Add(float64(len(rows)))
		return nil
	})
}

// dropOldPartitions enforces the retention (chstore.DropOldPartitions),
// counted back from the newest request in the table rather than from the
// clock, so that replayed history is kept like live traffic. A failure is
// logged and retried at the next occasion.
func (in *Ingester) dropOldPartitions(ctx context.Context) {
	cutoff, dropped, err := chstore.DropOldPartitions(ctx, in.conn, in.table, in.cfg.Cluster, "time", in.cfg.Retention, in.cfg.EventTime.Newest(in.now()))
	if err != nil {
		in.metrics.ClickHouseErrors.WithLabelValues("drop_partition").Inc()
		in.logger.Warn("dropping old request partitions failed", "err", err)
		return
	}
	if !cutoff.IsZero() {
		in.metrics.RetentionCutoff.Set(float64(cutoff.Unix()))
	}
	if len(dropped) > 0 {
		in.logger.Info("dropped old request partitions", "partitions", dropped, "cutoff", cutoff)
	}
}

// retry runs f with service.Retry, counting and logging each failure as a
// ClickHouse error of operation op.
func (in *Ingester) retry(ctx context.Context, op string, f func() error) error {
	return service.Retry(ctx, f, func(err error, wait time.Duration) {
		in.metrics.ClickHouseErrors.WithLabelValues(op).Inc()
		in.logger.Warn("ClickHouse failed; retrying, offsets not committed", "op", op, "retry_in", wait, "err", err)
	})
}
