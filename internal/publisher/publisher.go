// Package publisher holds the publisher service's parts: what cmd/publisher
// wires together between the scores topic, ClickHouse and the detections
// topic.
//
// For every batch of score records read (consumer group "publisher" by
// default) the Publisher decodes and validates each one, sending what it
// cannot use to the dead-letter topic; lets a Selector pick the detections
// under the current Policy and writes them to the detections topic, keyed
// site|visitor (a candidate model's scores only go through a Selector of
// their own, compared with the live one's: see shadows); inserts every valid score into the ClickHouse scores table;
// and only then commits the batch's offsets. Detections go out before the
// insert so that the edge does not wait for ClickHouse; while ClickHouse
// fails the insert is retried with backoff and nothing is committed, so
// nothing is lost and the stream waits. After a crash the uncommitted batch
// is read again: its rows collapse in the table (see chstore.ScoresDDL) and
// its detections may be published once more, which the edge tolerates.
package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/chstore"
	"github.com/anomalyd/anomalyd/internal/policy"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/pkg/records"
)

// dropEvery is how often old partitions are looked for.
const dropEvery = time.Hour

// MessageReader is what a Publisher needs of a Kafka consumer-group reader
// (*kafka.Reader).
type MessageReader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
}

// MessageWriter is what a Publisher needs of a Kafka writer (*kafka.Writer)
// with RequiredAcks set: WriteMessages returns once the messages are
// acknowledged.
type MessageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Publisher moves score records from Kafka into ClickHouse and detections
// to the edge; see the package doc.
type Publisher struct {
	cfg        Config
	reader     MessageReader
	detections MessageWriter
	deadLetter MessageWriter
	conn       driver.Conn
	sel        *Selector
	shadows    *shadows // the candidate models' selectors, compared with sel
	dec        *scoreDecoder
	metrics    *Metrics
	logger     *slog.Logger
	now        func() time.Time
	history    DetectionHistory // nil: start with nothing published

	policy     func() *policy.Policy // the policy in force
	reconciled string                // the version of the last policy the live detections were reconciled with

	lastDrop    time.Time
	lastEvicted uint64
}

// New returns a Publisher for a validated config, with no policy; Run
// starts it.
func New(cfg Config, reader MessageReader, detections, deadLetter MessageWriter, conn driver.Conn, metrics *Metrics, logger *slog.Logger) *Publisher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Publisher{
		cfg: cfg, reader: reader, detections: detections, deadLetter: deadLetter, conn: conn,
		sel: NewSelector(cfg.Select), shadows: newShadows(cfg.Select), dec: newScoreDecoder(), metrics: metrics, logger: logger, now: time.Now,
		policy: func() *policy.Policy { return nil },
	}
}

// kafkaFailed is service.Retry's callback for a failed Kafka operation:
// logged, and retried with nothing committed meanwhile.
func (p *Publisher) kafkaFailed(op string) func(error, time.Duration) {
	return func(err error, wait time.Duration) {
		p.logger.Warn(op+" failed; retrying, offsets not committed", "retry_in", wait, "err", err)
	}
}

// RestoreFrom makes Run start by reading back the detections published in
// the last two TTLs from h, so that a restart, or a crash that leaves a
// batch to be read again, does not publish its visitors twice. Call it
// before Run.
func (p *Publisher) RestoreFrom(h DetectionHistory) { p.history = h }

// restore reads the past detections into the Selector. A failure is
// logged and Run goes on: republishing beats not publishing.
func (p *Publisher) restore(ctx context.Context) {
	if p.history == nil {
		return
	}
	n, bad := 0, 0
	err := p.history.Since(ctx, p.now().Add(-2*p.cfg.Select.TTL), func(d *records.Detection) {
		if p.sel.Restore(d) != nil {
			bad++
			return
		}
		n++
	})
	if err != nil {
		p.logger.Warn("reading back past detections failed; visitors detected before the restart may be published again", "restored", n, "err", err)
		return
	}
	p.logger.Info("read back past detections", "restored", n, "malformed", bad)
}

// SetPolicy makes the publisher take its policy from source (a
// policy.Watcher's Policy), read once for each batch; nil: none. Call it
// before Run.
func (p *Publisher) SetPolicy(source func() *policy.Policy) {
	if source == nil {
		source = func() *policy.Policy { return nil }
	}
	p.policy = source
}

// Ready reports whether ClickHouse answers, for /readyz: without it no
// batch can be committed.
func (p *Publisher) Ready(ctx context.Context) error {
	if err := p.conn.Ping(ctx); err != nil {
		p.metrics.ClickHouseErrors.WithLabelValues(opPing).Inc()
		return fmt.Errorf("clickhouse: %w", err)
	}
	return nil
}

