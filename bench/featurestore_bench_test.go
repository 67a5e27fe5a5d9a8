package bench

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// featureDesign is one way of keeping visitors' window features in Redis.
type featureDesign struct {
	name string
	// run processes the events of one partition, in order, and returns how
	// many window reads (scores) it made. It owns its client-side state, as
	// one detector replica owns the visitors of its Kafka partitions.
	run func(ctx context.Context, p featurePartition) (scores int, err error)
}

// featurePartition is what a design's run works on.
type featurePartition struct {
	rdb    *redis.Client
	w      features.Window
	events []traffic.Request
	// onScore, if not nil, sees every window read: the index in events of
	// the request that caused it, and the aggregate read. Tests use it to
	// check that the designs compute the same features.
	onScore func(i int, agg features.Aggregate)
}

// eventSet is a set of events split into partitions by visitor, the way
// the requests topic is (key site|visitor), so that each worker owns its
// visitors and sees their events in order.
type eventSet struct {
	parts    [][]traffic.Request
	events   int
	visitors int // distinct (site, client IP) pairs
}

// featureTrace is the synthetic traffic of BenchmarkFeatureStore: all of it,
// and the events of a sample of its visitors.
type featureTrace struct {
	full, sample eventSet
}

// Sizing of BenchmarkFeatureStore. The trace is 600k requests of a
// 100k-visitor population (about 60k of whom send any) over 20 sites and 20
// minutes of event time, so windows of 10 one-minute buckets slide through
// it twice over.
//
// The naive design scores every event with four PFMERGEs and is more than
// ten times slower than anomalyd (a few thousand events/s here), so it
// cannot process the whole trace in a reasonable time. It processes every
// event of a sample of the visitors instead (1 in featureSampleEvery,
// systematic by activity rank, so heavy and light visitors are represented
// in proportion): the same requests over the same 20 minutes, each sampled
// visitor's history whole, which is what drives sketch sizes and merge
// costs. anomalyd processes the same sample, and the ratios compare those
// two runs, on identical events and visitors. anomalyd also processes the
// whole trace, for its figures at scale.
//
// The trace starts at the current minute, not in the past: neither design's
// keys may expire during the run (the naive TTLs count from the write, and a
// store that expires keys by event time sees buckets still to come), so both
// hold all the buckets they wrote and the memory comparison is like for like.
const (
	featureSites       = 20
	featureVisitors    = 100_000
	featureEvents      = 600_000
	featureDuration    = 20 * time.Minute
	featureSampleEvery = 12
	// featureWorkers is the number of partitions, each processed by its own
	// goroutine, for both designs. It gives the per-event naive design the
	// concurrency a production v1 deployment had, so it is bound by Redis,
	// not by round-trip latency.
	featureWorkers = 8
)

