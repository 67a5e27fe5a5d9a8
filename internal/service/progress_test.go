package service

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// countReader serves messages of partition 0 for ever, in offset order,
// and accepts every commit.
type countReader struct{ next int64 }

func (r *countReader) FetchMessage(context.Context) (kafka.Message, error) {
	r.next++
	return kafka.Message{Partition: 0, Offset: r.next - 1}, nil
}

func (*countReader) CommitMessages(context.Context, ...kafka.Message) error { return nil }

func TestProgress(t *testing.T) {
	const stall = time.Minute
	type step struct {
		advance time.Duration
		fetch   int // messages fetched
		lose    int // the next messages to commit whose commit failed
		commit  int // the next messages committed, in one commit
	}
	tests := []struct {
		name      string
		stall     time.Duration
		steps     []step
		wantStall bool
	}{
		{"nothing read for hours: caught up", stall, []step{{advance: 5 * time.Hour}}, false},
		{"all committed, then idle", stall, []step{{fetch: 10}, {advance: time.Second, commit: 10}, {advance: time.Hour}}, false},
		{"held within the timeout", stall, []step{{fetch: 10}, {advance: 59 * time.Second}}, false},
		{"held past the timeout", stall, []step{{fetch: 10}, {advance: 61 * time.Second}}, true},
		{"held past the timeout, never committed", stall, []step{{advance: time.Hour}, {fetch: 1}, {advance: 2 * time.Minute}}, true},
		{"commits keep coming while fetching ahead", stall, []step{
			{fetch: 20}, {advance: 40 * time.Second, commit: 10}, {fetch: 10}, {advance: 40 * time.Second, commit: 10}, {advance: 40 * time.Second},
		}, false},
		{"fetched ahead, then the commits stop", stall, []step{
			{fetch: 20}, {advance: 40 * time.Second, commit: 10}, {advance: 61 * time.Second},
		}, true},
		{"disabled", 0, []step{{fetch: 10}, {advance: time.Hour}}, false},
		{"a failed commit made good by the next, then idle", stall, []step{
			{fetch: 20}, {advance: time.Second, lose: 10}, {commit: 10}, {advance: time.Hour},
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProgress(tt.stall)
			now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
			p.now = func() time.Time { return now }
			r := p.Watch(&countReader{})
			var fetched []kafka.Message // not yet committed
			for _, s := range tt.steps {
				now = now.Add(s.advance)
				for range s.fetch {
					m, err := r.FetchMessage(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					fetched = append(fetched, m)
				}
				fetched = fetched[s.lose:]
				if s.commit > 0 {
					if err := r.CommitMessages(t.Context(), fetched[:s.commit]...); err != nil {
						t.Fatal(err)
					}
					fetched = fetched[s.commit:]
				}
			}
			err := p.Live(t.Context())
			if (err != nil) != tt.wantStall {
				t.Fatalf("Live: %v, want stalled %v", err, tt.wantStall)
			}
			if err != nil && !strings.Contains(err.Error(), "-stall-timeout") {
				t.Errorf("Live: %v, want the flag named", err)
			}
		})
	}
}

// TestServerHealthzFollowsLiveness: /healthz answers 503 with the reason
// while the service is stalled, and is open without a token either way.
func TestServerHealthzFollowsLiveness(t *testing.T) {
	var stalled atomic.Bool
	ts := startServer(t, HTTPConfig{Token: testToken}, nil, apiHandler())
	ts.srv.SetLive(func(context.Context) error {
		if stalled.Load() {
			return errors.New("stalled: 5 messages fetched and not committed")
		}
		return nil
	})
	if code, body, _ := ts.get(t, "/healthz", ""); code != 200 {
		t.Errorf("healthy: %d %q", code, body)
	}
	stalled.Store(true)
	if code, body, _ := ts.get(t, "/healthz", ""); code != 503 || !strings.Contains(body, "stalled") {
		t.Errorf("stalled: %d %q, want 503 with the reason", code, body)
	}
}

// BenchmarkProgressFetch is what the liveness wrapper adds to every
// message a service reads: a lock and two map lookups.
func BenchmarkProgressFetch(b *testing.B) {
	r := NewProgress(time.Minute).Watch(&countReader{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.FetchMessage(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
