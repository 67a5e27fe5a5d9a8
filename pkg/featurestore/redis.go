package featurestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/anomalyd/anomalyd/pkg/features"
	"github.com/anomalyd/anomalyd/pkg/keys"
)

// RedisOptions tunes a RedisStore.
type RedisOptions struct {
	// Grace is how long a bucket outlives the window after its last write,
	// so a window read just after the bucket's last write still finds it.
	// Default: one bucket width.
	Grace time.Duration
	// MaxCached bounds how many closed buckets the store remembers
	// (decoded, or that Redis has none); beyond it the cache starts over.
	// Default 1<<19: a decoded bucket of a few requests takes about 450
	// bytes, so some 250 MB at most for busy visitors.
	MaxCached int
	// MaxOpen bounds the open buckets, those of the newest minute, that
	// the store keeps in memory after a Flush has written them: beyond
	// it, they are dropped, and a visitor that comes back within the
	// minute has its bucket read from Redis again. It also bounds the
	// visitors whose whole window the store knows it holds. Default 1<<19.
	MaxOpen int
}

// Evictions counts what a RedisStore dropped from memory to stay within
// its bounds; each costs Redis reads later, never data.
type Evictions struct {
	Open   uint64 // open buckets dropped after they were written
	Closed uint64 // closed buckets forgotten when the cache started over
}

// RedisStore is a Store in Redis, standalone or Cluster (any
// redis.UniversalClient). Each (site, visitor, bucket) is one Redis string
// under a pkg/keys key, holding the bucket's counters and sketches; it
// expires Window.Span + Grace after its last write, so no visitor data
// outlives the window.
//
// The store relies on the requests topic being partitioned by site|visitor,
// so that one store writes a visitor at a time, and keeps what it can in
// memory:
//
//   - Open buckets, the ones of the newest minute, are pre-aggregated: Add
//     folds a batch into them (loading a bucket from Redis the first time it
//     is touched, so an earlier owner's data is kept) and Flush writes each
//     changed bucket once, in one pipeline.
//   - Closed buckets are immutable but for late events, so the store
//     remembers them, decoded, and which buckets Redis does not have,
//     until no window it accepts can need them. Window then merges from
//     memory, and reads Redis only for what this store has not seen: after
//     a restart or a partition rebalance. Decoded buckets take about three
//     times the memory of their encodings and save decoding every bucket of
//     every window read: 6% more events per second in BenchmarkDetector.
//
// What the store remembers is only right while it owns its visitors: when
// the detector loses partitions, it calls Reset, so that visitors that come
// back later are read from Redis afresh.
//
// Windows are merged client-side; Redis never runs PFMERGE. Calls are
// serialized; a detector runs one RedisStore per worker.
type RedisStore struct {
	rdb       redis.UniversalClient
	ttl       time.Duration
	maxCached int
	maxOpen   int

	mu     sync.Mutex
	wm     watermark
	open   map[bucketID]*bucket // buckets being filled, possibly changed
	dirty  []openBucket         // open buckets changed since the last Flush
	closed map[bucketID]*bucket // closed buckets, decoded; nil: Redis has none
	// evicted is the oldest bucket closed may still hold: older ones were
	// dropped when the watermark passed them.
	evicted uint32
	// complete is, per visitor, the buckets the store holds in full (open
	// or closed, and those Redis does not have) since a Prefetch loaded
	// them, so that Prefetch looks up only the buckets a visitor's window
	// gained since, and a window needs no round trip for the buckets that
	// nobody wrote.
	complete  map[visitorID]span
	seen      map[bucketID]struct{} // scratch for Add
	added     []*bucket             // scratch for Add
	want      map[bucketID]struct{} // scratch for Prefetch
	fetch     []bucketID            // scratch for Prefetch
	buckets   []*bucket             // scratch for Window
	merge     sparseScratch         // scratch for Window
	enc       []byte                // scratch for Flush
	ids       []bucketID            // scratch for Window
	buf       []byte
	evictions Evictions
}

