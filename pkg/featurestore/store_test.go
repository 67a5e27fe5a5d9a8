package featurestore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/anomalyd/anomalyd/internal/testenv"
	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/keys"
)

// req is a hand-built request for store tests. All the requests of a
// bucket are sent in its first second.
type req struct {
	bucket                           uint32
	path, ua, referer, shape, method string
	status                           int
}

func (r req) observation(site, visitor uint64) features.Observation {
	o := features.Observation{Site: site, Visitor: visitor, Bucket: r.bucket, Second: r.bucket * 60}
	if r.status >= 400 && r.status < 500 {
		o.Flags |= features.Flag4xx
	}
	if r.method != "GET" {
		o.Flags |= features.FlagNonGET
	}
	if r.referer == "" {
		o.Flags |= features.FlagNoReferer
	}
	for s, v := range map[features.Sketch]string{features.SketchPaths: r.path, features.SketchUserAgents: r.ua, features.SketchQueryShapes: r.shape} {
		if v != "" {
			o.Hashes[s] = features.HashValue(v)
		}
	}
	return o
}

const (
	testSite    = 0x5173
	testVisitor = 0x7157
	b0          = 29_000_000 // a bucket index around 2025 with 1-minute buckets
)

func observations(rs ...req) []features.Observation {
	obs := make([]features.Observation, len(rs))
	for i, r := range rs {
		obs[i] = r.observation(testSite, testVisitor)
	}
	return obs
}

// stores runs a test against both implementations, the Redis one on a real
// redis-server and on a Redis Cluster.
func stores(t *testing.T, w features.Window, test func(t *testing.T, s Store)) {
	t.Run("memory", func(t *testing.T) { test(t, NewMemoryStore(w)) })
	t.Run("redis", func(t *testing.T) { test(t, newRedisStore(t, testenv.Redis(t).Addr(), w)) })
	t.Run("redis-cluster", func(t *testing.T) {
		s, err := NewRedisStore(clusterClient(t), w, RedisOptions{})
		if err != nil {
			t.Fatal(err)
		}
		test(t, s)
	})
}

