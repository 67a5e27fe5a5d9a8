package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// MessageFetcher is what FetchBatch needs of a Kafka reader (*kafka.Reader).
type MessageFetcher interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
}

// FetchBatch reads from r until it holds size messages, linger has passed
// since the first one, ctx is done, or r fails; then it returns what it
// has, and r's error only when it has nothing (the caller then stops: a
// new reader resumes from the committed offsets). Every service reads this
// way: a batch is what it commits at once, and the linger bounds how long
// a quiet topic delays the first message's effects. The messages are
// appended to buf[:0], a batch's slice that the caller has done with, or
// nil.
func FetchBatch(ctx context.Context, r MessageFetcher, buf []kafka.Message, size int, linger time.Duration) ([]kafka.Message, error) {
	msgs := buf[:0]
	fetchCtx := ctx
	for len(msgs) < size {
		m, err := r.FetchMessage(fetchCtx)
		if err != nil {
			if fetchCtx.Err() != nil || len(msgs) > 0 {
				// Shutdown, or the linger is over; or the reader failed
				// after messages it has moved past: they must be processed,
				// or the next commit would skip them.
				return msgs, nil
			}
			return nil, err
		}
		if len(msgs) == 0 {
			var cancel context.CancelFunc
			fetchCtx, cancel = context.WithTimeout(ctx, linger)
			defer cancel()
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// MessageWriter is what Write needs of a Kafka writer (*kafka.Writer).
type MessageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Write writes msgs with w, retried with Retry's backoff while the brokers
// fail (each failure passed to failed, to count and log), until ctx is
// done. A write refused for its size is not retried (TooLarge): the
// writers split their requests to fit -kafka-max-message-bytes, so the
// flag is above what the brokers accept, and retrying would hold the
// partitions up for ever.
func Write(ctx context.Context, w MessageWriter, msgs []kafka.Message, failed func(err error, wait time.Duration)) error {
	return Retry(ctx, func() error {
		err := condense(w.WriteMessages(ctx, msgs...))
		if TooLarge(err) {
			return Permanent(fmt.Errorf("%w: is -kafka-max-message-bytes above the brokers' message.max.bytes?", err))
		}
		return err
	}, failed)
}

// writeErrors is kafka.WriteErrors told briefly: kafka-go's own message
// repeats every message's error, a megabyte of log for a batch refused
// whole.
type writeErrors struct{ each kafka.WriteErrors }

func (w writeErrors) Error() string {
	var first error
	for _, e := range w.each {
		if e != nil {
			first = e
			break
		}
	}
	return fmt.Sprintf("%d of %d messages not written, the first because: %v", w.each.Count(), len(w.each), first)
}

func (w writeErrors) Unwrap() error { return w.each }

// condense makes an error holding kafka.WriteErrors an error of one line (what
// wraps them is dropped: kafka-go returns them bare).
func condense(err error) error {
	var each kafka.WriteErrors
	if !errors.As(err, &each) {
		return err
	}
	return writeErrors{each}
}

// Retry backoff: the first wait, doubled after every failure up to the
// last.
const (
	RetryFirstWait = 100 * time.Millisecond
	RetryMaxWait   = 10 * time.Second
)

// permanent marks an error that Retry must not retry.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Retry returns it at once instead of retrying.
func Permanent(err error) error { return permanent{err} }

// Retry runs f until it succeeds, waiting RetryFirstWait, then twice as
// long after each failure up to RetryMaxWait. After each failure it calls
// failed (to count and log it) with the wait ahead. It returns f's last
// error when ctx is done, or at once an error marked Permanent (unwrapped).
func Retry(ctx context.Context, f func() error, failed func(err error, wait time.Duration)) error {
	wait := RetryFirstWait
	for {
		err := f()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.err
		}
		failed(err, wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, RetryMaxWait)
	}
}

// TooLarge reports whether err is a write refused for its size, by
// kafka-go (a message over the writer's BatchBytes) or by a broker (a
// record batch over its message.max.bytes): retrying it cannot succeed.
func TooLarge(err error) bool {
	var tooLarge kafka.MessageTooLargeError
	if errors.As(err, &tooLarge) || errors.Is(err, kafka.MessageSizeTooLarge) {
		return true
	}
	var each kafka.WriteErrors // kafka-go's per-message errors do not unwrap
	if errors.As(err, &each) {
		for _, e := range each {
			if e != nil && TooLarge(e) {
				return true
			}
		}
	}
	return false
}
