package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/backtest"
	"github.com/anomalyd/anomalyd/internal/baseline"
	"github.com/anomalyd/anomalyd/internal/detector"
	"github.com/anomalyd/anomalyd/internal/replay"
	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/featurestore"
)

// BenchmarkFlood sends a flood of new visitors through the detector's
// Processor, with a real redis-server, in batches of the detector's
// default size, flushing each batch's features as the detector does (no
// Kafka: the process holds only the detector's state and one batch).
//
//   - visitors=N: N distinct addresses, one request each, spread over
//     five minutes of event time (non-repeating addresses, as in CrowdSec
//     issue #2683). It reports the process's peak RSS over the run, Redis's
//     used_memory after it, and events per second.
//
//   - drain: the same number of events twice, first ordinary generated
//     traffic, then a flood of new visitors sending 6 requests each within
//     a few minutes, and the flood's rate as a share of the ordinary one.
//
//   - drain-detector: the same two, each through the whole detector as
//     BenchmarkDetector runs it (kfake topics in this process, a
//     consumer-group reader, score records written, offsets committed),
//     alternately: the rates the issue compares, of the detector rather
//     than of its Processor alone.
//
//   - memory: 100k visitors of 6 requests each over 3 minutes, within
//     -max-visitors, and the bytes each costs while tracked: heap in use
//     by the Processor, and Redis used_memory.
//
// ANOMALYD_FLOOD_VISITORS sets N (default 5,000,000).
func BenchmarkFlood(b *testing.B) {
	n := 5_000_000
	if v := os.Getenv("ANOMALYD_FLOOD_VISITORS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("ANOMALYD_FLOOD_VISITORS: %v", err)
		}
	}
	fc := features.Config{
		Window: features.DefaultWindow(), Identity: features.IdentityIP,
		Secret: "benchmark identity secret 012345", Fields: features.DefaultFieldMap(),
		MinRequests: features.DefaultMinRequests,
	}
	srv := testenv.Redis(b)
	cfg := traffic.DefaultConfig()
	cfg.Events, cfg.Visitors = 300_000, 30_000
	// The baselines and sites of ordinary traffic; the traffic itself is
	// made again by the drain run, so that it is not in memory during the
	// visitors run.
	models, sites := floodModels(b, fc, trafficJSONL(b, cfg, false))
	start := cfg.Start.Add(cfg.Duration)
	dc := detector.DefaultConfig()
	// The limit the detector sets from -max-visitors, as cmd/detector does.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(dc.MemoryBudget()))

	b.Run(fmt.Sprintf("visitors=%d", n), func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			rdb := floodRedis(b, srv.Addr())
			debug.FreeOSMemory() // what making the baselines took is not the detector's
			peak := watchRSS(b)
			events := func(yield func([]byte) bool) {
				for i := range n {
					at := start.Add(time.Duration(i) * 5 * time.Minute / time.Duration(n))
					if !yield(floodEvent(sites[i%len(sites)], i, at)) {
						return
					}
				}
			}
			took := process(b, fc, models, rdb, events)
			rss := peak()
			used := redisUsage(b.Context(), b, rdb).memory
			if keys, expiring := redisKeys(b, rdb); keys != expiring {
				b.Fatalf("%d keys in Redis, %d of them with an expiry: every visitor's bucket must expire", keys, expiring)
			}
			b.ReportMetric(float64(n)/took.Seconds(), "events/s")
			b.ReportMetric(float64(rss)/(1<<20), "peak-rss-MiB")
			b.ReportMetric(float64(used)/(1<<20), "redis-MiB")
			b.ReportMetric(0, "ns/op")
			rdb.Close()
		}
	})

	// Memory per tracked visitor: visitors within -max-visitors, each with
	// the state of a short visit (6 requests over 3 minutes), kept while
	// the Processor lives; heap in use and Redis used_memory, each before
	// and after, over the visitors.
	b.Run("memory", func(b *testing.B) {
		b.ReportAllocs()
		const visitors, requests = 100_000, 6
		for range b.N {
			rdb := floodRedis(b, srv.Addr())
			redis0 := redisUsage(b.Context(), b, rdb).memory
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			heap0 := ms.HeapInuse
			proc := floodProcessor(b, fc, models, rdb)
			feed(b, proc, func(yield func([]byte) bool) {
				for j := range requests {
					for i := range visitors {
						at := start.Add(time.Duration(j*visitors+i) * 3 * time.Minute / time.Duration(requests*visitors))
						if !yield(floodEvent(sites[i%len(sites)], i, at)) {
							return
						}
					}
				}
			})
			runtime.GC()
			runtime.ReadMemStats(&ms)
			heap := float64(ms.HeapInuse) - float64(heap0)
			runtime.KeepAlive(proc)
			used := redisUsage(b.Context(), b, rdb).memory - redis0
			b.ReportMetric(heap/visitors, "heap-bytes/visitor")
			b.ReportMetric(used/visitors, "redis-bytes/visitor")
			b.ReportMetric(0, "ns/op")
			rdb.Close()
		}
	})

	b.Run("drain", func(b *testing.B) {
		b.ReportAllocs()
		ordinary := trafficJSONL(b, cfg, false)
		lines := bytes.Split(bytes.TrimSpace(ordinary), []byte("\n"))
		const requests = 6 // each flood visitor's, a few minutes apart
		visitors := len(lines) / requests
		var ordinaryRate, floodRate float64
		for range b.N {
			rdb := floodRedis(b, srv.Addr())
			took := process(b, fc, models, rdb, func(yield func([]byte) bool) {
				for _, l := range lines {
					if !yield(l) {
						return
					}
				}
			})
			ordinaryRate += float64(len(lines)) / took.Seconds()
			rdb.Close()

			rdb = floodRedis(b, srv.Addr())
			took = process(b, fc, models, rdb, func(yield func([]byte) bool) {
				for j := range requests {
					for i := range visitors {
						at := start.Add(time.Duration(j*visitors+i) * 3 * time.Minute / time.Duration(requests*visitors))
						if !yield(floodEvent(sites[i%len(sites)], i, at)) {
							return
						}
					}
				}
			})
			floodRate += float64(requests*visitors) / took.Seconds()
			rdb.Close()
		}
		b.ReportMetric(ordinaryRate/float64(b.N), "ordinary-events/s")
		b.ReportMetric(floodRate/float64(b.N), "flood-events/s")
		b.ReportMetric(floodRate/ordinaryRate, "flood/ordinary")
		b.ReportMetric(0, "ns/op")
	})

	b.Run("drain-detector", func(b *testing.B) {
		b.ReportAllocs()
		// The broker's copy of every record is in this process too: the
		// detector's soft limit would make the collector chase it.
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
		kf := testenv.Kafka(b, "requests", "flood", "scores", "deadletter")
		ordinary := trafficJSONL(b, cfg, false)
		events := bytes.Count(ordinary, []byte("\n"))
		const requests = 6
		visitors := events / requests
		var flood bytes.Buffer
		for j := range requests {
			for i := range visitors {
				at := start.Add(time.Duration(j*visitors+i) * 3 * time.Minute / time.Duration(requests*visitors))
				flood.Write(floodEvent(sites[i%len(sites)], i, at))
				flood.WriteByte('\n')
			}
		}
		for topic, data := range map[string][]byte{"requests": ordinary, "flood": flood.Bytes()} {
			w := replay.NewKafkaWriter(kf.Brokers(), topic, replay.DefaultBatch)
			if _, err := replay.Send(b.Context(), replay.DefaultConfig(), bytes.NewReader(data), w); err != nil {
				b.Fatal(err)
			}
			w.Close()
		}
		ordinary = nil
		var ordinaryRate, floodRate float64
		for i := range b.N {
			for _, run := range []struct {
				topic string
				n     int
				rate  *float64
			}{{"requests", events, &ordinaryRate}, {"flood", requests * visitors, &floodRate}} {
				rdb := floodRedis(b, srv.Addr())
				t0 := time.Now()
				runDetector(b, "recency", fc, models, kf.Brokers(), run.topic, fmt.Sprintf("drain-%s-%d-%d", run.topic, i, time.Now().UnixNano()), rdb, run.n)
				*run.rate += float64(run.n) / time.Since(t0).Seconds()
				rdb.Close()
			}
		}
		b.ReportMetric(ordinaryRate/float64(b.N), "ordinary-events/s")
		b.ReportMetric(floodRate/float64(b.N), "flood-events/s")
		b.ReportMetric(floodRate/ordinaryRate, "flood/ordinary")
		b.ReportMetric(0, "ns/op")
	})
}