func newFeatureTrace(tb testing.TB) *featureTrace {
	tb.Helper()
	cfg := traffic.DefaultConfig()
	cfg.Sites = featureSites
	cfg.Visitors = featureVisitors
	cfg.Events = featureEvents
	cfg.Duration = featureDuration
	cfg.Start = time.Now().UTC().Truncate(time.Minute)
	reqs, err := traffic.Generate(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	visitorOf := func(r *traffic.Request) string { return r.Site + "|" + r.ClientIP }

	// The sample: every featureSampleEvery-th visitor by activity rank,
	// starting in the middle of the first stride so that the single heaviest
	// visitor does not tip it.
	activity := make(map[string]int)
	for i := range reqs {
		activity[visitorOf(&reqs[i])]++
	}
	ranked := slices.Collect(maps.Keys(activity))
	slices.SortFunc(ranked, func(a, b string) int {
		return cmp.Or(cmp.Compare(activity[b], activity[a]), strings.Compare(a, b))
	})
	sampled := make(map[string]bool)
	for i, v := range ranked {
		sampled[v] = i%featureSampleEvery == featureSampleEvery/2
	}

	tr := &featureTrace{
		full:   eventSet{parts: make([][]traffic.Request, featureWorkers), visitors: len(ranked)},
		sample: eventSet{parts: make([][]traffic.Request, featureWorkers)},
	}
	for _, v := range ranked {
		if sampled[v] {
			tr.sample.visitors++
		}
	}
	for _, r := range reqs {
		v := visitorOf(&r)
		p := features.HashValue(v) % featureWorkers // a fixed hash: the same partitions every run
		tr.full.parts[p] = append(tr.full.parts[p], r)
		tr.full.events++
		if sampled[v] {
			tr.sample.parts[p] = append(tr.sample.parts[p], r)
			tr.sample.events++
		}
	}
	return tr
}

// featureResult is what one design measured, per event or per visitor.
type featureResult struct {
	eventsPerSec    float64
	bytesPerVisitor float64
	cpuUsPerEvent   float64
	scoresPerEvent  float64
	cmdsPerEvent    float64
}

// BenchmarkFeatureStore runs the naive v1 design and anomalyd's store on the
// same synthetic traffic against real redis-servers, a fresh one per row,
// and logs anomalyd's figures as ratios of the naive ones. One iteration is
// one pass over the row's events on an empty Redis; with the default
// -benchtime every row runs one pass, and the whole benchmark takes under a
// minute on the 2-core development machine.
func BenchmarkFeatureStore(b *testing.B) {
	tr := newFeatureTrace(b)
	naive := featureDesign{name: "naive", run: runNaive}
	anomalyd := featureDesign{name: "anomalyd", run: runAnomalyd}
	pfcount := featureDesign{name: "pfcount", run: runPfcount}
	const sampleNaive, samplePfcount = "trace=sample/design=naive", "trace=sample/design=pfcount"
	rows := []struct {
		trace   string
		set     *eventSet
		design  featureDesign
		compare []string // the rows whose figures this one's are divided by
	}{
		{"sample", &tr.sample, naive, nil},
		{"sample", &tr.sample, pfcount, []string{sampleNaive}},
		{"sample", &tr.sample, anomalyd, []string{sampleNaive, samplePfcount}},
		{"full", &tr.full, pfcount, nil},
		{"full", &tr.full, anomalyd, []string{"trace=full/design=pfcount"}},
	}
	results := make(map[string]featureResult)
	for _, row := range rows {
		name := "trace=" + row.trace + "/design=" + row.design.name
		b.Run(name, func(b *testing.B) {
			srv := testenv.Redis(b) // a fresh server, so no figures mix
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 2 * featureWorkers, ContextTimeoutEnabled: true})
			b.Cleanup(func() { rdb.Close() })
			// Logged here, not by the parent: a parent benchmark's log
			// shows only under -test.v.
			b.Logf("%d events of %d visitors over %v of event time, %d sites, %d partitions",
				row.set.events, row.set.visitors, featureDuration, featureSites, featureWorkers)
			res := benchFeatureDesign(b, row.design, rdb, row.set)
			results[name] = res
			for _, compare := range row.compare {
				base, ok := results[compare]
				if !ok {
					continue
				}
				targets := [3]string{}
				if compare == sampleNaive {
					targets = [3]string{" (target >= 10x)", " (target <= 0.5x)", " (target <= 0.2x)"}
				}
				b.Logf("%s / %s: events/s %.1fx%s, redis-bytes/visitor %.2fx%s, redis-cpu-us/event %.3fx%s, redis-cmds/event %.3fx",
					row.design.name, compare,
					res.eventsPerSec/base.eventsPerSec, targets[0],
					res.bytesPerVisitor/base.bytesPerVisitor, targets[1],
					res.cpuUsPerEvent/base.cpuUsPerEvent, targets[2],
					res.cmdsPerEvent/base.cmdsPerEvent)
			}
		})
	}
}