// NewRedisStore returns a store for window w in rdb. The client must have
// ContextTimeoutEnabled set: without it go-redis waits for its own read
// timeout instead of the caller's deadline when Redis is slow.
func NewRedisStore(rdb redis.UniversalClient, w features.Window, opts RedisOptions) (*RedisStore, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if !honoursDeadlines(rdb) {
		return nil, errors.New("redis store: the client must set ContextTimeoutEnabled so that context deadlines are honoured")
	}
	if opts.Grace < 0 || opts.MaxCached < 0 || opts.MaxOpen < 0 {
		return nil, fmt.Errorf("redis store: negative grace %v or bound %d, %d", opts.Grace, opts.MaxCached, opts.MaxOpen)
	}
	if opts.Grace == 0 {
		opts.Grace = w.Width
	}
	if opts.MaxCached == 0 {
		opts.MaxCached = 1 << 19
	}
	if opts.MaxOpen == 0 {
		opts.MaxOpen = 1 << 19
	}
	return &RedisStore{
		rdb:       rdb,
		ttl:       w.Span() + opts.Grace,
		maxCached: opts.MaxCached,
		maxOpen:   opts.MaxOpen,
		wm:        newWatermark(w),
		open:      make(map[bucketID]*bucket),
		closed:    make(map[bucketID]*bucket),
		seen:      make(map[bucketID]struct{}),
		want:      make(map[bucketID]struct{}),
		complete:  make(map[visitorID]span),
	}, nil
}

// honoursDeadlines reports whether the client is one whose options are
// known and enable context timeouts; other UniversalClients are trusted.
func honoursDeadlines(rdb redis.UniversalClient) bool {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}

func (s *RedisStore) key(id bucketID) string {
	s.buf = keys.Key{Kind: keys.KindBucket, Site: id.site, Visitor: id.visitor, Bucket: id.bucket}.Append(s.buf[:0])
	return string(s.buf)
}

// Add folds obs into their buckets in memory, first loading the buckets not
// yet open, from memory or Redis. If Redis fails, nothing is added and the
// error wraps ErrUnavailable.
func (s *RedisStore) Add(ctx context.Context, obs []features.Observation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []bucketID
	clear(s.seen)
	added := s.added[:0] // each observation's open bucket, nil until loaded
	for i := range obs {
		o := &obs[i]
		id := bucketID{o.Site, o.Visitor, o.Bucket}
		// Late observations are rare: their buckets are loaded, not filled.
		b := s.open[id]
		added = append(added, b)
		if b != nil {
			continue
		}
		if _, ok := s.seen[id]; !ok {
			s.seen[id] = struct{}{}
			missing = append(missing, id)
		}
	}
	defer func() { clear(added); s.added = added[:0] }() // keeps no bucket alive
	loaded, err := s.load(ctx, nil, missing)
	if err != nil {
		return fmt.Errorf("adding %d observations: %w", len(obs), err)
	}
	for i, id := range missing {
		b := loaded[i]
		if b == nil { // new: Redis has none
			b = &bucket{}
		}
		s.open[id] = b
		delete(s.closed, id) // a late event reopened it
		s.filled(id)
	}
	s.wm.advance(obs)
	for i := range obs {
		o := &obs[i]
		if !s.wm.accept(o) {
			continue
		}
		id := bucketID{o.Site, o.Visitor, o.Bucket}
		b := added[i]
		if b == nil {
			b = s.open[id]
		}
		b.add(o)
		if !b.dirty {
			b.dirty = true
			s.dirty = append(s.dirty, openBucket{id, b})
		}
	}
	return nil
}