// floodModels fits the baselines of history's sites, and lists them.
func floodModels(b *testing.B, fc features.Config, history []byte) (backtest.Models, []string) {
	b.Helper()
	bt := backtest.DefaultConfig()
	bt.Features = fc
	models, sites, err := backtest.Baselines(b.Context(), bt, bytes.NewReader(history))
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for _, s := range sites {
		if s.Site != baseline.Pooled {
			names = append(names, s.Site)
		}
	}
	return models, names
}

func floodRedis(b *testing.B, addr string) *redis.Client {
	b.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	if err := rdb.FlushAll(b.Context()).Err(); err != nil {
		b.Fatal(err)
	}
	return rdb
}

// floodEvent is visitor i's request: an address of its own.
func floodEvent(site string, i int, at time.Time) []byte {
	return fmt.Appendf(nil, `{"EdgeStartTimestamp":%d,"ZoneName":%q,"ClientIP":"10.%d.%d.%d","ClientRequestMethod":"GET","ClientRequestPath":"/p/%d","ClientRequestUserAgent":"Mozilla/5.0","EdgeResponseStatus":200}`,
		at.UnixNano(), site, i>>16&255, i>>8&255, i&255, i%1000)
}

// process runs events through a Processor with Redis stores, a batch of
// the detector's size at a time, flushing after each as the detector
// does, and returns the time spent processing.
func process(b *testing.B, fc features.Config, models backtest.Models, rdb redis.UniversalClient, events func(func([]byte) bool)) time.Duration {
	b.Helper()
	return feed(b, floodProcessor(b, fc, models, rdb), events)
}

