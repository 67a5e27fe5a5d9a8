package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/internal/traffic"
	"github.com/anomalyd/anomalyd/pkg/features"
)

// naiveStore is the baseline that BenchmarkFeatureStore compares anomalyd
// with: the design of the reference system's first launch (Cloudflare's v1
// anomaly detection), written as that system would have been, not as a
// straw man.
//
//   - Human-readable keys, ad:{site:ip}:feature:bucket (the hash tag keeps a
//     visitor's keys in one Redis Cluster slot), with the raw client IP in
//     the key.
//   - One Redis HyperLogLog per sketch feature per bucket, PFADD per event;
//     the counters are plain INCR keys per bucket.
//   - Every key's TTL is refreshed with EXPIRE (window + grace) whenever it is
//     written, so idle visitors' state disappears.
//   - Every event is scored: for each sketch, PFMERGE the window's buckets
//     into a temporary key and PFCOUNT it (then DEL it, so that temporaries
//     do not count against the design's memory), and MGET the counters of the
//     window's buckets.
//   - All of an event's commands go in one pipeline: one round trip per
//     event, the best a per-event design can do.
//   - Whether a request came in the same second as the visitor's previous
//     one is decided in process, as anomalyd does, from the last second
//     seen per visitor.
type naiveStore struct {
	rdb  *redis.Client
	w    features.Window
	ttl  time.Duration
	last map[string]lastSecond // by key prefix (site and IP)
	// classes decides which requests count as API requests.
	classes *features.Classifier
	// Reused per event; a naiveStore serves one worker goroutine.
	shape []byte
	query []byte
	keys  []string
}

// lastSecond is the second of a visitor's latest request, and its bucket.
type lastSecond struct {
	bucket uint32
	second int64
}

// sameSecond reports whether a request at second sec of bucket b came in
// the same second as the visitor's previous request in b, and remembers it.
func sameSecond(last map[string]lastSecond, visitor string, b uint32, sec int64) bool {
	prev, ok := last[visitor]
	last[visitor] = lastSecond{b, sec}
	return ok && prev.bucket == b && prev.second == sec
}

// naiveSketches are the feature names of the sketches, by features.Sketch.
// The v1 system had no IP sketch (identities were IPs).
var naiveSketches = [...]string{
	features.SketchPaths:       "paths",
	features.SketchUserAgents:  "user_agents",
	features.SketchQueryShapes: "query_shapes",
}

// naiveCounters are the feature names of the counters, by features.Counter.
var naiveCounters = [...]string{
	features.CountRequests:   "requests",
	features.Count4xx:        "4xx",
	features.CountNonGET:     "non_get",
	features.CountNoReferer:  "no_referer",
	features.CountAssets:     "assets",
	features.CountSameSecond: "same_second",
	features.CountAPI:        "api",
}

// naiveGrace is how long a key outlives the window, so a late read of the
// oldest bucket still finds it.
const naiveGrace = time.Minute

func newNaiveStore(rdb *redis.Client, w features.Window) *naiveStore {
	return &naiveStore{rdb: rdb, w: w, ttl: w.Span() + naiveGrace, last: make(map[string]lastSecond), classes: features.DefaultClassifier()}
}

// naiveKey is ad:{site:ip}:feature:bucket.
func naiveKey(prefix, feature string, bucket uint32) string {
	return prefix + feature + ":" + strconv.FormatUint(uint64(bucket), 10)
}