// Prefetch reads from Redis, in one pipeline, every bucket that Add or
// Window will need for obs and that the store does not hold: each
// observation's bucket and the rest of its visitor's window up to it. It
// remembers them like closed buckets, so that the Adds and Windows that
// follow, however finely split, make no round trip. It adds nothing; if
// Redis fails, the error wraps ErrUnavailable and the store is unchanged.
func (s *RedisStore) Prefetch(ctx context.Context, obs []features.Observation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.wm.w
	ids, want := s.fetch[:0], s.want
	clear(want)
	for i := range obs {
		o := &obs[i]
		from := w.First(o.Bucket)
		if c, ok := s.complete[visitorID{o.Site, o.Visitor}]; ok && from >= max(c.from, s.evicted) && from <= c.to {
			// The store holds the window's buckets up to c.to.
			if o.Bucket <= c.to {
				continue
			}
			from = c.to + 1
		}
		for b := from; b <= o.Bucket; b++ {
			id := bucketID{o.Site, o.Visitor, b}
			if s.open[id] != nil {
				continue
			}
			if _, ok := s.closed[id]; ok {
				continue
			}
			if _, ok := want[id]; !ok {
				want[id] = struct{}{}
				ids = append(ids, id)
			}
		}
	}
	s.fetch = ids
	if len(ids) == 0 {
		s.completed(obs)
		return nil
	}
	full := len(s.closed)+len(ids) > s.maxCached
	if full {
		s.forgetClosed() // as remember would, but before rather than midway
	}
	// One MGET per visitor: its keys share a Cluster hash slot, and a new
	// visitor's whole window is one command instead of one per bucket.
	pipe := s.rdb.Pipeline()
	var cmds []*redis.SliceCmd
	var keys []string
	for i, id := range ids {
		keys = append(keys, s.key(id))
		if i+1 == len(ids) || ids[i+1].site != id.site || ids[i+1].visitor != id.visitor {
			cmds = append(cmds, pipe.MGet(ctx, keys...)) // copies keys
			keys = keys[:0]
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.failed(ctx)
		return fmt.Errorf("%w: prefetching %d buckets: %w", ErrUnavailable, len(ids), err)
	}
	loaded := make([]*bucket, 0, len(ids))
	for _, cmd := range cmds {
		for _, v := range cmd.Val() {
			var b *bucket
			if data, ok := v.(string); ok {
				var err error
				if b, err = decodeBucket([]byte(data)); err != nil {
					return fmt.Errorf("%w: bucket %s: %w", ErrUnavailable, s.key(ids[len(loaded)]), err)
				}
			}
			loaded = append(loaded, b)
		}
	}
	if !full { // else the rest of the windows was just forgotten
		s.completed(obs)
	}
	for i, id := range ids {
		// What Redis does not have is remembered per visitor where the
		// visitor's newest window is held in full, not per bucket: a new
		// visitor's window is ten buckets that nobody wrote.
		switch {
		case loaded[i] != nil || !s.holds(id):
			s.closed[id] = loaded[i] // nil: Redis has none
		default:
			s.knownEmpty(id)
		}
	}
	return nil
}

// holds reports whether the store knows bucket id as it is in Redis from
// its visitor's window held in full: a bucket of that window that is
// neither open nor closed is one Redis does not have.
func (s *RedisStore) holds(id bucketID) bool {
	c, ok := s.complete[visitorID{id.site, id.visitor}]
	return ok && id.bucket >= max(c.from, s.evicted) && id.bucket <= c.to
}

// openBucket is an open bucket and its name.
type openBucket struct {
	id bucketID
	b  *bucket
}

// span is the buckets from and to, both included, and of the newest 64 of
// them those known to be empty: neither in memory nor in Redis. A window
// read skips them without looking them up; a new visitor's window is
// mostly such buckets.
type span struct {
	from, to uint32
	empty    uint64 // bit k: bucket to-k
}

// shifted returns c with to moved up to newer (not older), its empty bits
// following their buckets; the buckets it gains are not known empty.
func (c span) shifted(to uint32) span {
	if d := to - c.to; d >= 64 {
		c.empty = 0
	} else {
		c.empty <<= d
	}
	c.to = to
	return c
}

// skips reports whether a window read can skip bucket b of the visitor
// whose span is c, as known empty. Unlike the buckets the span holds, an
// empty bucket stays known when memory drops older buckets: only Add
// fills one, and it clears the bit.
func (c span) skips(b uint32) bool {
	return b <= c.to && c.to-b < 64 && c.empty&(1<<(c.to-b)) != 0
}

// knownEmpty records that bucket id, one its visitor's span holds, is
// empty.
func (s *RedisStore) knownEmpty(id bucketID) {
	v := visitorID{id.site, id.visitor}
	if c, ok := s.complete[v]; ok && id.bucket <= c.to && c.to-id.bucket < 64 {
		c.empty |= 1 << (c.to - id.bucket)
		s.complete[v] = c
	}
}

// filled records that bucket id may no longer be empty.
func (s *RedisStore) filled(id bucketID) {
	v := visitorID{id.site, id.visitor}
	if c, ok := s.complete[v]; ok && id.bucket <= c.to && c.to-id.bucket < 64 && c.empty&(1<<(c.to-id.bucket)) != 0 {
		c.empty &^= 1 << (c.to - id.bucket)
		s.complete[v] = c
	}
}

// completed records that the store holds the windows of obs in full: with
// what it held of their visitors when they overlap or touch, else in its
// place when newer.
func (s *RedisStore) completed(obs []features.Observation) {
	w := s.wm.w
	for i := range obs {
		o := &obs[i]
		v := visitorID{o.Site, o.Visitor}
		got := span{from: w.First(o.Bucket), to: o.Bucket}
		c, ok := s.complete[v]
		c.from = max(c.from, s.evicted)
		switch {
		case !ok || c.from > c.to:
			s.complete[v] = got
		case got.from <= c.to+1 && got.to+1 >= c.from:
			c = c.shifted(max(c.to, got.to))
			c.from = min(c.from, got.from)
			s.complete[v] = c
		case got.to > c.to:
			s.complete[v] = got
		}
	}
}

// forgetClosed forgets the closed buckets, and so which windows the store
// holds in full.
func (s *RedisStore) forgetClosed() {
	s.evictions.Closed += uint64(len(s.closed))
	clear(s.closed)
	clear(s.complete)
}

// load appends to dst the buckets ids, those the store remembers from
// memory and the rest from Redis in one pipeline; nil for a bucket Redis
// does not have. A remembered bucket is appended as is, not copied: Window
// only reads it, and Add forgets it as closed before it changes it.
func (s *RedisStore) load(ctx context.Context, dst []*bucket, ids []bucketID) ([]*bucket, error) {
	base := len(dst)
	var fetch []int // indexes into ids of the buckets to read from Redis
	for i, id := range ids {
		b, ok := s.closed[id]
		if !ok && !s.holds(id) {
			fetch = append(fetch, i)
		}
		dst = append(dst, b)
	}
	out := dst[base:]
	if len(fetch) == 0 {
		return dst, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(fetch))
	for j, i := range fetch {
		cmds[j] = pipe.Get(ctx, s.key(ids[i]))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		s.failed(ctx)
		return nil, fmt.Errorf("%w: reading %d buckets: %w", ErrUnavailable, len(fetch), err)
	}
	for j, i := range fetch {
		data, err := cmds[j].Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, fmt.Errorf("%w: reading bucket: %w", ErrUnavailable, err)
		default:
			if out[i], err = decodeBucket(data); err != nil {
				return nil, fmt.Errorf("%w: bucket %s: %w", ErrUnavailable, s.key(ids[i]), err)
			}
		}
		if ids[i].bucket < s.wm.newest {
			s.remember(ids[i], out[i])
		}
	}
	return dst, nil
}