// floodProcessor is a detector's Processor with the defaults, on rdb.
func floodProcessor(b *testing.B, fc features.Config, models backtest.Models, rdb redis.UniversalClient) *detector.Processor {
	b.Helper()
	cfg := detector.DefaultConfig()
	cfg.EventTime.MaxAge = 0
	proc, err := detector.NewProcessor(cfg, fc, func() (detector.Store, error) {
		return featurestore.NewRedisStore(rdb, fc.Window, cfg.StoreOptions())
	}, models, detector.NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		b.Fatal(err)
	}
	return proc
}

// feed sends events through proc in batches of the detector's size,
// flushing each, and returns the time it took.
func feed(b *testing.B, proc *detector.Processor, events func(func([]byte) bool)) time.Duration {
	b.Helper()
	ctx := b.Context()
	cfg := detector.DefaultConfig()
	var took time.Duration
	batch := make([]kafka.Message, 0, cfg.BatchSize)
	run := func() {
		t0 := time.Now()
		if _, err := proc.Process(ctx, batch); err != nil {
			b.Fatal(err)
		}
		if err := proc.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		took += time.Since(t0)
		batch = batch[:0]
	}
	var offset int64
	for v := range events {
		offset++
		batch = append(batch, kafka.Message{Value: v, Offset: offset})
		if len(batch) == cap(batch) {
			run()
		}
	}
	if len(batch) > 0 {
		run()
	}
	return took
}

// watchRSS samples the process's resident memory every 50 ms until the
// returned function is called, which returns the peak.
func watchRSS(b *testing.B) func() int64 {
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if v := rss(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		return peak.Load()
	}
}

// rss is the process's resident set size in bytes, from /proc.
func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// redisKeys is how many keys Redis holds, and how many of them expire.
func redisKeys(b *testing.B, rdb *redis.Client) (keys, expiring int64) {
	b.Helper()
	info, err := rdb.Info(context.Background(), "keyspace").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "db0:"); ok {
			for _, kv := range strings.Split(v, ",") {
				k, n, _ := strings.Cut(kv, "=")
				switch k {
				case "keys":
					keys, _ = strconv.ParseInt(n, 10, 64)
				case "expires":
					expiring, _ = strconv.ParseInt(n, 10, 64)
				}
			}
		}
	}
	return keys, expiring
}