func newRedisStore(t *testing.T, addr string, w features.Window) *RedisStore {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	s, err := NewRedisStore(rdb, w, RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustAdd(t *testing.T, s Store, obs []features.Observation) {
	t.Helper()
	if err := s.Add(t.Context(), obs); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func mustWindow(t *testing.T, s Store, newest uint32) features.Aggregate {
	t.Helper()
	a, err := s.Window(t.Context(), testSite, testVisitor, newest)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestFeatureValues(t *testing.T) {
	traffic := observations(
		req{b0, "/", "Firefox", "", "", "GET", 200},
		req{b0, "/login", "Firefox", "https://a.example/", "", "POST", 401},
		req{b0, "/login", "Firefox", "https://a.example/", "", "POST", 401},
		req{b0 + 1, "/search", "Firefox", "https://b.example/", "q", "GET", 200},
		req{b0 + 1, "/search", "curl/8", "", "page&q", "HEAD", 404},
		req{b0 + 2, "/", "Firefox", "", "", "GET", 500},
	)
	// Under a fingerprint identity one visitor may come from several IPs.
	for i, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.1"} {
		traffic[i].Hashes[features.SketchIPs] = features.HashValue(ip)
	}
	want := features.Aggregate{}
	want.Counts[features.CountRequests] = 6
	want.Counts[features.Count4xx] = 3
	want.Counts[features.CountNonGET] = 3
	want.Counts[features.CountNoReferer] = 3
	want.Counts[features.CountSameSecond] = 3    // all but the first of each bucket
	want.Distinct[features.SketchPaths] = 3      // /, /login, /search
	want.Distinct[features.SketchUserAgents] = 2 // Firefox, curl/8
	want.Distinct[features.SketchQueryShapes] = 2
	want.Distinct[features.SketchIPs] = 2
	stores(t, features.DefaultWindow(), func(t *testing.T, s Store) {
		mustAdd(t, s, traffic[:3])
		mustAdd(t, s, traffic[3:])
		if got := mustWindow(t, s, b0+2); got != want {
			t.Errorf("window = %+v, want %+v", got, want)
		}
		// Another visitor of the same site sees nothing of this one.
		if got, _ := s.Window(t.Context(), testSite, testVisitor+1, b0+2); got != (features.Aggregate{}) {
			t.Errorf("other visitor's window = %+v, want empty", got)
		}
	})
}

func TestWindowSlides(t *testing.T) {
	w := features.Window{Buckets: 3, Width: time.Minute}
	stores(t, w, func(t *testing.T, s Store) {
		for i := range uint32(6) {
			mustAdd(t, s, observations(req{bucket: b0 + i, path: fmt.Sprint("/p", i), method: "GET", status: 200}))
			// The window ending at b0+i holds the last three buckets.
			got := mustWindow(t, s, b0+i)
			if want := uint64(min(i+1, 3)); got.Counts[features.CountRequests] != want || got.Distinct[features.SketchPaths] != want {
				t.Errorf("window ending at b0+%d: %+v, want %d requests and paths", i, got, want)
			}
		}
	})
}

func TestLateEvents(t *testing.T) {
	stores(t, features.DefaultWindow(), func(t *testing.T, s Store) {
		mustAdd(t, s, observations(req{bucket: b0 + 20, path: "/new", method: "GET"}))
		mustAdd(t, s, observations(
			req{bucket: b0 + 11, path: "/late-but-in-window", method: "GET"},
			req{bucket: b0 + 10, path: "/too-old", method: "GET"},
			req{bucket: b0, path: "/far-too-old", method: "GET"},
		))
		got := mustWindow(t, s, b0+20)
		if got.Counts[features.CountRequests] != 2 || got.Distinct[features.SketchPaths] != 2 {
			t.Errorf("window = %+v, want the new and the late-but-in-window request", got)
		}
		if late := s.(interface{ Late() uint64 }).Late(); late != 2 {
			t.Errorf("Late() = %d, want 2", late)
		}
	})
}

// TestLateIsPerVisitor: a visitor far behind another in event time, as
// when it comes from a partition read behind the others, is not late; only
// a visitor's own requests older than its own window are.
func TestLateIsPerVisitor(t *testing.T) {
	ahead := func(rs ...req) []features.Observation {
		obs := observations(rs...)
		for i := range obs {
			obs[i].Visitor = testVisitor + 1
		}
		return obs
	}
	stores(t, features.DefaultWindow(), func(t *testing.T, s Store) {
		mustAdd(t, s, ahead(req{bucket: b0 + 25, path: "/ahead", method: "GET"}))
		mustAdd(t, s, observations(
			req{bucket: b0 + 2, path: "/a", method: "GET"},
			req{bucket: b0 + 9, path: "/b", method: "GET"},
			req{bucket: b0, path: "/c", method: "GET"}, // in the window of b0+9: not late
		))
		mustAdd(t, s, observations(req{bucket: b0 + 12, path: "/d", method: "GET"}))
		mustAdd(t, s, observations(req{bucket: b0 + 2, path: "/e", method: "GET"})) // before the window of b0+12: late
		if got := mustWindow(t, s, b0+12); got.Counts[features.CountRequests] != 2 {
			t.Errorf("window at b0+12 holds %d requests, want 2 (/b, /d)", got.Counts[features.CountRequests])
		}
		if got := mustWindow(t, s, b0+9); got.Counts[features.CountRequests] != 3 {
			t.Errorf("window at b0+9 holds %d requests, want 3 (/a, /b, /c)", got.Counts[features.CountRequests])
		}
		if late := s.(interface{ Late() uint64 }).Late(); late != 1 {
			t.Errorf("Late() = %d, want 1", late)
		}
	})
}

func TestReplayKeepsDistinctCounts(t *testing.T) {
	batch := observations(
		req{b0, "/a", "ua1", "r1", "s1", "GET", 200},
		req{b0, "/b", "ua2", "r2", "s2", "POST", 404},
		req{b0 + 1, "/c", "ua1", "r1", "s1", "GET", 200},
	)
	stores(t, features.DefaultWindow(), func(t *testing.T, s Store) {
		mustAdd(t, s, batch)
		once := mustWindow(t, s, b0+1)
		mustAdd(t, s, batch)
		twice := mustWindow(t, s, b0+1)
		if once.Distinct != twice.Distinct {
			t.Errorf("distinct counts after replay %v, before %v", twice.Distinct, once.Distinct)
		}
		// Counters are not idempotent: the detector avoids replays by
		// committing offsets only after Flush.
		if twice.Counts[features.CountRequests] != 2*once.Counts[features.CountRequests] {
			t.Errorf("requests after replay %d, before %d", twice.Counts[features.CountRequests], once.Counts[features.CountRequests])
		}
	})
}

func TestRedisStoreDurableCompactAndExpiring(t *testing.T) {
	srv := testenv.Redis(t)
	w := features.Window{Buckets: 2, Width: time.Second}
	s := newRedisStore(t, srv.Addr(), w)
	const ip = "203.0.113.77"
	obs := observations(req{b0, "/x", "ua", "", "", "GET", 200}, req{b0 + 1, "/y", "ua", "", "", "GET", 200})
	obs[0].Hashes[features.SketchIPs] = features.HashValue(ip)
	mustAdd(t, s, obs)

	// A new store (a restarted detector) reads what the first one flushed.
	restarted := newRedisStore(t, srv.Addr(), w)
	if got := mustWindow(t, restarted, b0+1); got.Counts[features.CountRequests] != 2 || got.Distinct[features.SketchPaths] != 2 {
		t.Errorf("after restart: %+v", got)
	}

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	ctx := t.Context()
	all, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("%d keys, want one per bucket (2)", len(all))
	}
	for _, k := range all {
		if _, err := keys.Decode([]byte(k)); err != nil {
			t.Errorf("key %q is not a pkg/keys key: %v", k, err)
		}
		v, _ := rdb.Get(ctx, k).Result()
		if strings.Contains(k+v, ip) {
			t.Errorf("Redis holds the raw IP under %q", k)
		}
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > 3*time.Second {
			t.Errorf("key TTL %v (%v), want within window+grace = 3s", ttl, err)
		}
	}
	// Nothing outlives the window: the keys really expire.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := rdb.DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d keys still there 5s after a 3s expiry", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRedisGoesAwayAndComesBack(t *testing.T) {
	srv := testenv.Redis(t)
	s := newRedisStore(t, srv.Addr(), features.DefaultWindow())
	mustAdd(t, s, observations(req{bucket: b0, path: "/before", method: "GET"}))
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	// Calls fail with ErrUnavailable within their deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := s.Add(ctx, observations(req{bucket: b0 + 1, path: "/during", method: "GET"}))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Add with Redis down: %v, want ErrUnavailable", err)
	}
	if _, err := s.Window(ctx, testSite, testVisitor, b0+1); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Window with Redis down: %v, want ErrUnavailable", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("failing calls took %v, past their 2s deadline", elapsed)
	}

	// An Add already folded in memory stays pending through a failed Flush.
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(t.Context(), observations(req{bucket: b0, path: "/again", method: "GET"})); err != nil {
		t.Fatalf("Add after Redis came back: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Flush with Redis down: %v, want ErrUnavailable", err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatalf("Flush after Redis came back, same client: %v", err)
	}
	// The restarted server lost /before (it keeps nothing on disk), but the
	// pending bucket was written in full when Redis came back.
	fresh := newRedisStore(t, srv.Addr(), features.DefaultWindow())
	if got := mustWindow(t, fresh, b0); got.Counts[features.CountRequests] != 2 || got.Distinct[features.SketchPaths] != 2 {
		t.Errorf("after recovery: %+v, want /before and /again", got)
	}
}

func TestBucketEncoding(t *testing.T) {
	var b bucket
	for _, o := range observations(
		req{b0, "/a", "ua", "r", "s", "POST", 404},
		req{b0, "/b", "ua", "", "", "GET", 200},
	) {
		b.add(&o)
	}
	enc, err := b.appendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeBucket(enc)
	if err != nil {
		t.Fatal(err)
	}
	a1, _ := aggregate([]*bucket{&b}, nil)
	a2, _ := aggregate([]*bucket{got}, nil)
	if a1 != a2 {
		t.Errorf("decoded bucket aggregates to %+v, want %+v", a2, a1)
	}
	// The latest request's second survives the encoding: a request in the
	// same second, added after a restart, counts as one.
	again := observations(req{b0, "/c", "ua", "", "", "GET", 200})[0]
	got.add(&again)
	if n := got.counts[features.CountSameSecond]; n != 2 {
		t.Errorf("same-second requests after decoding and one more: %d, want 2", n)
	}
	for _, bad := range [][]byte{nil, {2}, enc[:2], enc[:len(enc)-1], append(append([]byte(nil), enc...), 0)} {
		if _, err := decodeBucket(bad); err == nil {
			t.Errorf("decodeBucket(%x) accepted corrupt input", bad)
		}
	}
}

func TestRedisStoreNeedsContextTimeouts(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { rdb.Close() })
	if _, err := NewRedisStore(rdb, features.DefaultWindow(), RedisOptions{}); err == nil {
		t.Error("a client without ContextTimeoutEnabled was accepted")
	}
}