// failed follows a call that failed: a Redis Cluster client reads the
// cluster's slots again, in case a master failed over (go-redis does it by
// itself only every 10 s), so that the caller's retry reaches the new one.
func (s *RedisStore) failed(ctx context.Context) {
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		c.ReloadState(ctx)
	}
}

// remember caches a closed bucket (nil: Redis has none).
func (s *RedisStore) remember(id bucketID, b *bucket) {
	if len(s.closed) >= s.maxCached {
		s.forgetClosed()
	}
	s.closed[id] = b
}

// Flush writes every bucket changed since the last Flush in one pipeline,
// each with the store's expiry, then closes the open buckets older than the
// newest bucket. If Redis fails, the changes stay pending for the next Flush
// and the error wraps ErrUnavailable.
func (s *RedisStore) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dirty) > 0 {
		pipe := s.rdb.Pipeline()
		// The encodings share one buffer, kept from one Flush to the next:
		// the pipeline holds the values only until Exec returns, and
		// appending leaves the slices already taken as they are.
		enc := s.enc[:0]
		for _, d := range s.dirty {
			start := len(enc)
			var err error
			if enc, err = d.b.appendBinary(enc); err != nil {
				return fmt.Errorf("flushing: %w", err)
			}
			pipe.Set(ctx, s.key(d.id), enc[start:len(enc):len(enc)], s.ttl)
		}
		s.enc = enc
		if _, err := pipe.Exec(ctx); err != nil {
			s.failed(ctx)
			return fmt.Errorf("%w: writing %d buckets: %w", ErrUnavailable, len(s.dirty), err)
		}
		for _, d := range s.dirty {
			d.b.dirty = false
		}
		clear(s.dirty)
		s.dirty = s.dirty[:0]
	}
	for id, b := range s.open {
		if id.bucket >= s.wm.newest {
			continue
		}
		s.remember(id, b)
		delete(s.open, id)
	}
	// A flood of new visitors fills the newest minute: what is written
	// goes, and is read again if its visitor comes back.
	if len(s.open) > s.maxOpen {
		s.evictions.Open += uint64(len(s.open))
		clear(s.open)
		clear(s.complete)
	}
	if len(s.complete) > s.maxOpen {
		clear(s.complete)
	}
	// The visitors of a partition read behind the others still need
	// buckets older than the newest window; keep a second window of them.
	// Windows further behind are read from Redis again.
	if oldest := s.wm.w.First(s.wm.w.First(s.wm.newest)); oldest > s.evicted {
		for id := range s.closed {
			if id.bucket < oldest {
				delete(s.closed, id)
			}
		}
		for v, c := range s.complete {
			if c.to < oldest {
				delete(s.complete, v)
			}
		}
		s.wm.forget(oldest)
		s.evicted = oldest
	}
	return nil
}