// Run publishes until ctx is done, then flushes and commits the batch in
// hand (within ShutdownTimeout) and returns nil. It returns an error when
// reading, writing to Kafka or committing fails; ClickHouse failures are
// retried.
func (p *Publisher) Run(ctx context.Context) error {
	err := p.retry(ctx, opCreateTable, func() error { return chstore.CreateScores(ctx, p.conn, p.cfg.Table, p.cfg.Cluster) })
	if err != nil {
		return nil // ctx is done before ClickHouse ever answered
	}
	p.restore(ctx)
	for {
		msgs, err := service.FetchBatch(ctx, p.reader, nil, p.cfg.BatchSize, p.cfg.Linger)
		if err != nil {
			return fmt.Errorf("reading scores: %w", err)
		}
		if err := p.flushInTime(ctx, msgs); err != nil {
			if ctx.Err() != nil {
				p.logger.Warn("shutting down with a batch not committed; it will be read again", "messages", len(msgs), "err", err)
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if p.now().Sub(p.lastDrop) > dropEvery {
			p.lastDrop = p.now()
			p.dropOldPartitions(ctx)
		}
	}
}

// flushInTime flushes msgs with a context that outlives ctx by
// ShutdownTimeout, so that the batch in hand when shutdown begins is still
// inserted and committed, but a dead dependency cannot hold the shutdown.
func (p *Publisher) flushInTime(ctx context.Context, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	flushCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(p.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-flushCtx.Done():
		}
	})
	defer stop()
	return p.flush(flushCtx, msgs)
}

// batch is one batch of messages on its way through flush.
type batch struct {
	msgs       []kafka.Message
	scores     []records.Score    // backing store of rows
	rows       []chstore.ScoreRow // the valid scores
	rowMsg     []int              // rows[i] came from msgs[rowMsg[i]]
	detections []kafka.Message    // revocations among them
	revokedBy  map[string]int     // revocations by reason, counted once written
	dead       []kafka.Message
	deadBy     map[string]int // dead letters by reason, counted once written
}

// flush decodes the batch, publishes its detections, inserts its scores,
// dead-letters what cannot be used and commits the offsets, in that order.
func (p *Publisher) flush(ctx context.Context, msgs []kafka.Message) error {
	p.metrics.ScoresRead.Add(float64(len(msgs)))
	b, err := p.prepare(msgs)
	if err != nil {
		return err
	}
	if len(b.detections) > 0 {
		if err := service.Write(ctx, p.detections, b.detections, p.kafkaFailed("writing detections")); err != nil {
			return fmt.Errorf("writing %d detections: %w", len(b.detections), err)
		}
		revoked := 0
		for reason, n := range b.revokedBy {
			p.metrics.Revocations.WithLabelValues(reason).Add(float64(n))
			revoked += n
		}
		p.metrics.Published.Add(float64(len(b.detections) - revoked))
	}
	if err := p.insert(ctx, b); err != nil {
		return err
	}
	if len(b.dead) > 0 {
		if err := service.Write(ctx, p.deadLetter, b.dead, p.kafkaFailed("writing dead letters")); err != nil {
			return fmt.Errorf("writing %d dead letters: %w", len(b.dead), err)
		}
		for reason, n := range b.deadBy {
			p.metrics.DeadLetters.WithLabelValues(reason).Add(float64(n))
		}
	}
	if err := p.reader.CommitMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("committing %d offsets: %w", len(msgs), err)
	}
	p.metrics.OffsetCommits.Inc()
	p.logger.Debug("batch committed", "messages", len(msgs), "rows", len(b.rows),
		"detections", len(b.detections), "dead_letters", len(b.dead))
	return nil
}

// prepare decodes and validates every message and runs the valid scores
// through the selector, in order, under the current policy.
func (p *Publisher) prepare(msgs []kafka.Message) (*batch, error) {
	b := &batch{
		msgs:   msgs,
		scores: make([]records.Score, len(msgs)),
		rows:   make([]chstore.ScoreRow, 0, len(msgs)),
		rowMsg: make([]int, 0, len(msgs)),
	}
	pol := p.policy()
	if v := pol.Version(); v != p.reconciled {
		// What the new policy withholds that is live now is lifted.
		p.sel.Reconcile(pol)
		p.shadows.reconcile(pol)
		p.reconciled = v
	}
	p.dec.reset(len(msgs))
	for i := range msgs {
		s := &b.scores[i]
		visitor, reason, err := p.decode(msgs[i].Value, s)
		if err != nil {
			b.deadLetter(msgs[i], reason, err)
			continue
		}
		if s.Allowed { // no score: the visitor's live detections end
			p.sel.Allowed(s, visitor)
			p.shadows.allowed(s, visitor)
			continue
		}
		if !s.Early { // a visit's beginning is for crowds, not a score to keep
			b.rows = append(b.rows, chstore.ScoreRow{Record: s, Visitor: visitor})
			b.rowMsg = append(b.rowMsg, i)
		}
		if s.Model != "" { // a candidate's: stored and compared, never published
			p.shadows.selectShadow(s, visitor, pol, p.sel, p.metrics)
			continue
		}
		d, outcome := p.sel.Select(s, visitor, pol)
		switch outcome {
		case Below, Early:
		case Published:
			if err := b.publish(&d, p.metrics); err != nil {
				return nil, err
			}
			p.shadows.livePublished(&d)
		default:
			p.metrics.Suppressed.WithLabelValues(outcome.String()).Inc()
		}
		for _, d := range p.sel.GroupDetections() {
			if err := b.publish(&d, p.metrics); err != nil {
				return nil, err
			}
			p.shadows.livePublished(&d)
		}
	}
	p.shadows.settle(p.metrics)
	for _, r := range p.sel.Revocations() {
		if err := b.publish(&r, p.metrics); err != nil {
			return nil, err
		}
		if b.revokedBy == nil {
			b.revokedBy = make(map[string]int)
		}
		b.revokedBy[r.Revoked]++
	}
	p.metrics.Tracked.Set(float64(p.sel.Tracked()))
	if ev := p.sel.Evicted(); ev > p.lastEvicted {
		p.metrics.Evictions.Add(float64(ev - p.lastEvicted))
		p.lastEvicted = ev
	}
	return b, nil
}