// Process adds one request to its visitor's bucket and returns the visitor's
// aggregate over the window that ends with that bucket.
func (s *naiveStore) Process(ctx context.Context, r *traffic.Request) (features.Aggregate, error) {
	prefix := "ad:{" + r.Site + ":" + r.ClientIP + "}:"
	bucket := s.w.Bucket(r.Time)
	first := s.w.First(bucket)

	s.query = append(append(s.query[:0], '?'), r.Query...)
	s.shape = features.AppendQueryShape(s.shape[:0], s.query)
	values := [len(naiveSketches)]string{
		features.SketchPaths:       r.Path,
		features.SketchUserAgents:  r.UserAgent,
		features.SketchQueryShapes: string(s.shape),
	}

	pipe := s.rdb.Pipeline()
	for f, v := range values {
		if v == "" {
			continue
		}
		k := naiveKey(prefix, naiveSketches[f], bucket)
		pipe.PFAdd(ctx, k, v)
		pipe.Expire(ctx, k, s.ttl)
	}
	incr := func(c features.Counter) {
		k := naiveKey(prefix, naiveCounters[c], bucket)
		pipe.Incr(ctx, k)
		pipe.Expire(ctx, k, s.ttl)
	}
	incr(features.CountRequests)
	if r.Status >= 400 && r.Status <= 499 {
		incr(features.Count4xx)
	}
	if r.Method != "GET" {
		incr(features.CountNonGET)
	}
	if r.Referer == "" {
		incr(features.CountNoReferer)
	}
	if features.IsAsset([]byte(r.Path)) {
		incr(features.CountAssets)
	}
	if sameSecond(s.last, prefix, bucket, r.Time.Unix()) {
		incr(features.CountSameSecond)
	}
	ev := features.Event{Site: r.Site, Path: []byte(r.Path), UserAgent: []byte(r.UserAgent), Referer: []byte(r.Referer)}
	if s.classes.API(&ev) {
		incr(features.CountAPI)
	}

	var counts [len(naiveSketches)]*redis.IntCmd
	for f, name := range naiveSketches {
		s.keys = s.keys[:0]
		for b := first; b <= bucket; b++ {
			s.keys = append(s.keys, naiveKey(prefix, name, b))
		}
		tmp := prefix + name + ":merged"
		pipe.PFMerge(ctx, tmp, s.keys...)
		counts[f] = pipe.PFCount(ctx, tmp)
		pipe.Del(ctx, tmp)
	}
	s.keys = s.keys[:0]
	for b := first; b <= bucket; b++ {
		for _, name := range naiveCounters {
			s.keys = append(s.keys, naiveKey(prefix, name, b))
		}
	}
	mget := pipe.MGet(ctx, s.keys...)

	if _, err := pipe.Exec(ctx); err != nil {
		return features.Aggregate{}, fmt.Errorf("naive store: %w", err)
	}
	var agg features.Aggregate
	for f, c := range counts {
		agg.Distinct[f] = uint64(c.Val())
	}
	for i, v := range mget.Val() {
		if v == nil {
			continue
		}
		n, err := strconv.ParseUint(v.(string), 10, 64)
		if err != nil {
			return features.Aggregate{}, fmt.Errorf("naive store: counter %s: %w", s.keys[i], err)
		}
		agg.Counts[i%len(naiveCounters)] += n
	}
	return agg, nil
}

// TestNaiveKeys checks the naive design's Redis state after one request:
// one readable key per feature written, each expiring after window +
// grace, and no temporary merge keys left behind. TestFeatureDesignsAgree
// checks the values it reads.
func TestNaiveKeys(t *testing.T) {
	srv := testenv.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	w := features.DefaultWindow()
	r := traffic.Request{
		Time: time.Unix(1_800_000_000, 0), Site: "shop.example.com", ClientIP: "203.0.113.77",
		Method: "POST", Path: "/cart", Query: "b=1&a=2", UserAgent: "Mozilla/5.0", Status: 404,
	}
	agg, err := newNaiveStore(rdb, w).Process(ctx, &r)
	if err != nil {
		t.Fatal(err)
	}
	want := features.Aggregate{Counts: [features.NumCounters]uint64{1, 1, 1, 1, 0, 0, 1}, Distinct: [features.NumSketches]uint64{1, 1, 1, 0}}
	if agg != want {
		t.Errorf("aggregate %+v, want %+v", agg, want)
	}

	got, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	prefix, bucket := "ad:{shop.example.com:203.0.113.77}:", ":30000000"
	wantKeys := []string{
		prefix + "4xx" + bucket,
		prefix + "api" + bucket,
		prefix + "no_referer" + bucket,
		prefix + "non_get" + bucket,
		prefix + "paths" + bucket,
		prefix + "query_shapes" + bucket,
		prefix + "requests" + bucket,
		prefix + "user_agents" + bucket,
	}
	if !slices.Equal(got, wantKeys) {
		t.Errorf("keys %q, want %q", got, wantKeys)
	}
	for _, k := range got {
		ttl, err := rdb.TTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > w.Span()+naiveGrace {
			t.Errorf("%s: TTL %v, want (0, %v]", k, ttl, w.Span()+naiveGrace)
		}
	}
}
