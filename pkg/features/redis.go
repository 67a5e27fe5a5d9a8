package features

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/anomalyd/anomalyd/pkg/keys"
)

// RedisOptions tunes a RedisStore.
type RedisOptions struct {
	// Grace is how long a bucket outlives the window after its last write,
	// so a window read just after the bucket's last write still finds it.
	// Default: one bucket width.
	Grace time.Duration
}

// RedisStore is a Store in Redis, standalone or Cluster (any
// redis.UniversalClient). Each (site, visitor, bucket) is one Redis string
// under a pkg/keys key, holding the bucket's counters and sketches; it
// expires Window.Span + Grace after its last write, so no visitor data
// outlives the window.
//
// Writes are pre-aggregated: Add folds observations into the buckets in
// memory (loading a bucket from Redis the first time it is touched, so
// another replica's or an earlier run's data is kept) and Flush writes every
// changed bucket in one pipeline. After a Flush, only the buckets of the
// newest minute stay in memory: they are the ones still filling. Window
// merges the window's buckets client-side, from memory where they are open
// and from one pipelined read otherwise; Redis never runs PFMERGE.
//
// Calls are serialized; a detector runs one RedisStore per worker.
type RedisStore struct {
	rdb redis.UniversalClient
	ttl time.Duration

	mu    sync.Mutex
	wm    watermark
	open  map[bucketID]*bucket  // loaded or created, possibly changed
	dirty map[bucketID]struct{} // changed since the last Flush
	buf   []byte
}

// NewRedisStore returns a store for window w in rdb. The client must have
// ContextTimeoutEnabled set: without it go-redis waits for its own read
// timeout instead of the caller's deadline when Redis is slow.
func NewRedisStore(rdb redis.UniversalClient, w Window, opts RedisOptions) (*RedisStore, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if !honoursDeadlines(rdb) {
		return nil, errors.New("redis store: the client must set ContextTimeoutEnabled so that context deadlines are honoured")
	}
	if opts.Grace < 0 {
		return nil, fmt.Errorf("redis store: negative grace %v", opts.Grace)
	}
	if opts.Grace == 0 {
		opts.Grace = w.Width
	}
	return &RedisStore{
		rdb:   rdb,
		ttl:   w.Span() + opts.Grace,
		wm:    watermark{w: w},
		open:  make(map[bucketID]*bucket),
		dirty: make(map[bucketID]struct{}),
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

// Add folds obs into their buckets in memory, first loading from Redis the
// buckets not yet in memory. If Redis fails, nothing is added and the error
// wraps ErrUnavailable.
func (s *RedisStore) Add(ctx context.Context, obs []Observation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	wm := s.wm
	wm.advance(obs)
	var missing []bucketID
	seen := make(map[bucketID]struct{})
	for i := range obs {
		o := &obs[i]
		id := bucketID{o.Site, o.Visitor, o.Bucket}
		if wm.w.Late(o.Bucket, wm.newest) || s.open[id] != nil {
			continue
		}
		if _, ok := seen[id]; !ok {
			seen[id] = struct{}{}
			missing = append(missing, id)
		}
	}
	loaded, err := s.load(ctx, missing)
	if err != nil {
		return fmt.Errorf("adding %d observations: %w", len(obs), err)
	}
	for i, id := range missing {
		s.open[id] = loaded[i]
	}
	for i := range obs {
		o := &obs[i]
		if wm.isLate(o) {
			continue
		}
		id := bucketID{o.Site, o.Visitor, o.Bucket}
		s.open[id].add(o)
		s.dirty[id] = struct{}{}
	}
	s.wm = wm
	return nil
}

// load reads buckets in one pipeline; a bucket Redis does not have is new
// and empty.
func (s *RedisStore) load(ctx context.Context, ids []bucketID) ([]*bucket, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, s.key(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: reading %d buckets: %w", ErrUnavailable, len(ids), err)
	}
	out := make([]*bucket, len(ids))
	for i, cmd := range cmds {
		data, err := cmd.Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			out[i] = &bucket{}
		case err != nil:
			return nil, fmt.Errorf("%w: reading bucket: %w", ErrUnavailable, err)
		default:
			if out[i], err = decodeBucket(data); err != nil {
				return nil, fmt.Errorf("%w: bucket %s: %w", ErrUnavailable, s.key(ids[i]), err)
			}
		}
	}
	return out, nil
}

// Flush writes every bucket changed since the last Flush in one pipeline,
// each with the store's expiry, then forgets the buckets older than the
// newest bucket. If Redis fails, the changes stay pending for the next Flush
// and the error wraps ErrUnavailable.
func (s *RedisStore) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dirty) > 0 {
		pipe := s.rdb.Pipeline()
		for id := range s.dirty {
			// A new slice each: the pipeline holds the values until Exec.
			enc, err := s.open[id].appendBinary(nil)
			if err != nil {
				return fmt.Errorf("flushing: %w", err)
			}
			pipe.Set(ctx, s.key(id), enc, s.ttl)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("%w: writing %d buckets: %w", ErrUnavailable, len(s.dirty), err)
		}
		clear(s.dirty)
	}
	for id := range s.open {
		if id.bucket < s.wm.newest {
			delete(s.open, id)
		}
	}
	return nil
}

// Window aggregates the visitor's buckets from First(newest) to newest.
// Buckets in memory include what Add folded in since the last Flush.
func (s *RedisStore) Window(ctx context.Context, site, visitor uint64, newest uint32) (Aggregate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []*bucket
	var missing []bucketID
	for _, b := range s.wm.w.Range(newest) {
		id := bucketID{site, visitor, b}
		if bk := s.open[id]; bk != nil {
			found = append(found, bk)
		} else {
			missing = append(missing, id)
		}
	}
	loaded, err := s.load(ctx, missing)
	if err != nil {
		return Aggregate{}, fmt.Errorf("reading a window: %w", err)
	}
	return aggregate(append(found, loaded...))
}

// Late is the number of observations dropped as older than the window.
func (s *RedisStore) Late() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wm.late
}