// decode fills s from a message's value and returns the parsed visitor id,
// or the dead-letter reason and the error.
func (p *Publisher) decode(value []byte, s *records.Score) (uint64, string, error) {
	if err := p.dec.decode(value, s); err != nil {
		return 0, reasonMalformed, fmt.Errorf("decoding score record: %w", err)
	}
	if err := s.Validate(); err != nil {
		return 0, reasonInvalid, err
	}
	if err := chstore.CheckScoreTimes(s); err != nil {
		return 0, reasonInvalid, fmt.Errorf("%w: %w", records.ErrInvalid, err)
	}
	if reason, err := p.cfg.EventTime.Check(s.ScoredAt, p.now()); err != nil {
		return 0, reason, fmt.Errorf("%w: field \"scored_at\": %w", records.ErrInvalid, err)
	}
	visitor, err := records.ParseVisitorID(s.Visitor)
	if err != nil { // Validate checked it; kept so a change there cannot slip through
		return 0, reasonInvalid, err
	}
	return visitor, "", nil
}

// publish queues d for the detections topic.
func (b *batch) publish(d *records.Detection, m *Metrics) error {
	js, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encoding the detection of %s|%s: %w", d.Site, d.Visitor, err)
	}
	b.detections = append(b.detections, kafka.Message{Key: records.Key(d.Site, d.Visitor), Value: js})
	if d.Group != "" {
		m.GroupDetections.Inc()
	}
	return nil
}

// deadLetter queues m for the dead-letter topic with the reason.
func (b *batch) deadLetter(m kafka.Message, reason string, err error) {
	if b.deadBy == nil {
		b.deadBy = make(map[string]int)
	}
	b.deadBy[reason]++
	b.dead = append(b.dead, service.DeadLetter(m, err))
}

// insert writes the batch's rows, retrying with backoff while ClickHouse
// fails, until ctx is done. A row the driver refuses (chstore.RowError)
// goes to the dead letters instead, as retrying it could never succeed.
func (p *Publisher) insert(ctx context.Context, b *batch) error {
	return p.retry(ctx, opInsert, func() error {
		for len(b.rows) > 0 {
			start := time.Now()
			err := chstore.InsertScores(ctx, p.conn, p.cfg.Table, b.rows)
			var rowErr *chstore.RowError
			if errors.As(err, &rowErr) && rowErr.Index < len(b.rows) {
				i := rowErr.Index
				b.deadLetter(b.msgs[b.rowMsg[i]], reasonInvalid, fmt.Errorf("%w: %w", records.ErrInvalid, err))
				b.rows, b.rowMsg = slices.Delete(b.rows, i, i+1), slices.Delete(b.rowMsg, i, i+1)
				continue
			}
			if err != nil {
				return err
			}
			p.metrics.InsertSeconds.Observe(time.Since(start).Seconds())
			p.metrics.InsertBatches.Inc()
			p.metrics.RowsInserted.Add(float64(len(b.rows)))
			return nil
		}
		return nil
	})
}

// dropOldPartitions enforces the retention (chstore.DropOldPartitions),
// counted back from the newest score rather than the clock, so that
// replayed history is kept like live traffic. A failure is logged and
// retried at the next occasion.
func (p *Publisher) dropOldPartitions(ctx context.Context) {
	cutoff, dropped, err := chstore.DropOldPartitions(ctx, p.conn, p.cfg.Table, p.cfg.Cluster, "scored_at", p.cfg.Retention, p.cfg.EventTime.Newest(p.now()))
	if !cutoff.IsZero() {
		p.metrics.RetentionCutoff.Set(float64(cutoff.Unix()))
	}
	if err != nil {
		if ctx.Err() == nil {
			p.metrics.ClickHouseErrors.WithLabelValues(opDropPartition).Inc()
			p.logger.Warn("dropping old score partitions failed", "err", err)
		}
		return
	}
	if len(dropped) > 0 {
		p.logger.Info("dropped old score partitions", "partitions", dropped)
	}
}

// retry runs f with service.Retry, counting and logging each failure as a
// ClickHouse error of operation op.
func (p *Publisher) retry(ctx context.Context, op string, f func() error) error {
	return service.Retry(ctx, f, func(err error, wait time.Duration) {
		p.metrics.ClickHouseErrors.WithLabelValues(op).Inc()
		p.logger.Warn("ClickHouse failed; retrying, offsets not committed", "op", op, "retry_in", wait, "err", err)
	})
}
