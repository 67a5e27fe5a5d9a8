package bench

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/backtest"
	"github.com/anomalyd/anomalyd/internal/detector"
	"github.com/anomalyd/anomalyd/internal/replay"
	"github.com/anomalyd/anomalyd/internal/service"
	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
)

// BenchmarkDetector measures the detector end to end on this machine:
// request events already on a kfake topic (4 partitions, in this process),
// read by a kafka-go consumer-group reader, decoded, added to a real
// redis-server's windows, scored against per-site baselines and written as
// score records back to kfake, with offsets committed per batch, as
// cmd/detector wires it. Modes:
//
//   - recency: the recency register at its default interval (30 s);
//   - no-recency: every request scored (-rescore-interval 0);
//   - decode-hash: the same reader and batches, but only decoding and
//     the visitor hash: the rate the issue compares against.
//
// cpu-us/event is this process's CPU time per event. It includes the kfake
// broker, which serves the fetches and takes the produces in the same
// process, so it overstates the detector's own cost; Redis runs in its own
// process and is not counted.
func BenchmarkDetector(b *testing.B) {
	fc := features.Config{
		Window: features.DefaultWindow(), Identity: features.IdentityIP,
		Secret: "benchmark identity secret 012345", Fields: features.DefaultFieldMap(),
		MinRequests: features.DefaultMinRequests,
	}
	ctx := b.Context()
	kf := testenv.Kafka(b, "requests", "scores", "deadletter")
	srv := testenv.Redis(b)
	models, events := loadRequests(b, fc, kf.Brokers())
	for _, mode := range []string{"recency", "no-recency", "decode-hash"} {
		b.Run("mode="+mode, func(b *testing.B) {
			b.ReportAllocs()
			var cpu time.Duration
			var elapsed time.Duration
			for i := range b.N {
				rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
				if err := rdb.FlushAll(ctx).Err(); err != nil {
					b.Fatal(err)
				}
				group := fmt.Sprintf("bench-%s-%d-%d", mode, i, time.Now().UnixNano())
				start, cpu0 := time.Now(), processCPU()
				runDetector(b, mode, fc, models, kf.Brokers(), "requests", group, rdb, events)
				elapsed += time.Since(start)
				cpu += processCPU() - cpu0
				rdb.Close()
			}
			n := float64(events * b.N)
			b.ReportMetric(n/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-us/event")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// loadRequests generates the benchmark's traffic, fits the sites'
// baselines on it and sends it to the requests topic. The requests are
// dropped when it returns: held through the runs, they were a large heap of
// pointers that every garbage collection marked, a cost the detector in its
// own process does not have.
func loadRequests(b *testing.B, fc features.Config, brokers []string) (backtest.Models, int) {
	b.Helper()
	cfg := traffic.DefaultConfig()
	cfg.Events, cfg.Visitors = 300_000, 30_000
	cfg.Bots = map[traffic.Scenario]int{traffic.Scraper: 5, traffic.CredentialStuffing: 5, traffic.UARotation: 5, traffic.LowAndSlow: 5}
	var jsonl bytes.Buffer
	events, err := replay.Generate(b.Context(), replay.GenerateConfig{Traffic: cfg}, &jsonl)
	if err != nil {
		b.Fatal(err)
	}
	bt := backtest.DefaultConfig()
	bt.Features = fc
	models, _, err := backtest.Baselines(b.Context(), bt, bytes.NewReader(jsonl.Bytes()))
	if err != nil {
		b.Fatal(err)
	}
	w := replay.NewKafkaWriter(brokers, "requests", replay.DefaultBatch)
	defer w.Close()
	if _, err := replay.Send(b.Context(), replay.DefaultConfig(), &jsonl, w); err != nil {
		b.Fatal(err)
	}
	return models, int(events)
}

// runDetector consumes the whole of topic, which holds events request
// events, in group and returns once every event's offset is committed.
func runDetector(b *testing.B, mode string, fc features.Config, models backtest.Models, brokers []string, topic, group string, rdb redis.UniversalClient, events int) {
	b.Helper()
	cfg := detector.DefaultConfig()
	cfg.EventTime.MaxAge = 0 // generated traffic from January, replayed on purpose
	if mode == "no-recency" {
		cfg.RescoreInterval = 0
	}
	reader := &countingReader{Reader: kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, Topic: topic, GroupID: group,
		MinBytes: 1, MaxBytes: 1 << 20, QueueCapacity: cfg.BatchSize, MaxWait: 500 * time.Millisecond, // as cmd/detector
		StartOffset: kafka.FirstOffset,
	})}
	defer reader.Close()
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	done := make(chan error, 1)
	if mode == "decode-hash" {
		go func() { done <- decodeAndHash(ctx, cfg, fc, reader) }()
	} else {
		transport := &kafka.Transport{}
		defer transport.CloseIdleConnections()
		// The writers of cmd/detector (service.KafkaConfig.Writer).
		kc := service.KafkaConfig{Brokers: brokers, MaxMessageBytes: service.DefaultMaxMessageBytes}
		writer := func(topic string) *kafka.Writer { return kc.Writer(topic, transport) }
		scores, dead := writer("scores"), writer("deadletter")
		cfg.TuneScoresWriter(scores)
		defer scores.Close()
		defer dead.Close()
		metrics := detector.NewMetrics(prometheus.NewRegistry())
		proc, err := detector.NewProcessor(cfg, fc, func() (detector.Store, error) {
			return featurestore.NewRedisStore(rdb, fc.Window, featurestore.RedisOptions{})
		}, models, metrics)
		if err != nil {
			b.Fatal(err)
		}
		d := detector.New(cfg, proc, reader, scores, dead, metrics, slog.New(slog.DiscardHandler))
		go func() { done <- d.Run(ctx) }()
	}
	deadline := time.After(5 * time.Minute)
	for reader.committed.Load() < int64(events) {
		select {
		case err := <-done:
			b.Fatalf("stopped after %d of %d events: %v", reader.committed.Load(), events, err)
		case <-deadline:
			b.Fatalf("only %d of %d events in 5 minutes", reader.committed.Load(), events)
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// decodeAndHash is the floor the detector is compared with: the same
// reader and batches, decoding and the visitor hash, then the commit.
func decodeAndHash(ctx context.Context, cfg detector.Config, fc features.Config, r detector.MessageReader) error {
	dec, err := features.NewDecoder(fc.Fields)
	if err != nil {
		return err
	}
	id, err := features.NewIdentity(fc.Identity, []byte(fc.Secret))
	if err != nil {
		return err
	}
	ob := features.NewObserver(fc.Window, id, features.DefaultClassifier())
	var ev features.Event
	var o features.Observation
	batch := make([]kafka.Message, 0, cfg.BatchSize)
	for ctx.Err() == nil {
		// A batch ends when full or BatchLinger after its first message,
		// as the detector's do.
		fetchCtx, cancel := ctx, context.CancelFunc(func() {})
		for len(batch) < cfg.BatchSize {
			m, err := r.FetchMessage(fetchCtx)
			if err != nil {
				break
			}
			if len(batch) == 0 {
				fetchCtx, cancel = context.WithTimeout(ctx, cfg.BatchLinger)
			}
			if dec.Decode(m.Value, &ev) == nil {
				_ = ob.Observe(&ev, &o)
			}
			batch = append(batch, m)
		}
		cancel()
		if len(batch) > 0 {
			if err := r.CommitMessages(ctx, batch...); err != nil && ctx.Err() == nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// countingReader counts committed messages.
type countingReader struct {
	*kafka.Reader
	committed atomic.Int64
}

func (r *countingReader) CommitMessages(ctx context.Context, msgs ...kafka.Message) error {
	if err := r.Reader.CommitMessages(ctx, msgs...); err != nil {
		return err
	}
	r.committed.Add(int64(len(msgs)))
	return nil
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