// Window aggregates the visitor's buckets from First(newest) to newest.
// Buckets in memory include what Add folded in since the last Flush.
func (s *RedisStore) Window(ctx context.Context, site, visitor uint64, newest uint32) (features.Aggregate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	buckets, ids := s.buckets[:0], s.ids[:0]
	c, whole := s.complete[visitorID{site, visitor}]
	for b := range s.wm.w.Range(newest) {
		if whole && c.skips(b) {
			continue
		}
		id := bucketID{site, visitor, b}
		if bk := s.open[id]; bk != nil {
			buckets = append(buckets, bk)
		} else {
			ids = append(ids, id)
		}
	}
	buckets, err := s.load(ctx, buckets, ids)
	s.ids = ids
	if err != nil {
		return features.Aggregate{}, fmt.Errorf("reading a window: %w", err)
	}
	agg, err := aggregate(buckets, &s.merge)
	clear(buckets) // the scratch keeps no bucket alive
	s.buckets = buckets[:0]
	return agg, err
}

// Reset forgets every bucket the store holds in memory but those with
// changes not yet flushed, which the next Flush still writes.
func (s *RedisStore) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetClosed()
	for id, b := range s.open {
		if !b.dirty {
			delete(s.open, id)
		}
	}
}

// Evicted returns what the store has dropped from memory to stay within
// its bounds.
func (s *RedisStore) Evicted() Evictions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.evictions
}

// Late is the number of observations dropped as older than the window.
func (s *RedisStore) Late() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wm.late
}