func TestRedisSlowHonoursDeadline(t *testing.T) {
	srv := testenv.Redis(t)
	s := newRedisStore(t, srv.Addr(), features.DefaultWindow())
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { admin.Close() })
	// CLIENT PAUSE stalls every other client's commands: a slow Redis.
	if err := admin.Do(t.Context(), "CLIENT", "PAUSE", "3000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Add(ctx, observations(req{bucket: b0, path: "/slow", method: "GET"}))
	// go-redis reports the deadline as a context error or as the socket's
	// i/o timeout, depending on where it struck; both are ErrUnavailable.
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Add against a paused Redis: %v, want ErrUnavailable", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Add returned after %v, past its 300ms deadline", elapsed)
	}
	if err := admin.Do(t.Context(), "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(t.Context(), observations(req{bucket: b0, path: "/after", method: "GET"})); err != nil {
		t.Errorf("Add after the pause: %v", err)
	}
}

func TestRedisStoreServesClosedBucketsFromMemory(t *testing.T) {
	srv := testenv.Redis(t)
	s := newRedisStore(t, srv.Addr(), features.DefaultWindow())
	mustAdd(t, s, observations(req{bucket: b0, path: "/a", method: "GET"}))
	mustAdd(t, s, observations(req{bucket: b0 + 1, path: "/b", method: "GET"}))
	// A late event reopens the closed bucket b0 from memory.
	mustAdd(t, s, observations(req{bucket: b0, path: "/late", method: "GET"}))
	mustAdd(t, s, observations(req{bucket: b0 + 2, path: "/c", method: "GET"}))
	first := mustWindow(t, s, b0+2) // reads the buckets this store never saw
	if first.Counts[features.CountRequests] != 4 || first.Distinct[features.SketchPaths] != 4 {
		t.Fatalf("window = %+v, want 4 requests on 4 paths", first)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if again := mustWindow(t, s, b0+2); again != first {
		t.Errorf("window from memory = %+v, want %+v", again, first)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestRedisStoreResetRereadsRedis(t *testing.T) {
	srv := testenv.Redis(t)
	a := newRedisStore(t, srv.Addr(), features.DefaultWindow())
	mustAdd(t, a, observations(req{bucket: b0, path: "/a", method: "GET"}))
	mustAdd(t, a, observations(req{bucket: b0 + 1, path: "/b", method: "GET"}))
	mustAdd(t, a, observations(req{bucket: b0 + 3, path: "/c", method: "GET"}))
	mustWindow(t, a, b0+3) // a now remembers that Redis has no b0+2

	// Another replica writes b0+2 for the visitor while a does not own it.
	b := newRedisStore(t, srv.Addr(), features.DefaultWindow())
	mustAdd(t, b, observations(req{bucket: b0 + 2, path: "/elsewhere", method: "GET"}))

	if got := mustWindow(t, a, b0+3); got.Counts[features.CountRequests] != 3 {
		t.Fatalf("before Reset a sees %d requests, want its own 3 (the test assumes it caches)", got.Counts[features.CountRequests])
	}
	a.Reset()
	if got := mustWindow(t, a, b0+3); got.Counts[features.CountRequests] != 4 {
		t.Errorf("after Reset a sees %d requests, want 4", got.Counts[features.CountRequests])
	}
}

// TestRedisStorePrefetchMakesNoRoundTrips: after a Prefetch of a batch, the
// Adds and Windows of its observations, one at a time, work with Redis
// down, and see what an earlier owner wrote.
func TestRedisStorePrefetchMakesNoRoundTrips(t *testing.T) {
	srv := testenv.Redis(t)
	earlier := newRedisStore(t, srv.Addr(), features.DefaultWindow())
	mustAdd(t, earlier, observations(req{bucket: b0, path: "/a", method: "GET"}))
	mustAdd(t, earlier, observations(req{bucket: b0 + 2, path: "/b", method: "GET"}))

	s := newRedisStore(t, srv.Addr(), features.DefaultWindow())
	batch := observations(
		req{bucket: b0 + 2, path: "/c", method: "GET"},
		req{bucket: b0 + 3, path: "/d", method: "GET"},
	)
	if err := s.Prefetch(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	addOneByOne(t, s, batch, []uint64{3, 4})
	// Prefetch changes nothing, and fails cleanly with Redis down.
	other := observations(req{bucket: b0 + 3, path: "/e", method: "GET"})
	other[0].Visitor++
	if err := s.Prefetch(t.Context(), other); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Prefetch with Redis down: %v, want ErrUnavailable", err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The restarted Redis (no persistence) holds only what s flushed: its
	// two buckets, b0+2 with the earlier owner's /b kept.
	fresh := newRedisStore(t, srv.Addr(), features.DefaultWindow())
	if got := mustWindow(t, fresh, b0+3); got.Counts[features.CountRequests] != 3 || got.Distinct[features.SketchPaths] != 3 {
		t.Errorf("window in Redis = %+v, want 3 requests on 3 paths", got)
	}
}

// TestRedisStorePrefetchLoadsWhatWindowsGained: a Prefetch after an earlier
// one looks up only the buckets the visitor's window gained, and those
// still come from Redis: with Redis down after it, the Adds and Windows of
// the second batch need no round trip and see what another owner wrote.
func TestRedisStorePrefetchLoadsWhatWindowsGained(t *testing.T) {
	srv := testenv.Redis(t)
	s := newRedisStore(t, srv.Addr(), features.DefaultWindow())
	first := observations(req{bucket: b0, path: "/a", method: "GET"}, req{bucket: b0 + 1, path: "/b", method: "GET"})
	if err := s.Prefetch(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, s, first)
	if err := s.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Another owner wrote the visitor's next bucket meanwhile.
	other := newRedisStore(t, srv.Addr(), features.DefaultWindow())
	mustAdd(t, other, observations(req{bucket: b0 + 3, path: "/c", method: "GET"}))
	if err := other.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	second := observations(req{bucket: b0 + 1, path: "/d", method: "GET"}, req{bucket: b0 + 3, path: "/e", method: "GET"})
	if err := s.Prefetch(t.Context(), second); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	addOneByOne(t, s, second, []uint64{3, 5})
}

// addOneByOne adds batch to s one observation at a time, as the detector
// does, with Redis down, and checks the requests of the window after each
// Add against want.
func addOneByOne(t *testing.T, s Store, batch []features.Observation, want []uint64) {
	t.Helper()
	for i := range batch {
		if err := s.Add(t.Context(), batch[i:i+1]); err != nil {
			t.Fatalf("Add %d with Redis down after Prefetch: %v", i, err)
		}
		a, err := s.Window(t.Context(), testSite, testVisitor, batch[i].Bucket)
		if err != nil {
			t.Fatalf("Window %d with Redis down after Prefetch: %v", i, err)
		}
		if a.Counts[features.CountRequests] != want[i] {
			t.Errorf("window after Add %d has %d requests, want %d", i, a.Counts[features.CountRequests], want[i])
		}
	}
}

// TestRedisStoreBoundsOpenBuckets: a flood of visitors in one minute keeps
// at most MaxOpen open buckets in memory after a Flush, counted as
// evictions, and a visitor who comes back within the minute still has
// every request of it counted: its bucket is read from Redis again.
func TestRedisStoreBoundsOpenBuckets(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t).Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	const maxOpen = 100
	s, err := NewRedisStore(rdb, features.DefaultWindow(), RedisOptions{MaxOpen: maxOpen})
	if err != nil {
		t.Fatal(err)
	}
	flood := make([]features.Observation, 3*maxOpen)
	for i := range flood {
		flood[i] = req{bucket: b0, path: "/", method: "GET"}.observation(testSite, uint64(1000+i))
	}
	mustAdd(t, s, flood)
	if n, ev := len(s.open), s.Evicted(); n > maxOpen || ev.Open != 3*maxOpen {
		t.Fatalf("after the flood: %d open buckets, evictions %+v; want at most %d, and the %d written evicted", n, ev, maxOpen, 3*maxOpen)
	}
	// The first visitor comes back within the minute.
	back := req{bucket: b0, path: "/again", method: "GET"}.observation(testSite, 1000)
	mustAdd(t, s, []features.Observation{back})
	got, err := s.Window(t.Context(), testSite, 1000, b0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Counts[features.CountRequests] != 2 || got.Distinct[features.SketchPaths] != 2 {
		t.Errorf("the visitor back after eviction: %d requests on %d paths, want 2 on 2", got.Counts[features.CountRequests], got.Distinct[features.SketchPaths])
	}
}

// TestRedisStoreMatchesMemory drives a RedisStore as the detector does
// (Prefetch a batch, then Add and read a window one request at a time,
// Flush) with random traffic, late requests, Resets and, in one case,
// bounds small enough to evict all the time, and checks every window
// against a MemoryStore's. What the RedisStore remembers, from the buckets
// it holds to those it knows are empty, must never change a window.
func TestRedisStoreMatchesMemory(t *testing.T) {
	addr := testenv.Redis(t).Addr()
	for _, tt := range []struct {
		name    string
		opts    RedisOptions
		cluster bool
	}{
		{"defaults", RedisOptions{}, false},
		{"evicting", RedisOptions{MaxOpen: 8, MaxCached: 24}, false},
		{"cluster", RedisOptions{MaxOpen: 8, MaxCached: 24}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var rdb redis.UniversalClient
			if tt.cluster {
				rdb = clusterClient(t)
			} else {
				c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
				t.Cleanup(func() { c.Close() })
				if err := c.FlushAll(t.Context()).Err(); err != nil {
					t.Fatal(err)
				}
				rdb = c
			}
			w := features.DefaultWindow()
			rs, err := NewRedisStore(rdb, w, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			ms := NewMemoryStore(w)
			rng := rand.New(rand.NewPCG(7, uint64(len(tt.name))))
			paths := []string{"/", "/a", "/b", "/c", "/d"}
			now, skipped, reads := uint32(b0), 0, 0
			for batch := range 300 {
				obs := make([]features.Observation, 1+rng.IntN(40))
				for i := range obs {
					if rng.IntN(4) == 0 {
						now++ // some minutes pass with no request
					}
					bucket := now
					if rng.IntN(30) == 0 {
						bucket -= uint32(rng.IntN(2 * w.Buckets)) // late, sometimes past the window
					}
					obs[i] = req{bucket: bucket, path: paths[rng.IntN(len(paths))], method: "GET", status: 200 + 200*rng.IntN(2)}.
						observation(testSite, uint64(rng.IntN(25)))
				}
				if err := rs.Prefetch(t.Context(), obs); err != nil {
					t.Fatal(err)
				}
				for i := range obs {
					o := &obs[i]
					for _, s := range []Store{rs, ms} {
						if err := s.Add(t.Context(), obs[i:i+1]); err != nil {
							t.Fatal(err)
						}
					}
					if now-o.Bucket >= uint32(w.Buckets) {
						// The MemoryStore keeps two windows behind the
						// newest request, so it may lack this one's.
						continue
					}
					got, err := rs.Window(t.Context(), o.Site, o.Visitor, o.Bucket)
					if err != nil {
						t.Fatal(err)
					}
					want, _ := ms.Window(t.Context(), o.Site, o.Visitor, o.Bucket)
					if got != want {
						t.Fatalf("batch %d, visitor %d, bucket %+d: got %+v, want %+v", batch, o.Visitor, int64(o.Bucket)-b0, got, want)
					}
					reads++
				}
				for _, c := range rs.complete {
					if c.empty != 0 {
						skipped++
					}
				}
				if err := rs.Flush(t.Context()); err != nil {
					t.Fatal(err)
				}
				if rng.IntN(50) == 0 {
					rs.Reset() // as when the detector loses partitions
				}
			}
			if skipped == 0 {
				t.Errorf("no visitor had a bucket known to be empty in %d window reads: the test does not reach the skips", reads)
			}
		})
	}
}

// TestRedisStoreFailover streams requests into a RedisStore on a Redis
// Cluster of three masters with a replica each, and kills the master of
// one visitor's keys mid-stream, as the detector's would die. Calls fail
// until the replica is promoted; retried as the detector retries a batch,
// they succeed, and every window then read from Redis afresh is the
// MemoryStore's, but at most those of the visitors of the last Flush
// before the kill: Redis replicates asynchronously, so what the master
// acknowledged last may not have reached its replica.
func TestRedisStoreFailover(t *testing.T) {
	cluster := testenv.RedisCluster(t)
	ctx := t.Context()
	client := func() *redis.ClusterClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { c.Close() })
		return c
	}
	w := features.DefaultWindow()
	rs, err := NewRedisStore(client(), w, RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ms := NewMemoryStore(w)
	// retry calls f until it succeeds, as the detector retries a batch
	// while Redis fails, and returns how long Redis was unavailable.
	retry := func(what string, f func() error) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			err := f()
			if err == nil {
				return time.Since(start)
			}
			if !errors.Is(err, ErrUnavailable) || time.Since(start) > 30*time.Second {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	const visitors, batches, killAfter = 60, 120, 60
	rng := rand.New(rand.NewPCG(3, 4))
	now := uint32(b0)
	var lastBefore map[uint64]bool // the visitors of the last Flush before the kill
	var outage time.Duration
	for batch := range batches {
		if batch == killAfter {
			victim := rs.key(bucketID{site: testSite, visitor: 7, bucket: now})
			start := time.Now()
			addr, err := cluster.Failover(ctx, victim)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("killed the master %s; a replica took over in %v", addr, time.Since(start))
		}
		if rng.IntN(3) == 0 {
			now++
		}
		obs := make([]features.Observation, 1+rng.IntN(30))
		inBatch := make(map[uint64]bool)
		for i := range obs {
			v := uint64(rng.IntN(visitors))
			obs[i] = req{bucket: now, path: fmt.Sprintf("/p%d", rng.IntN(9)), method: "GET", status: 200}.observation(testSite, v)
			inBatch[v] = true
		}
		d := retry("prefetching", func() error { return rs.Prefetch(ctx, obs) })
		for _, s := range []Store{rs, ms} {
			if err := s.Add(ctx, obs); err != nil {
				t.Fatal(err)
			}
		}
		d += retry("flushing", func() error { return rs.Flush(ctx) })
		outage = max(outage, d)
		if batch == killAfter-1 {
			lastBefore = inBatch
		}
	}
	t.Logf("the store was unavailable for %v at most", outage)
	if outage < 500*time.Millisecond {
		t.Errorf("the store never waited for the failover (%v): the master killed served none of the stream", outage)
	}
	fresh, err := NewRedisStore(client(), w, RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for v := range uint64(visitors) {
		got, err := fresh.Window(ctx, testSite, v, now)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := ms.Window(ctx, testSite, v, now)
		if got != want {
			lost++
			if !lastBefore[v] {
				t.Errorf("visitor %d: window %+v, want %+v; it was not in the last flush before the kill", v, got, want)
			}
		}
	}
	t.Logf("%d of %d windows lost writes to the failover", lost, visitors)
}
