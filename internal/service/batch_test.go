package service

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// sliceFetcher serves n messages, then waits for its context.
type sliceFetcher struct{ n int }

func (f *sliceFetcher) FetchMessage(ctx context.Context) (kafka.Message, error) {
	if f.n > 0 {
		f.n--
		return kafka.Message{Offset: int64(f.n)}, nil
	}
	<-ctx.Done()
	return kafka.Message{}, ctx.Err()
}

type failingFetcher struct{}

func (failingFetcher) FetchMessage(context.Context) (kafka.Message, error) {
	return kafka.Message{}, errors.New("broken")
}

func TestFetchBatch(t *testing.T) {
	tests := []struct {
		name      string
		available int
		size      int
		want      int
	}{
		{"full", 10, 4, 4},
		{"lingers out", 3, 10, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := FetchBatch(t.Context(), &sliceFetcher{n: tc.available}, nil, tc.size, 20*time.Millisecond)
			if err != nil || len(msgs) != tc.want {
				t.Errorf("%d messages, %v; want %d", len(msgs), err, tc.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if msgs, err := FetchBatch(ctx, &sliceFetcher{}, nil, 5, time.Hour); err != nil || len(msgs) != 0 {
		t.Errorf("cancelled: %d messages, %v; want none and no error", len(msgs), err)
	}
	if _, err := FetchBatch(t.Context(), failingFetcher{}, nil, 5, time.Hour); err == nil {
		t.Error("a failing reader gave no error")
	}
	// A reader that fails after serving messages has moved past them: they
	// are the batch, or the next commit would skip them.
	if msgs, err := FetchBatch(t.Context(), &flakyFetcher{serve: 3, fail: 1}, nil, 10, time.Hour); err != nil || len(msgs) != 3 {
		t.Errorf("a reader failing after 3 messages: %d messages, %v; want the 3 and no error", len(msgs), err)
	}
	// A batch's slice, done with, is filled again from its start.
	buf := make([]kafka.Message, 2, 8)
	msgs, err := FetchBatch(t.Context(), &sliceFetcher{n: 5}, buf, 5, time.Hour)
	if err != nil || len(msgs) != 5 || &msgs[0] != &buf[:1][0] {
		t.Errorf("with a slice of capacity 8: %d messages, %v, reused %v", len(msgs), err, len(msgs) > 0 && &msgs[0] == &buf[:1][0])
	}
}

// flakyFetcher serves serve messages, then fails fail times, then serves
// for ever.
type flakyFetcher struct{ serve, fail, served int }

func (f *flakyFetcher) FetchMessage(context.Context) (kafka.Message, error) {
	if f.serve == 0 && f.fail > 0 {
		f.fail--
		return kafka.Message{}, errors.New("connection reset")
	}
	f.serve = max(f.serve-1, 0)
	f.served++
	return kafka.Message{Offset: int64(f.served)}, nil
}

func TestRetry(t *testing.T) {
	var waits []time.Duration
	calls := 0
	err := Retry(t.Context(), func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}, func(_ error, wait time.Duration) { waits = append(waits, wait) })
	if err != nil || calls != 3 || len(waits) != 2 || waits[0] != RetryFirstWait || waits[1] != 2*RetryFirstWait {
		t.Errorf("err %v after %d calls, waits %v", err, calls, waits)
	}

	stop := errors.New("stop")
	calls = 0
	if err := Retry(t.Context(), func() error { calls++; return Permanent(stop) }, func(error, time.Duration) {}); err != stop || calls != 1 {
		t.Errorf("permanent: err %v after %d calls", err, calls)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := Retry(ctx, func() error { return errors.New("down") }, func(error, time.Duration) {}); err == nil || err.Error() != "down" {
		t.Errorf("ctx done: err %v, want the last error", err)
	}
}

// writerFunc is a function as a MessageWriter.
type writerFunc func(msgs ...kafka.Message) error

func (f writerFunc) WriteMessages(_ context.Context, msgs ...kafka.Message) error { return f(msgs...) }

// TestWriteRefusedForSize: a batch the broker refuses for its size is not
// retried, and its error is one line, whatever the batch's length, that
// still says what was wrong.
func TestWriteRefusedForSize(t *testing.T) {
	calls := 0
	refuse := writerFunc(func(msgs ...kafka.Message) error {
		calls++
		errs := make(kafka.WriteErrors, len(msgs))
		for i := range errs {
			errs[i] = kafka.MessageSizeTooLarge
		}
		return errs
	})
	err := Write(t.Context(), refuse, make([]kafka.Message, 5000), func(error, time.Duration) {})
	if err == nil || calls != 1 {
		t.Fatalf("err %v after %d calls, want one refused call", err, calls)
	}
	if !TooLarge(err) {
		t.Errorf("TooLarge(%q) is false", err)
	}
	var each kafka.WriteErrors
	if !errors.As(err, &each) || len(each) != 5000 {
		t.Errorf("the per-message errors are not reachable with errors.As: %v", err)
	}
	if len(err.Error()) > 400 || !strings.Contains(err.Error(), "5000 of 5000 messages not written") {
		t.Errorf("error of %d bytes: %.300s", len(err.Error()), err)
	}
}