// benchFeatureDesign runs b.N passes of the trace through d, each on an
// empty Redis, and reports the figures of all passes together.
func benchFeatureDesign(b *testing.B, d featureDesign, rdb *redis.Client, set *eventSet) featureResult {
	b.ReportAllocs()
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	w := features.DefaultWindow()
	var elapsed time.Duration
	var bytes, cpu, cmds float64
	var scores int
	var mem0, mem1 runtime.MemStats
	var allocs, allocBytes uint64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		before := redisUsage(ctx, b, rdb)
		runtime.ReadMemStats(&mem0)
		b.StartTimer()

		start := time.Now()
		n, err := runPartitions(ctx, d, rdb, w, set)
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}

		b.StopTimer()
		runtime.ReadMemStats(&mem1)
		allocs += mem1.Mallocs - mem0.Mallocs
		allocBytes += mem1.TotalAlloc - mem0.TotalAlloc
		after := redisUsage(ctx, b, rdb)
		bytes += after.memory - before.memory
		cpu += after.cpu - before.cpu
		cmds += after.commands - before.commands - 1 // INFO itself
		scores += n
		b.StartTimer()
	}
	events := float64(b.N * set.events)
	res := featureResult{
		eventsPerSec:    events / elapsed.Seconds(),
		bytesPerVisitor: bytes / float64(b.N*set.visitors),
		cpuUsPerEvent:   cpu * 1e6 / events,
		scoresPerEvent:  float64(scores) / events,
		cmdsPerEvent:    cmds / events,
	}
	b.ReportMetric(res.eventsPerSec, "events/s")
	b.ReportMetric(res.bytesPerVisitor, "redis-bytes/visitor")
	b.ReportMetric(res.cpuUsPerEvent, "redis-cpu-us/event")
	b.ReportMetric(res.scoresPerEvent, "scores/event")
	b.ReportMetric(res.cmdsPerEvent, "redis-cmds/event")
	// B/op and allocs/op are per pass; these are the client's costs per event.
	b.ReportMetric(float64(allocBytes)/events, "B/event")
	b.ReportMetric(float64(allocs)/events, "allocs/event")
	return res
}

// runPartitions runs d on every partition concurrently.
func runPartitions(ctx context.Context, d featureDesign, rdb *redis.Client, w features.Window, set *eventSet) (int, error) {
	var wg sync.WaitGroup
	scores := make([]int, len(set.parts))
	errs := make([]error, len(set.parts))
	for i, part := range set.parts {
		wg.Go(func() { scores[i], errs[i] = d.run(ctx, featurePartition{rdb: rdb, w: w, events: part}) })
	}
	wg.Wait()
	total := 0
	for i, err := range errs {
		if err != nil {
			return 0, fmt.Errorf("partition %d: %w", i, err)
		}
		total += scores[i]
	}
	return total, nil
}

// runNaive is the naive design's event loop: every event is written and
// scored on its own.
func runNaive(ctx context.Context, p featurePartition) (int, error) {
	s := newNaiveStore(p.rdb, p.w)
	for i := range p.events {
		agg, err := s.Process(ctx, &p.events[i])
		if err != nil {
			return 0, err
		}
		if p.onScore != nil {
			p.onScore(i, agg)
		}
	}
	return len(p.events), nil
}

// redisFigures are a server's memory and CPU use at one moment.
type redisFigures struct {
	memory   float64 // INFO memory used_memory, bytes
	cpu      float64 // INFO cpu used_cpu_user + used_cpu_sys, seconds
	commands float64 // INFO stats total_commands_processed
}

func redisUsage(ctx context.Context, tb testing.TB, rdb *redis.Client) redisFigures {
	tb.Helper()
	info, err := rdb.Info(ctx, "memory", "cpu", "stats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var f redisFigures
	var found int
	for line := range strings.SplitSeq(info, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "used_memory":
			dst = &f.memory
		case "used_cpu_user", "used_cpu_sys":
			dst = &f.cpu
		case "total_commands_processed":
			dst = &f.commands
		default:
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			tb.Fatalf("INFO %s: %v", name, err)
		}
		*dst += v
		found++
	}
	if found != 4 {
		tb.Fatalf("INFO memory cpu stats: found %d of used_memory, used_cpu_user, used_cpu_sys, total_commands_processed", found)
	}
	return f
}
